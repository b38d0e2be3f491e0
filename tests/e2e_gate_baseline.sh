#!/usr/bin/env bash
# e2e_gate_baseline.sh -- `slodrill gate NEW --baseline OLD`: both configs play
# the same two short scenarios (same seeds); the table shows the figures old ->
# new with the change, the exit code and JUnit cases are the new config's, and
# JUnit carries the old config's figures as properties. Swapped, the
# single-provider candidate fails and the gate exits 1.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-gbase.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ "${SLODRILL_VALGRIND:-0}" = 1 ]; then
  ok "skipped under valgrind (timing-bound scenarios)"; finish
fi
two=scenarios/configs/two-provider.yaml
one=scenarios/configs/single-provider.yaml
scen=(tests/data/gate-short-revoked-key.yaml tests/data/gate-short-503-burst.yaml)
fig='^ {29}(TTF|TTR|p95|SR|avg cost) '

# Bad baseline: exit 2 at once, nothing runs.
"${SLODRILL_CMD[@]}" gate "$two" "${scen[@]}" --baseline "$tmp/nope.yaml" --out "$tmp/bad" \
    --quiet >"$tmp/bad.out" 2>"$tmp/bad.err"; rc=$?
check "a baseline config that does not load exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "and nothing ran" [ ! -e "$tmp/bad" ]

# The change under review: single provider -> two providers.
start=$(date +%s)
timeout 120 "${SLODRILL_CMD[@]}" gate "$two" "${scen[@]}" --baseline "$one" --out "$tmp/up" \
    --quiet >"$tmp/up.out" 2>"$tmp/up.err"; rc=$?
cat "$tmp/up.out"; cat "$tmp/up.err"
check "candidate two-provider vs baseline single-provider exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "the verdict table is the candidate's: both scenarios PASS" \
    [ "$(grep -Ec '^gate-short-(revoked-key|503-burst) +PASS ' "$tmp/up.out")" -eq 2 ]
check "side by side: revoked key goes FAIL -> PASS, fixed" \
    grep -Eq '^gate-short-revoked-key +verdict +FAIL -> PASS +fixed$' "$tmp/up.out"
check "side by side: 503 burst goes FAIL -> PASS, fixed" \
    grep -Eq '^gate-short-503-burst +verdict +FAIL -> PASS +fixed$' "$tmp/up.out"
check "five figure rows per scenario (TTF, TTR, p95, SR, avg cost)" \
    [ "$(grep -Ec "$fig" "$tmp/up.out")" -eq 10 ]
check "the success rate rows go from under the SLO to 100% and say better" \
    [ "$(grep -Ec '^ +SR +([0-9]|[1-8][0-9]|9[0-8])\.[0-9]+% -> 100\.00% +\+[0-9.]+ pts, better$' "$tmp/up.out")" -eq 2 ]
check "the p95 rows go from inf (failures) to seconds" \
    [ "$(grep -Ec '^ +p95 +inf -> [0-9]+\.[0-9]+s +better$' "$tmp/up.out")" -eq 2 ]
check "the TTF rows show a failover only with the candidate" \
    [ "$(grep -Ec '^ +TTF +- -> 0\.[0-9]+s ' "$tmp/up.out")" -eq 2 ]
check "the avg cost rows show both prices and the change" \
    [ "$(grep -Ec '^ +avg cost +\$0\.[0-9]{5} -> \$0\.[0-9]{5} +[-+]\$0\.[0-9]{5}' "$tmp/up.out")" -eq 2 ]
check "the summary counts both configs" grep -q '^2 of 2 scenarios passed with the candidate (0 with the baseline)' "$tmp/up.out"
for s in gate-short-revoked-key gate-short-503-burst; do
  for side in candidate baseline; do
    check "$side/$s has its run DB and closeout" [ -s "$tmp/up/$side/$s/run.db" -a -s "$tmp/up/$side/$s/closeout.md" ]
  done
done
# Same seeds, same schedule: the two runs of a scenario sent the same requests.
a=$(sqlite3 "$tmp/up/candidate/gate-short-revoked-key/run.db" "select group_concat(intended_us || ':' || ifnull(tenant,'') || ':' || ifnull(feature,''), ',') from (select * from requests order by seq)")
b=$(sqlite3 "$tmp/up/baseline/gate-short-revoked-key/run.db" "select group_concat(intended_us || ':' || ifnull(tenant,'') || ':' || ifnull(feature,''), ',') from (select * from requests order by seq)")
check "both configs got the same schedule and prompts (same seed)" [ -n "$a" -a "$a" = "$b" ]
base_sr=$(json "$tmp/up/baseline/gate-short-revoked-key/report.json" 'd["phases"]["all"]["success_rate"]')
check "the SR shown for the baseline is its report's (${base_sr}%)" \
    grep -Eq "^ +SR +$(printf '%.2f' "$base_sr")% -> " "$tmp/up.out"
check "JUnit has the candidate's cases and no failures" grep -q '<testsuites name="slodrill gate" tests="[1-9][0-9]*" failures="0"' "$tmp/up/junit.xml"
check "JUnit carries the baseline's verdict as a property" \
    [ "$(grep -c '<property name="baseline.verdict" value="FAIL"/>' "$tmp/up/junit.xml")" -eq 2 ]
check "and its success rate" grep -q "<property name=\"baseline.success_rate\" value=\"$(printf '%.2f' "$base_sr")\"/>" "$tmp/up/junit.xml"
check "JUnit is well-formed" python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$tmp/up/junit.xml"

# Swapped: the candidate loses its second provider; the gate fails on it.
timeout 120 "${SLODRILL_CMD[@]}" gate "$one" "${scen[@]}" --baseline "$two" --out "$tmp/down" \
    --junit "$tmp/down.xml" --quiet >"$tmp/down.out" 2>"$tmp/down.err"; rc=$?
cat "$tmp/down.out"
check "candidate single-provider vs baseline two-provider exits 1 (got $rc)" [ "$rc" -eq 1 ]
check "the verdict table shows the candidate failing" \
    [ "$(grep -Ec '^gate-short-(revoked-key|503-burst) +FAIL ' "$tmp/down.out")" -eq 2 ]
check "side by side: PASS -> FAIL, regressed" \
    [ "$(grep -Ec '^gate-short-(revoked-key|503-burst) +verdict +PASS -> FAIL +regressed$' "$tmp/down.out")" -eq 2 ]
check "the success rate rows say worse" \
    [ "$(grep -Ec '^ +SR +100\.00% -> [0-9.]+% +-[0-9.]+ pts, worse$' "$tmp/down.out")" -eq 2 ]
check "JUnit records the candidate's failures" grep -q '<failure ' "$tmp/down.xml"
check "JUnit's baseline properties say PASS" \
    [ "$(grep -c '<property name="baseline.verdict" value="PASS"/>' "$tmp/down.xml")" -eq 2 ]
secs=$(( $(date +%s) - start ))
echo "# two gate runs took ${secs}s"
check "both gate runs together stay under 90 s (${secs}s)" [ "$secs" -lt 90 ]
finish

#!/usr/bin/env bash
# e2e_gate.sh -- the CI gate end to end over real sockets: the two-provider
# config passes every gate scenario, the single-provider one fails the
# revoked-key and egress scenarios, and the figures come from the run DB.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-e2e.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ "${SLODRILL_VALGRIND:-0}" = 1 ]; then
  # Timing-bound scenarios mean nothing at valgrind's speed; e2e_run.sh
  # covers the same code under valgrind.
  ok "skipped under valgrind"; finish
fi

"${SLODRILL_CMD[@]}" gate scenarios/configs/two-provider.yaml scenarios/gate/*.yaml \
    --out "$tmp/two" --junit "$tmp/two.xml" --quiet >"$tmp/two.out" 2>"$tmp/two.err"
rc=$?
cat "$tmp/two.out"
check "gate with the two-provider config exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "every gate scenario passes with two providers" \
    [ "$(grep -c ' PASS ' "$tmp/two.out")" -eq "$(ls scenarios/gate/*.yaml | wc -l)" ]
check "junit.xml is written and has no failures" grep -q 'failures="0"' "$tmp/two.xml"

rk=$tmp/two/primary-revoked-key
ttf=$(json "$rk/report.json" 'd["timings"]["ttf_s"]' 2>/dev/null || echo 99)
sr=$(json "$rk/report.json" 'd["phases"]["all"]["success_rate"]' 2>/dev/null || echo 0)
echo "# primary-revoked-key: TTF=${ttf}s SR=${sr}%"
check "revoked key: time to failover under 1 s (${ttf}s)" python3 -c "import sys; sys.exit(0 if 0 <= float('$ttf') < 1.0 else 1)"
check "revoked key: success rate holds 99.5% (${sr}%)" python3 -c "import sys; sys.exit(0 if float('$sr') >= 99.5 else 1)"
# The same figures straight from the run DB.
total=$(sqlite3 "$rk/run.db" "select count(*) from requests")
okn=$(sqlite3 "$rk/run.db" "select count(*) from requests where outcome='ok'")
sec=$(sqlite3 "$rk/run.db" "select count(*) from requests where provider='secondary' and outcome='ok'")
echo "# run DB: $total requests, $okn ok, $sec served by the secondary"
check "run DB holds the whole schedule (480 requests, got $total)" [ "$total" -eq 480 ]
check "the secondary served requests during the fault ($sec)" [ "$sec" -gt 100 ]
check "closeout.md has the summary line" grep -Eq 'TTR=[0-9.]+s, p95=[0-9.]+s, SR=[0-9.]+%' "$rk/closeout.md"
check "closeout.md shows the fault in its timeline" grep -q 'fault_on' "$rk/closeout.md"
"${SLODRILL_CMD[@]}" report "$rk/run.db" --out "$tmp/again" >"$tmp/again.out" 2>&1
check "slodrill report recomputes the same summary from the run DB" \
    [ "$(head -1 "$tmp/again.out")" = "$(grep -Eo 'TTR=[^`]*%' "$rk/closeout.md" | head -1)" ]

"${SLODRILL_CMD[@]}" gate scenarios/configs/single-provider.yaml scenarios/gate/*.yaml \
    --out "$tmp/one" --junit "$tmp/one.xml" --quiet >"$tmp/one.out" 2>"$tmp/one.err"
rc=$?
cat "$tmp/one.out"
check "gate with the single-provider config exits 1 (got $rc)" [ "$rc" -eq 1 ]
check "single provider fails primary-revoked-key" grep -Eq '^primary-revoked-key +FAIL' "$tmp/one.out"
check "single provider fails primary-egress-refused" grep -Eq '^primary-egress-refused +FAIL' "$tmp/one.out"
check "the failing rows say why (success rate)" grep -Eiq '^primary-revoked-key +FAIL.*success rate' "$tmp/one.out"
check "junit.xml records the failures" grep -q '<failure ' "$tmp/one.xml"
finish

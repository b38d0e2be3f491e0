#!/usr/bin/env bash
# e2e_drill_auto.sh -- `slodrill drill --scenario FILE --auto`, the rehearsal:
# the drill starts the scenario's fakes and the built-in router itself,
# injects the scenario's first fault at "induce failure" and clears it at
# rollback. A scripted run completes every phase with exit 0, the closeout
# shows the failover, and the drill's end drains the load (nothing cut).
# --auto without --scenario is refused: it never touches a real system.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-dauto.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
scen=tests/data/short-revoked-key.yaml

"${SLODRILL_CMD[@]}" drill --auto --target http://127.0.0.1:9 --model app/chat --out "$tmp/no" \
    >"$tmp/no.out" 2>"$tmp/no.err"; rc=$?
check "--auto without --scenario exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "and says it is for rehearsals only" grep -q 'rehearsals only and needs --scenario' "$tmp/no.err"
check "and nothing ran" [ ! -e "$tmp/no" ]
"${SLODRILL_CMD[@]}" drill --auto --scenario "$scen" --target http://127.0.0.1:9 --out "$tmp/no2" \
    >/dev/null 2>"$tmp/no2.err"; rc=$?
check "--scenario with --target exits 2 (got $rc)" [ "$rc" -eq 2 ]

# The script: 3 s of baseline, done; the tool injects; 5 s of failover, a
# note, rollback; the tool clears; done; 3 s of verification, done.
printf '%s\n' 'wait 3' 'note baseline fine' done 'wait 5' 'note secondary serving' rollback \
    done 'wait 3' done >"$tmp/answers"
timeout 90 "${SLODRILL_CMD[@]}" drill --scenario "$scen" --auto --answers "$tmp/answers" \
    --out "$tmp/d" >"$tmp/d.out" 2>&1; rc=$?
cat "$tmp/d.out"
db=$tmp/d/run.db
check "the scripted --auto drill exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "every SOP phase is in the timeline" [ "$(sqlite3 "$db" "select group_concat(subject) from events where kind='phase'")" = \
    "pre-checks,induce-failure,watch-failover,rollback,verification,closeout" ]
check "the tool injected the scenario's fault itself" \
    [ "$(sqlite3 "$db" "select subject || ' ' || detail from events where kind='fault_on'")" = \
      "primary drill --auto injected revoke_key on primary" ]
check "and cleared it at rollback" \
    [ "$(sqlite3 "$db" "select count(*) from events where kind='fault_off' and detail like '%cleared revoke_key on primary (rollback)'")" -eq 1 ]
check "the fault went on in induce-failure and off in rollback" \
    [ "$(sqlite3 "$db" "select (select t_us from events where kind='fault_on') >= (select t_us from events where kind='phase' and subject='induce-failure') and (select t_us from events where kind='fault_off') >= (select t_us from events where kind='phase' and subject='rollback')")" = 1 ]
check "the router's cooldown of the primary is in the timeline" \
    [ "$(sqlite3 "$db" "select count(*) from events where kind='cooldown_start' and subject='primary'")" -ge 1 ]
check "the secondary served during the fault" \
    [ "$(sqlite3 "$db" "select count(*) from requests where provider='secondary' and outcome='ok'")" -gt 20 ]
check "the primary served before it" \
    [ "$(sqlite3 "$db" "select count(*) from requests where provider='primary' and outcome='ok'")" -gt 10 ]
check "no request failed, and none was cut at the end (drained)" \
    [ "$(sqlite3 "$db" "select count(*) from requests where outcome not in ('ok','served_from_cache')")" -eq 0 ]
check "the notes are stamped" [ "$(sqlite3 "$db" "select count(*) from events where kind='note'")" -eq 2 ]
check "the run is sealed complete" [ "$(sqlite3 "$db" "select detail from events where kind='run_end'")" = complete ]
check "the closeout shows the failover to the secondary with its TTF" \
    grep -Eq '\| failover \| secondary \| first success served away from primary: TTF [0-9.]+ s' "$tmp/d/closeout.md"
fv=$(json "$tmp/d/report.json" '[c["verdict"] for c in d["checks"] if c["name"] == "failover_within"]')
check "the closeout checks the scenario's failover bound, and it passed ($fv)" [ "$fv" = "['pass']" ]
ttf=$(json "$tmp/d/report.json" 'd["timings"]["ttf_s"]')
check "time to failover under the scenario's 1 s (${ttf}s)" python3 -c "import sys; sys.exit(0 if 0 <= float('$ttf') < 1.0 else 1)"
check "the on-call line is printed" grep -Eq '^  TTR=.*p95=.*SR=100\.00%' "$tmp/d.out"
check "the live view showed the secondary taking over" grep -q 'since fault .*served by secondary' "$tmp/d.out"
check "the drill lists the fakes it started" grep -Eq '^  primary +http://127\.0\.0\.1:[0-9]+$' "$tmp/d.out"
finish

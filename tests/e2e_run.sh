#!/usr/bin/env bash
# e2e_run.sh -- one short drill end to end (under valgrind with make valgrind):
# the run passes with an Anthropic secondary behind the router, reports come
# from the run DB, and an interrupted or killed run keeps what it recorded.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"${SLODRILL_CMD[@]}" run tests/data/short-revoked-key.yaml --out "$tmp/a" --quiet >"$tmp/a.out" 2>"$tmp/a.err"
rc=$?
cat "$tmp/a.out"; tail -5 "$tmp/a.err"
check "a short drill with an Anthropic secondary passes (exit $rc)" [ "$rc" -eq 0 ]
for f in run.db closeout.md report.json junit.xml; do
  check "the run wrote $f" [ -s "$tmp/a/$f" ]
done
check "it prints the summary line" grep -Eq '^TTR=[^,]+, p95=[0-9.]+s, SR=[0-9.]+%$' "$tmp/a.out"
n=$(sqlite3 "$tmp/a/run.db" "select count(*) from requests where provider='secondary' and outcome='ok'")
check "the Anthropic secondary served after the revocation ($n requests)" [ "$n" -gt 20 ]
c=$(sqlite3 "$tmp/a/run.db" "select count(*) from requests where cost_usd > 0")
check "streamed answers carry their cost ($c priced)" [ "$c" -gt 50 ]
status=$(sqlite3 "$tmp/a/run.db" "select status from runs")
check "the run DB is sealed as complete ($status)" [ "$status" = complete ]

# SIGINT half-way: reports are still written, the DB says aborted, exit 130.
# With --realtime, the generator's thread alone runs SCHED_FIFO (ps: FF).
"${SLODRILL_CMD[@]}" run tests/data/short-revoked-key.yaml --out "$tmp/b" --quiet --realtime >"$tmp/b.out" 2>&1 &
pid=$!
sleep 3
classes=$(ps -L -o cls= -p "$pid" | sort | uniq -c | tr -s ' \n' ' ')
if chrt -f 10 true 2>/dev/null; then # allowed here (root or CAP_SYS_NICE)
  check "--realtime: one thread runs FF, the others TS ($classes)" \
    bash -c '[ "$(ps -L -o cls= -p "$1" | grep -c FF)" -eq 1 ] && ps -L -o cls= -p "$1" | grep -q TS' _ "$pid"
else
  check "--realtime where it is not allowed: a warning, and the run goes on" \
    grep -q -- '--realtime: cannot run at real-time priority' "$tmp/b.out"
fi
kill -INT "$pid"
wait "$pid"; rc=$?
check "SIGINT ends the run with exit 130 (got $rc)" [ "$rc" -eq 130 ]
check "an interrupted run still writes its closeout" [ -s "$tmp/b/closeout.md" ]
status=$(sqlite3 "$tmp/b/run.db" "select status from runs")
check "an interrupted run is recorded as aborted ($status)" [ "$status" = aborted ]

# SIGKILL half-way: nothing can be written at the end, but what was
# recorded is there, and report says the run is incomplete.
if [ "${SLODRILL_VALGRIND:-0}" != 1 ]; then
  "$SLODRILL" run tests/data/short-revoked-key.yaml --out "$tmp/c" --quiet >/dev/null 2>&1 &
  pid=$!
  sleep 3
  kill -KILL "$pid"; wait "$pid" 2>/dev/null
  n=$(sqlite3 "$tmp/c/run.db" "select count(*) from requests")
  check "a killed run keeps the requests it recorded ($n)" [ "$n" -gt 10 ]
  "$SLODRILL" report "$tmp/c/run.db" --out "$tmp/c/again" >"$tmp/c.out" 2>&1
  check "its report says the run is incomplete" grep -qi 'incomplete' "$tmp/c/again/closeout.md"
fi
finish

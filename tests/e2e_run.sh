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

# The live line. On a terminal (script(1) gives the run a pty): redrawn in
# place every second with the figures and the fault while it is active, and
# the check list in colour unless NO_COLOR. Not on a terminal: plain lines.
# --quiet: neither.
if command -v script >/dev/null 2>&1 && [ "${SLODRILL_VALGRIND:-0}" != 1 ]; then
  TERM=xterm script -qec "env -u NO_COLOR $SLODRILL run tests/data/short-revoked-key.yaml --out $tmp/t" \
    "$tmp/tty.raw" >/dev/null 2>&1
  tr '\r' '\n' <"$tmp/tty.raw" >"$tmp/tty.txt"
  redraws=$(grep -c 'SR(10s)' "$tmp/tty.txt")
  check "on a terminal the live line is redrawn about once a second ($redraws times in 6 s)" \
    [ "$redraws" -ge 4 ]
  check "it shows elapsed/total, time left, rate, sent, in flight, ok, failed, dropped, SR, p95 and who serves" \
    grep -Eq '[0-9.]+s/6s \([0-9]+s left\) +(9|10|11) req/s +sent [0-9]+ +inflight [0-9]+ +ok [0-9]+ +failed [0-9]+ +dropped [0-9]+ +SR\(10s\) [0-9.]+% +p95\(10s\) [0-9.]+s +served by (primary|secondary) [0-9]+%' "$tmp/tty.txt"
  check "and the fault while it is active" grep -q 'faults: revoke_key@primary' "$tmp/tty.txt"
  check "each redraw erases the rest of the line (ESC [K)" grep -q $'\033\\[K' "$tmp/tty.raw"
  check "the check list is coloured on a terminal" grep -q $'\033\\[32mpass' "$tmp/tty.raw"
  NO_COLOR=1 TERM=xterm script -qec "$SLODRILL run tests/data/short-revoked-key.yaml --out $tmp/t2" \
    "$tmp/tty2.raw" >/dev/null 2>&1
  check "NO_COLOR: no colour codes on the terminal" bash -c '! grep -q $'"'"'\033\\[3[0-9]m'"'"' "$1"' _ "$tmp/tty2.raw"
fi
"${SLODRILL_CMD[@]}" run tests/data/short-revoked-key.yaml --out "$tmp/p" >"$tmp/p.out" 2>"$tmp/p.err"
check "not on a terminal: plain progress lines, no carriage returns" \
  bash -c 'grep -q "SR(10s)" "$1" && ! grep -q $'"'"'\r'"'"' "$1"' _ "$tmp/p.err"

check "--quiet: no progress line" bash -c '! grep -q "SR(10s)" "$1"' _ "$tmp/a.err"

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

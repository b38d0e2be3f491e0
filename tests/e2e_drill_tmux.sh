#!/usr/bin/env bash
# e2e_drill_tmux.sh -- the drill as people use it: on a terminal. tmux runs
# `slodrill drill`; the script types at its prompts with send-keys and reads
# the screen with capture-pane, and revokes the primary's key when the
# operator would.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
if ! command -v tmux >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y tmux >/dev/null 2>&1; fi
  command -v tmux >/dev/null || { echo "ok - skipped: tmux is not installed (apt-get install tmux)"; finish; }
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-tmux.XXXXXX")
sess=slodrill-drill-$$
pids=()
cleanup() { tmux kill-session -t "$sess" 2>/dev/null; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
wait_line() { local i; for i in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
screen() { tmux capture-pane -p -J -S -200 -t "$sess"; }
wait_screen() { # wait_screen PATTERN [SECONDS]
  local i n=$(( ${2:-15} * 10 ))
  for i in $(seq $n); do screen | grep -q -- "$1" && return 0; sleep 0.1; done
  return 1
}

"${SLODRILL_CMD[@]}" fake --config tests/data/promote_fakes.yaml >"$tmp/fakes" 2>&1 &
pids+=($!)
wait_line "$tmp/fakes" '^backup ' || { notok "fakes started"; finish; }
fast=$(awk '$1=="fast"{print $2}' "$tmp/fakes")
export FAST_BASE=$fast/v1 SLOW_BASE=$(awk '$1=="slow"{print $2"/v1"}' "$tmp/fakes")
export BACKUP_BASE=$(awk '$1=="backup"{print $2"/v1"}' "$tmp/fakes") PRIMARY_KEY=sk-test-fast
"${SLODRILL_CMD[@]}" router --config tests/data/promote_router.yaml --port 0 >"$tmp/router" 2>&1 &
pids+=($!)
wait_line "$tmp/router" '^router ' || { notok "router started"; finish; }
target=$(awk '/^router /{print $2}' "$tmp/router")

printf -v cmd '%q ' "${SLODRILL_CMD[@]}" drill --target "$target" --model app/chat --key-env DRILL_KEY --rate 10 --out "$tmp/d"
tmux new-session -d -s "$sess" -x 160 -y 50 \
    "DRILL_KEY=sk-local-test NO_COLOR=1 timeout --foreground 120 $cmd; echo DRILL-EXIT=\$?; sleep 60"
check "the drill names the roles" wait_screen 'Roles: drill lead (DL)'
check "pre-checks show the live baseline" wait_screen '\[pre-checks .*SR(10s) 100.00%'
tmux send-keys -t "$sess" 'note baseline pulled' Enter
check "a typed note is acknowledged with its time" wait_screen 'noted at [0-9.]*s: baseline pulled'
tmux send-keys -t "$sess" 'done' Enter
check "the tool offers the three ways to induce the failure" wait_screen 'C lower stream_timeout'
curl -s -X POST -d '{"fault":"revoke_key"}' "$fast/_chaos/faults" >/dev/null
tmux send-keys -t "$sess" 'done' Enter
check "watch-failover shows the secondary taking over" wait_screen 'since fault [0-9]*s .*served by backup' 20
tmux send-keys -t "$sess" 'rollback' Enter
curl -s -X DELETE "$fast/_chaos/faults" >/dev/null
check "rollback asks for green health checks" wait_screen 'health checks are green'
tmux send-keys -t "$sess" 'done' Enter
check "verification follows" wait_screen '== verification'
sleep 3
tmux send-keys -t "$sess" 'done' Enter
check "closeout prints the line for the on-call channel" wait_screen '^  TTR=.*p95=.*SR=' 20
check "the drill exits 0 (its end drains the load: nothing is cut)" wait_screen 'DRILL-EXIT=0$' 10
check "closeout.md is written" [ -s "$tmp/d/closeout.md" ]
check "the note is in the run DB's timeline" \
    [ "$(sqlite3 "$tmp/d/run.db" "select subject from events where kind='note' and detail='baseline pulled'")" = pre-checks ]
finish

#!/usr/bin/env bash
# e2e_drill.sh -- a scripted Friday drill against `slodrill router` + `slodrill
# fake`: the script plays DL, operator and scribe through a FIFO, revokes the
# primary's key through the fake's control API, and checks the timeline, the
# notes, the failover and the closeout.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-drill.XXXXXX")
pids=()
cleanup() { exec 3>&- 2>/dev/null; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
wait_line() { local i; for i in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

"${SLODRILL_CMD[@]}" fake --config tests/data/promote_fakes.yaml >"$tmp/fakes" 2>&1 &
pids+=($!)
wait_line "$tmp/fakes" '^backup ' || { notok "fakes started"; finish; }
fast=$(awk '$1=="fast"{print $2}' "$tmp/fakes")
export FAST_BASE=$fast/v1 SLOW_BASE=$(awk '$1=="slow"{print $2"/v1"}' "$tmp/fakes")
export BACKUP_BASE=$(awk '$1=="backup"{print $2"/v1"}' "$tmp/fakes") PRIMARY_KEY=sk-test-fast
"${SLODRILL_CMD[@]}" router --config tests/data/promote_router.yaml --port 0 >"$tmp/router" 2>&1 &
pids+=($!)
wait_line "$tmp/router" '^router ' || { notok "router started"; finish; }
# The bypass path: the same config with BYPASS_ROUTER=true (straight to the
# first deployment, no retries or failover), as the SOP's one-switch bypass.
BYPASS_ROUTER=true "${SLODRILL_CMD[@]}" router --config tests/data/promote_router.yaml --port 0 >"$tmp/bypass" 2>&1 &
pids+=($!)
wait_line "$tmp/bypass" '^router ' || { notok "bypass router started"; finish; }
export DRILL_KEY=sk-local-test

mkfifo "$tmp/answers"
timeout 120 "${SLODRILL_CMD[@]}" drill --target "$(awk '/^router /{print $2}' "$tmp/router")" \
    --model app/chat --key-env DRILL_KEY --answers "$tmp/answers" --rate 10 --out "$tmp/d" \
    --bypass-url "$(awk '/^router /{print $2}' "$tmp/bypass")" \
    >"$tmp/drill.out" 2>&1 &
dpid=$!
pids+=($dpid)
exec 3>"$tmp/answers"
sleep 4
echo "note baseline pulled, bypass answers" >&3
echo done >&3                                     # pre-checks
sleep 1
curl -s -X POST -d '{"fault":"revoke_key"}' "$fast/_chaos/faults" >"$tmp/revoke" # option A
echo done >&3                                     # induce failure
sleep 6
echo "note secondary is serving" >&3
echo rollback >&3
curl -s -X DELETE "$fast/_chaos/faults" >/dev/null
echo done >&3                                     # rollback
sleep 4
echo done >&3                                     # verification
exec 3>&-
wait "$dpid"; rc=$?
cat "$tmp/drill.out"
db=$tmp/d/run.db
# The drill's end drains the load: the last requests finish instead of being
# cut, so every request holds and the checks pass.
check "the drill ends with its checks computed and passed (got $rc)" [ "$rc" -eq 0 ]
check "no request failed, and none was cut at the drill's end" \
    [ "$(sqlite3 "$db" "select count(*) from requests where outcome not in ('ok','served_from_cache')")" -eq 0 ]
check "the closeout let the requests in flight finish" grep -q 'requests in flight may finish' "$tmp/drill.out"
check "the fake took the revoked key" grep -q revoke_key "$tmp/revoke"
check "every SOP phase is in the timeline" [ "$(sqlite3 "$db" "select group_concat(subject) from events where kind='phase'")" = \
    "pre-checks,induce-failure,watch-failover,rollback,verification,closeout" ]
check "the scribe's notes are stamped" [ "$(sqlite3 "$db" "select count(*) from events where kind='note' and subject<>'bypass'")" -eq 2 ]
check "a note keeps its text and its phase" [ "$(sqlite3 "$db" "select subject from events where detail='secondary is serving'")" = watch-failover ]
check "fault_on and fault_off are recorded" [ "$(sqlite3 "$db" "select count(*) from events where kind in ('fault_on','fault_off')")" -eq 2 ]
check "the secondary served during the fault" [ "$(sqlite3 "$db" "select count(*) from requests where provider='backup' and outcome='ok'")" -gt 20 ]
check "the bypass path answered 10 of 10 in verification" \
    [ "$(sqlite3 "$db" "select detail from events where kind='note' and subject='bypass'" | tail -1 | grep -c '10 of 10 requests answered')" -eq 1 ]
check "the bypass path was checked in pre-checks too" grep -q 'bypass path: 1 of 1 requests answered 2xx' "$tmp/drill.out"
check "the live view showed who serves" grep -q 'served by backup' "$tmp/drill.out"
check "closeout.md was written from the run DB" grep -Eq 'TTR=[^,]+, p95=[0-9.]+s, SR=[0-9.]+%' "$tmp/d/closeout.md"
check "the 3-line summary is printed for the on-call channel" grep -Eq '^  TTR=.*SR=' "$tmp/drill.out"

# Input that ends before the closeout: the drill stops (exit 3) and still writes the closeout.
printf 'done\n' >"$tmp/short"
timeout 60 "${SLODRILL_CMD[@]}" drill --target "$(awk '/^router /{print $2}' "$tmp/router")" \
    --model app/chat --key-env DRILL_KEY --answers "$tmp/short" --rate 10 --out "$tmp/s" >"$tmp/s.out" 2>&1; rc=$?
check "a drill cut short exits 3 (got $rc)" [ "$rc" -eq 3 ]
check "and still writes its closeout" [ -s "$tmp/s/closeout.md" ]
check "a stopped drill cuts what is in flight instead of draining" grep -q 'requests in flight are cut' "$tmp/s.out"
# The stop condition: an alias with no second provider loses every request;
# the drill stops itself, says to roll back, and exits 3.
mkfifo "$tmp/answers2"
timeout 90 "${SLODRILL_CMD[@]}" drill --target "$(awk '/^router /{print $2}' "$tmp/router")" \
    --model cand/fast --key-env DRILL_KEY --answers "$tmp/answers2" --rate 10 --out "$tmp/stop" \
    >"$tmp/stop.out" 2>&1 &
dpid=$!
pids+=($dpid)
exec 3>"$tmp/answers2"
sleep 2
echo done >&3
curl -s -X POST -d '{"fault":"http_error","status":503}' "$fast/_chaos/faults" >/dev/null
echo done >&3
wait "$dpid"; rc=$?
exec 3>&-
curl -s -X DELETE "$fast/_chaos/faults" >/dev/null
check "a drill under the stop line exits 3 (got $rc)" [ "$rc" -eq 3 ]
check "it tells the DL to roll back" grep -q 'STOP: success rate .* for 10 s: roll back now' "$tmp/stop.out"
check "the stop is in the timeline" [ "$(sqlite3 "$tmp/stop/run.db" "select count(*) from events where kind='stop'")" -eq 1 ]

"${SLODRILL_CMD[@]}" drill --model app/chat >/dev/null 2>&1
check "drill without --target exits 2" [ $? -eq 2 ]
finish

#!/usr/bin/env bash
# e2e_promote.sh -- the 200-sample promotion check against a real router and
# real fake providers: a fast candidate is promoted (exit 0), a slow one is
# rejected (exit 1) with the 4-exceedance rule in its words, bad input exits 2.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-promote.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT

wait_line() { # wait_line FILE PATTERN -- up to 10 s
  local i
  for i in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

"${SLODRILL_CMD[@]}" fake --config tests/data/promote_fakes.yaml >"$tmp/fakes" 2>"$tmp/fakes.err" &
pids+=($!)
wait_line "$tmp/fakes" '^backup ' || { cat "$tmp/fakes.err"; notok "fakes started"; finish; }
export FAST_BASE=$(awk '$1=="fast"{print $2"/v1"}' "$tmp/fakes")
export SLOW_BASE=$(awk '$1=="slow"{print $2"/v1"}' "$tmp/fakes")
export BACKUP_BASE=$(awk '$1=="backup"{print $2"/v1"}' "$tmp/fakes")
export PRIMARY_KEY=sk-test-fast
"${SLODRILL_CMD[@]}" router --config tests/data/promote_router.yaml --port 0 >"$tmp/router" 2>"$tmp/router.err" &
pids+=($!)
wait_line "$tmp/router" '^router ' || { cat "$tmp/router.err"; notok "router started"; finish; }
target=$(awk '/^router /{print $2}' "$tmp/router")
export PROMOTE_KEY=sk-local-test
cat >"$tmp/slo.yaml" <<'SLO'
service: Support assistant
p95_latency_s: 2.5
avg_cost_usd: 0.015
SLO

"${SLODRILL_CMD[@]}" promote --target "$target" --model cand/fast --samples scenarios/prompts/support.jsonl \
    --slo "$tmp/slo.yaml" --key-env PROMOTE_KEY --rate 50 --concurrency 64 --out "$tmp/fast" >"$tmp/fast.out" 2>&1
rc=$?
cat "$tmp/fast.out"
judged "a fast candidate is promoted: exit 0 (got $rc)" [ "$rc" -eq 0 ]
valgrind_clean "promote" "$rc"
check "promotion.md and promotion.json are written" [ -s "$tmp/fast/promotion.md" -a -s "$tmp/fast/promotion.json" ]
check "200 requests were sent" [ "$(json "$tmp/fast/promotion.json" 'd["candidate"]["requests"]')" = 200 ]
judged "the verdict in promotion.json is promote" [ "$(json "$tmp/fast/promotion.json" 'd["verdict"]')" = promote ]
judged "the cost came from the router's responses" \
    python3 -c "import json,sys; d=json.load(open('$tmp/fast/promotion.json'))['candidate']; sys.exit(0 if d['cost_from_response']>=195 and 0<d['avg_cost_usd']<0.015 else 1)"
check "the run DB has the 200 requests" [ "$(sqlite3 "$tmp/fast/candidate.db" 'select count(*) from requests')" -eq 200 ]

"${SLODRILL_CMD[@]}" promote --target "$target" --model cand/slow --baseline cand/fast \
    --samples scenarios/prompts/support.jsonl --slo "$tmp/slo.yaml" --key-env PROMOTE_KEY \
    --rate 50 --concurrency 400 --out "$tmp/slow" >"$tmp/slow.out" 2>&1
rc=$?
cat "$tmp/slow.out"
check "a slow candidate is rejected: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "the rejection states the 4-exceedance rule" \
    grep -Eq 'p95 <= 2.5 s at 95% confidence allows at most 4 of 200' "$tmp/slow/promotion.md"
check "the rejection counts the slow requests" grep -Eq '^  p95: [0-9]+ of 200 requests took longer than 2.5 s' "$tmp/slow.out"
check "the slow candidate's interval is in the report" grep -Eq 'first token p95 \(95% CI\)' "$tmp/slow/promotion.md"
check "the baseline ran beside it and is compared pair by pair" \
    grep -Eq 'Over [0-9]+ answered pairs the median per-pair difference is \+[0-9.]+ s' "$tmp/slow/promotion.md"
check "the baseline would pass" [ "$(json "$tmp/slow/promotion.json" 'd["baseline"]["passed"]')" = True ]
check "both arms sent 200 requests" [ "$(sqlite3 "$tmp/slow/baseline.db" 'select count(*) from requests')" -eq 200 ]

# Too few samples for the rule at all: 50 requests cannot show a p95 at 95%.
"${SLODRILL_CMD[@]}" promote --target "$target" --model cand/fast --samples scenarios/prompts/support.jsonl \
    --key-env PROMOTE_KEY --count 50 --rate 50 --out "$tmp/few" >"$tmp/few.out" 2>&1
rc=$?
check "50 samples are too few to promote: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "and the report says how many are needed" grep -q 'at least 59 are needed' "$tmp/few.out"

"${SLODRILL_CMD[@]}" promote --target "$target" --model cand/fast >"$tmp/o" 2>"$tmp/e"; rc=$?
check "missing --samples exits 2 (got $rc)" [ "$rc" -eq 2 ]
printf '{"prompt": "hi"}\n{"messages": 3}\n' >"$tmp/bad.jsonl"
"${SLODRILL_CMD[@]}" promote --target "$target" --model cand/fast --samples "$tmp/bad.jsonl" >"$tmp/o" 2>"$tmp/e"; rc=$?
check "a bad samples file exits 2 with file:line (got $rc)" [ "$rc" -eq 2 ] && grep -q 'bad.jsonl:2' "$tmp/e"
"${SLODRILL_CMD[@]}" promote --target "$target" --model cand/fast --samples scenarios/prompts/support.jsonl --key-env NOT_SET_ANYWHERE >"$tmp/o" 2>"$tmp/e"; rc=$?
check "an unset --key-env variable exits 2 (got $rc)" [ "$rc" -eq 2 ]
"${SLODRILL_CMD[@]}" promote --help | grep -q 'exit codes: 0 promote, 1 reject, 2 bad input'
check "promote --help documents its exit codes" [ $? -eq 0 ]
finish

#!/usr/bin/env bash
# e2e_redis.sh -- two `slodrill router` processes sharing one real redis-server (cache,
# budgets and cooldowns with backend: redis): an answer cached by one is a hit on the
# other, a tenant's spend on one is refused on the other at its cap, a cooldown started
# by one is seen by the other, `slodrill cache stats|purge` read and purge the shared
# entries, and with Redis stopped both still answer. Installs Debian's
# redis-server as root when missing; prints a skip line when it cannot.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-redis.XXXXXX")
kpid= fpid= apid= bpid=
stop() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; }
cleanup() {
  stop "$apid"; stop "$bpid"; stop "$fpid"; stop "$kpid"
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! command -v redis-server >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "# installing redis-server (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1; }
fi
if ! command -v redis-server >/dev/null; then
  echo "ok - # SKIP redis-server is not installed (as root: apt-get install redis-server)"
  finish
fi

# wait_lines FILE N PID: until FILE has N lines (5 s at most) or PID died.
wait_lines() {
  local _
  for _ in $(seq 1 50); do
    [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# redis-server has no --port 0: take a free port from the kernel, release it, use it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$tmp" \
  >"$tmp/redis.log" 2>&1 &
kpid=$!
for _ in $(seq 1 50); do
  redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
check "redis-server answers on 127.0.0.1:$port" [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]
R="redis://127.0.0.1:$port/0"

cat >"$tmp/fakes.yaml" <<'EOF'
providers:
  - { name: primary, dialect: openai, key: sk-test-redis-primary-0123456789,
      latency: { ttft_ms: { median: 5, p95: 10 }, tokens_per_s: 2000, output_tokens: 12 } }
  - { name: secondary, dialect: openai, key: sk-test-redis-secondary-0123456789,
      latency: { ttft_ms: { median: 5, p95: 10 }, tokens_per_s: 2000, output_tokens: 12 } }
EOF
"${SLODRILL_CMD[@]}" fake --config "$tmp/fakes.yaml" >"$tmp/fakes" 2>"$tmp/fake.err" &
fpid=$!
wait_lines "$tmp/fakes" 2 "$fpid"
p=$(awk '$1 == "primary" {print $2}' "$tmp/fakes")
s=$(awk '$1 == "secondary" {print $2}' "$tmp/fakes")
check "slodrill fake printed both providers" [ -n "$p" -a -n "$s" ]

cat >"$tmp/router.yaml" <<EOF
model_list:
  - model_name: app/chat
    litellm_params: {model: openai/gpt-4o, api_base: "$p/v1", api_key: sk-test-redis-primary-0123456789,
                     order: 1, input_cost_per_token: 0.001, output_cost_per_token: 0.001}
    model_info: {id: primary}
  - model_name: app/chat
    litellm_params: {model: openai/gpt-4o, api_base: "$s/v1", api_key: sk-test-redis-secondary-0123456789,
                     order: 2, input_cost_per_token: 0.001, output_cost_per_token: 0.001}
    model_info: {id: secondary}
router_settings:
  num_retries: 0
  cooldown_time: 60
  slodrill_shared_cooldowns: "$R"
cache: {backend: redis, url: "$R", ttl: 1h}
budgets:
  backend: redis
  url: "$R"
  tenants:
    small: {monthly_usd: 0.001}
EOF
start_router() { # start_router NAME -> sets the pid in ${NAME}pid via the file
  "${SLODRILL_CMD[@]}" router --config "$tmp/router.yaml" --port 0 >"$tmp/$1.out" 2>"$tmp/$1.err" &
}
start_router a; apid=$!
start_router b; bpid=$!
wait_lines "$tmp/a.out" 1 "$apid"; wait_lines "$tmp/b.out" 1 "$bpid"
A=$(awk '$1 == "router" {print $2}' "$tmp/a.out")
B=$(awk '$1 == "router" {print $2}' "$tmp/b.out")
check "two routers started on the same Redis" [ -n "$A" -a -n "$B" ]
if [ -z "$A" ] || [ -z "$B" ]; then cat "$tmp/a.err" "$tmp/b.err"; finish; fi

# ask URL TENANT PROMPT -> headers in $tmp/h, body in $tmp/b, status printed
ask() {
  curl -s -m 10 -D "$tmp/h" -o "$tmp/b" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "x-tenant-id: $2" \
    -d "{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":\"$3\"}]}" \
    "$1/v1/chat/completions"
}
hdr() { tr -d '\r' <"$tmp/h" | awk -v n="$1" 'tolower($1) == tolower(n) ":" {print $2}'; }

st=$(ask "$A" acme "Where is my order?")
check "router A answers (HTTP $st), a cache miss ($(hdr x-slodrill-cache))" \
  [ "$st" = 200 -a "$(hdr x-slodrill-cache)" = miss ]
first=$(json "$tmp/b" 'd["choices"][0]["message"]["content"]')
st=$(ask "$B" acme "Where is my order?")
check "router B answers the same question from the shared cache ($(hdr x-slodrill-cache), $(hdr x-slodrill-deployment))" \
  [ "$st" = 200 -a "$(hdr x-slodrill-cache)" = hit -a "$(hdr x-slodrill-deployment)" = cache ]
check "with router A's answer" [ "$(json "$tmp/b" 'd["choices"][0]["message"]["content"]')" = "$first" ]
st=$(ask "$B" globex "Where is my order?")
check "another tenant is never served acme's entry ($(hdr x-slodrill-cache))" [ "$(hdr x-slodrill-cache)" = miss ]
check "the entry is in Redis under slodrill:cache:" \
  [ "$(redis-cli -p "$port" --scan --pattern 'slodrill:cache:*' | grep -vc counters)" -ge 2 ]

# spend: one answer on A passes tenant small's cap; B refuses the next one
st=$(ask "$A" small "How much is shipping?")
check "router A serves tenant small once (HTTP $st)" [ "$st" = 200 ]
for _ in $(seq 1 20); do
  st=$(ask "$B" small "And returns?")
  [ "$st" = 400 ] && break
  sleep 0.1
done
check "router B refuses tenant small at its cap (HTTP $st)" [ "$st" = 400 ]
check "with budget_exceeded" grep -q budget_exceeded "$tmp/b"

# cooldowns: the primary's key is revoked; A cools it; B goes straight to the secondary
"${SLODRILL_CMD[@]}" fault add "$p" revoke_key >/dev/null 2>&1
st=$(ask "$A" acme "Cooldown test one")
check "router A fails over to the secondary ($(hdr x-slodrill-deployment))" \
  [ "$st" = 200 -a "$(hdr x-slodrill-deployment)" = secondary ]
sleep 0.3
before=$("${SLODRILL_CMD[@]}" fault journal "$p" --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo -1)
st=$(ask "$B" acme "Cooldown test two")
check "router B, told by A through Redis, tries only the secondary (attempts $(hdr x-slodrill-attempts))" \
  [ "$st" = 200 -a "$(hdr x-slodrill-deployment)" = secondary -a "$(hdr x-slodrill-attempts)" = 1 ]
after=$("${SLODRILL_CMD[@]}" fault journal "$p" --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo -2)
check "the primary saw no request from B ($before -> $after)" [ "$before" = "$after" ]
curl -s -m 5 "$B/admin/deployments" >"$tmp/deps"
left=$(json "$tmp/deps" '[x["cooldown_remaining_ms"] for x in d["data"] if x["id"] == "primary"][0]' 2>/dev/null)
check "router B's /admin/deployments shows the primary cooling (${left:-?} ms left)" \
  [ "${left:-0}" -gt 30000 ]
check "the cooldown is a key in Redis" [ -n "$(redis-cli -p "$port" get slodrill:cooldown:primary)" ]

# slodrill cache stats|purge on the Redis backend, checked against what redis-cli sees
sleep 0.6 # the routers add their counters every 250 ms
rkeys() { # the entry keys: what redis-cli --scan lists but the counters
  redis-cli -p "$port" --scan --pattern 'slodrill:cache:*' | grep -vx 'slodrill:cache:counters' | sort
}
tkeys() { # tkeys TENANT: the entry keys of TENANT
  local k
  for k in $(rkeys); do [ "$(redis-cli -p "$port" hget "$k" tenant)" = "$1" ] && echo "$k"; done
}
thits() { # thits TENANT: the sum of the hits fields of TENANT's entries
  local k sum=0 h
  for k in $(tkeys "$1"); do h=$(redis-cli -p "$port" hget "$k" hits); sum=$((sum + ${h:-0})); done
  echo "$sum"
}
n=$(rkeys | wc -l)
hits=$(redis-cli -p "$port" hget slodrill:cache:counters hits)
lookups=$(redis-cli -p "$port" hget slodrill:cache:counters lookups)
acme_n=$(tkeys acme | wc -l); acme_h=$(thits acme); globex_n=$(tkeys globex | wc -l)
"${SLODRILL_CMD[@]}" cache stats --config "$tmp/router.yaml" >"$tmp/cs" 2>"$tmp/cs.err"; rc=$?
cat "$tmp/cs" "$tmp/cs.err"
check "cache stats --config on backend: redis exits 0 (got $rc)" [ "$rc" = 0 ]
check "it names the Redis URL" grep -qx "cache $R" "$tmp/cs"
check "its entries are the $n keys redis-cli --scan lists, all live" \
  grep -qE "^entries   $n \($n live, 0 expired\), [0-9.]+ KiB$" "$tmp/cs"
check "lookups and hits are the counters hash's ($lookups, $hits)" \
  grep -qE "^lookups   ${lookups:-x}: ${hits:-x} hits, " "$tmp/cs"
check "acme's row has its $acme_n entries and $acme_h hits" \
  grep -qE "^  acme +\(none\) +$acme_n +$acme_h$" "$tmp/cs"
check "globex's row has its $globex_n entry" grep -qE "^  globex +\(none\) +$globex_n +0$" "$tmp/cs"
check "(at least 2 acme entries and a hit to count)" [ "$acme_n" -ge 2 -a "$acme_h" -ge 1 ]

# an entry that expired an hour ago (as a router writes it, with HSET)
old=slodrill:cache:0123456789abcdef0123456789abcdef
past=$(( $(date +%s) * 1000 - 3600000 ))
redis-cli -p "$port" hset "$old" tenant acme feature faq alias app/chat keytext "old key" \
  answer '{"old":true}' cost 0 created_ms $((past - 3600000)) expires_ms "$past" >/dev/null
"${SLODRILL_CMD[@]}" cache stats --redis "$R" >"$tmp/cs" 2>&1
check "stats --redis counts it as expired" grep -qE "^entries   $((n + 1)) \($n live, 1 expired\)" "$tmp/cs"
check "in a row of its own" grep -qE "^  acme +faq +1 +0$" "$tmp/cs"
before=$(rkeys)
"${SLODRILL_CMD[@]}" cache purge --config "$tmp/router.yaml" --expired >"$tmp/cp" 2>&1; rc=$?
cat "$tmp/cp"
check "purge --expired purges 1 entry (exit $rc)" grep -qx "purged 1 entry from $R" "$tmp/cp"
check "the expired entry is gone from Redis" [ "$(redis-cli -p "$port" exists "$old")" = 0 ]
check "and every live one is still there" [ "$(rkeys)" = "$(echo "$before" | grep -vx "$old")" ]
acme_keys=$(tkeys acme)
"${SLODRILL_CMD[@]}" cache purge --redis "$R" --tenant globex >"$tmp/cp" 2>&1; rc=$?
cat "$tmp/cp"
check "purge --tenant globex purges its $globex_n entry (exit $rc)" \
  grep -qx "purged $globex_n entr[a-z]* from $R" "$tmp/cp"
check "globex has no entry left in Redis" [ -z "$(tkeys globex)" ]
check "the others are all there ($((n - globex_n)) keys, acme's unchanged)" \
  [ "$(rkeys | wc -l)" = $((n - globex_n)) -a "$(tkeys acme)" = "$acme_keys" ]
check "the counters hash was left alone" [ "$(redis-cli -p "$port" hget slodrill:cache:counters hits)" = "$hits" ]
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"${SLODRILL_CMD[@]}" cache stats --redis "redis://127.0.0.1:$closed/0" >"$tmp/cs" 2>"$tmp/cs.err"; rc=$?
cat "$tmp/cs.err"
check "stats on a closed port exits 2 (got $rc)" [ "$rc" = 2 ]
check "naming the address it cannot reach" grep -q "cannot reach Redis at 127.0.0.1:$closed: " "$tmp/cs.err"

# Redis goes away: both routers still answer, on what they know locally
stop "$kpid"; kpid=
st=$(ask "$A" acme "Anyone there?")
t=$(curl -s -m 10 -o /dev/null -w '%{time_total}' -H 'Content-Type: application/json' \
  -d '{"model":"app/chat","messages":[{"role":"user","content":"Still?"}]}' "$B/v1/chat/completions")
check "with Redis stopped router A still answers (HTTP $st)" [ "$st" = 200 ]
check "and router B within a second (${t}s)" python3 -c "import sys; sys.exit(0 if float('$t') < 1 else 1)"
check "router A said Redis is gone and it goes on locally" grep -q 'uses what it knows locally' "$tmp/a.err"
finish

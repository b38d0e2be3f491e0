#!/usr/bin/env bash
# e2e_router_sdk.sh -- the official openai Node SDK and curl -N through
# `slodrill router` in front of `slodrill fake`, both real processes on
# ephemeral ports: answers parse in both dialects, failover is invisible, and
# a stream reaches the client chunk by chunk as the provider sends it.
# Installs Debian's nodejs+npm (as root) when node is missing, then the
# pinned SDK (tests/router-clients/setup.sh: npm ci, only when needed).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-router-sdk.XXXXXX")
fpid= rpid=
cleanup() {
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
  [ -n "$fpid" ] && kill "$fpid" 2>/dev/null && wait "$fpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

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

"${SLODRILL_CMD[@]}" fake --config tests/router-clients/fakes.yaml >"$tmp/fakes" 2>"$tmp/fake.err" &
fpid=$!
wait_lines "$tmp/fakes" 3 "$fpid"
oai=$(awk '$1 == "oai" {print $2}' "$tmp/fakes")
ant=$(awk '$1 == "ant" {print $2}' "$tmp/fakes")
slow=$(awk '$1 == "slow" {print $2}' "$tmp/fakes")
check "slodrill fake printed three providers' URLs" [ -n "$oai" -a -n "$ant" -a -n "$slow" ]
if [ -z "$oai" ] || [ -z "$ant" ] || [ -z "$slow" ]; then cat "$tmp/fake.err"; finish; fi

OAI_BASE=$oai/v1 OAI_KEY=sk-test-router-oai-0123456789 \
ANT_BASE=$ant ANT_KEY=sk-ant-test-router-ant \
SLOW_BASE=$slow/v1 SLOW_KEY=sk-test-router-slow-0123456789 \
  "${SLODRILL_CMD[@]}" router --config tests/router-clients/router.yaml --port 0 \
  --log "$tmp/requests.db" >"$tmp/router" 2>"$tmp/router.err" &
rpid=$!
wait_lines "$tmp/router" 1 "$rpid"
url=$(awk '$1 == "router" {print $2}' "$tmp/router")
check "slodrill router --port 0 printed its URL" [ -n "$url" ]
if [ -z "$url" ]; then cat "$tmp/router.err"; finish; fi
key=sk-router-sdk-master

# ---- curl -N: chunk by chunk, stamped as each line arrives ----
body='{"model":"app/slow","stream":true,"messages":[{"role":"user","content":"hi"}]}'
timeout 20 curl -sN -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "$body" "$url/v1/chat/completions" |
  while IFS= read -r line; do
    [ -n "$line" ] && printf '%s %s\n' "$(date +%s.%N)" "$line"
  done >"$tmp/stamped"
content=$(grep -c '"content":"[^"]' "$tmp/stamped")
first=$(grep -m1 '"content":"[^"]' "$tmp/stamped" | awk '{print $1}')
last=$(grep '"content":"[^"]' "$tmp/stamped" | tail -1 | awk '{print $1}')
spread=$(awk -v a="${first:-0}" -v b="${last:-0}" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
check "curl -N got at least 10 content chunks (got $content)" [ "$content" -ge 10 ]
check "the stream ended with data: [DONE]" grep -q 'data: \[DONE\]$' "$tmp/stamped"
# 25 tokens/s: the last content chunk arrives ~1 s after the first. A
# store-and-forward proxy would deliver them within a few ms of each other.
check "the first content chunk arrived well before the last ($spread ms apart)" [ "$spread" -ge 300 ]

# ---- the official SDK ----
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "# installing nodejs and npm (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null 2>&1; }
  fi
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  notok "node and npm are needed (as root: apt-get install nodejs npm)"
  finish
fi
check "the pinned openai SDK is installed (tests/router-clients/setup.sh)" tests/router-clients/setup.sh

SLODRILL_ROUTER_URL=$url SLODRILL_ROUTER_KEY=$key SLODRILL_OAI_URL=$oai SLODRILL_ANT_URL=$ant \
  timeout 120 node --test --test-reporter=tap tests/router-clients/router.test.mjs >"$tmp/tap" 2>&1
rc=$?
grep -E '^(ok|not ok) [0-9]+ - ' "$tmp/tap" | sed -E 's/^(ok|not ok) [0-9]+ - /\1 - sdk: /' >"$tmp/lines"
cat "$tmp/lines"
n=$(grep -c '^ok ' "$tmp/lines")
if [ "$rc" -ne 0 ]; then
  grep -A25 '^not ok' "$tmp/tap" | head -80
  notok "node --test passed (exit $rc)"
fi
check "the router SDK suite ran at least 10 tests (ran $n)" [ "$n" -ge 10 ]

kill "$rpid"; wait "$rpid"; rrc=$?; rpid=
check "slodrill router stopped cleanly on SIGTERM (exit $rrc)" [ "$rrc" -eq 0 ]

# --log: one row per chat request, written by the time the router has stopped.
q() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$tmp/requests.db" "$1"; }
rows=$(q "SELECT count(*) FROM requests")
# curl 1 + the suite's chat requests 15 (the wrong-key 401 is refused before
# it is a chat request, and models.list is not one)
check "--log wrote one row per chat request ($rows, want 16)" [ "${rows:-0}" -eq 16 ]
check "the curl -N stream is logged as a stream served by 'slow'" \
  [ "$(q "SELECT count(*) FROM requests WHERE alias='app/slow' AND stream=1 AND deployment='slow' AND outcome='ok' AND ttft_ms > 0")" -ge 2 ]
check "the failover is logged: served by 'secondary' after 2 attempts, 1 hop" \
  [ "$(q "SELECT count(*) FROM requests WHERE deployment='secondary' AND attempts=2 AND failover_hops=1")" -ge 1 ]
check "the all-failed request is logged as a 503 retryable_error" \
  [ "$(q "SELECT count(*) FROM requests WHERE status=503 AND outcome='retryable_error'")" -ge 1 ]
check "the unknown alias is logged as a 404 client_error" \
  [ "$(q "SELECT count(*) FROM requests WHERE status=404 AND alias='no/such' AND outcome='client_error'")" -eq 1 ]
kill "$fpid"; wait "$fpid"; fpid=
finish

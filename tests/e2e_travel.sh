#!/usr/bin/env bash
# e2e_travel.sh -- travel mode's browser half in headless Chromium (Debian's chromium driven by
# playwright-core, tests/travel/): `slodrill router` serves /travel/ and /travel/sw.js; one
# question is answered and saved by the service worker; the router is stopped by PID; the page
# reloads and the same question gets the saved answer marked as such. Prints a skip line when
# node, npm or chromium is missing or Chromium cannot start.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-travel.XXXXXX")
fpid= rpid=
stop() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; }
cleanup() { stop "$rpid"; stop "$fpid"; rm -rf "$tmp"; }
trap cleanup EXIT

wait_lines() { # FILE N PID: until FILE has N lines (5 s at most) or PID died
  local _
  for _ in $(seq 1 50); do
    [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

cat >"$tmp/fakes.yaml" <<'YAML'
providers:
  - { name: primary, dialect: openai, key: sk-test-travel-primary-0123456789,
      latency: { ttft_ms: { median: 5, p95: 10 }, tokens_per_s: 2000, output_tokens: 12 } }
YAML
"${SLODRILL_CMD[@]}" fake --config "$tmp/fakes.yaml" >"$tmp/fakes" 2>"$tmp/fake.err" &
fpid=$!
wait_lines "$tmp/fakes" 1 "$fpid"
p=$(awk '$1 == "primary" {print $2}' "$tmp/fakes")
cat >"$tmp/router.yaml" <<YAML
model_list:
  - model_name: app/chat
    litellm_params: {model: openai/gpt-4o-mini, api_base: "$p/v1", api_key: sk-test-travel-primary-0123456789}
YAML
"${SLODRILL_CMD[@]}" router --config "$tmp/router.yaml" --port 0 >"$tmp/router" 2>"$tmp/router.err" &
rpid=$!
wait_lines "$tmp/router" 1 "$rpid"
url=$(awk '$1 == "router" {print $2}' "$tmp/router")
check "slodrill router started (${url:-no URL})" [ -n "$url" ]
if [ -z "$url" ]; then cat "$tmp/router.err"; finish; fi

# the two files, as any client sees them
st=$(curl -s -m 5 -o "$tmp/sw.js" -D "$tmp/h" -w '%{http_code}' "$url/travel/sw.js")
type=$(tr -d '\r' <"$tmp/h" | awk 'tolower($1) == "content-type:" {print $2}')
check "GET /travel/sw.js is JavaScript (HTTP $st, ${type:-no type})" \
  [ "$st" = 200 -a "$type" = "text/javascript;" ]
check "the worker answers the chat endpoint from Cache Storage" grep -q "caches.match(key)" "$tmp/sw.js"
st=$(curl -s -m 5 -o "$tmp/page" -w '%{http_code}' "$url/travel/")
check "GET /travel/ is the demo page (HTTP $st)" [ "$st" = 200 ]
check "the page registers the worker" grep -q "register('/travel/sw.js'" "$tmp/page"
st=$(curl -s -m 5 -o /dev/null -D "$tmp/h" -w '%{http_code}' "$url/travel")
loc=$(tr -d '\r' <"$tmp/h" | awk 'tolower($1) == "location:" {print $2}')
check "GET /travel redirects to /travel/ (HTTP $st, ${loc:-no location})" \
  [ "$st" = 301 -a "$loc" = /travel/ ]
st=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/travel/nothing.js")
check "another /travel/ file is a 404 (HTTP $st)" [ "$st" = 404 ]

if ! command -v node >/dev/null || ! command -v npm >/dev/null || [ ! -x /usr/bin/chromium ]; then
  echo "ok - # SKIP the browser test needs node, npm and Debian's chromium (as root: apt-get install nodejs npm chromium)"
  finish
fi
if ! tests/travel/setup.sh; then
  echo "ok - # SKIP playwright-core could not be installed (npm ci in tests/travel failed)"
  finish
fi
timeout 120 node tests/travel/travel.mjs "$url" "$rpid" ${SLODRILL_TRAVEL_SHOT:+"$SLODRILL_TRAVEL_SHOT"} >"$tmp/browser" 2>&1
rc=$?
cat "$tmp/browser"
if [ "$rc" -eq 3 ]; then
  echo "ok - # SKIP headless Chromium could not start here"
  finish
fi
grep -q '^not ok' "$tmp/browser" && fails=$((fails + 1))
check "the browser session ran to its end (rc $rc)" [ "$rc" -eq 0 ]
wait "$rpid" 2>/dev/null; rpid=
finish

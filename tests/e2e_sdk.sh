#!/usr/bin/env bash
# e2e_sdk.sh -- the official openai and @anthropic-ai/sdk Node clients against
# `slodrill fake`: answers parse, faults surface as the SDKs' own errors.
# Installs Debian's nodejs+npm (as root) when node is missing, then the pinned
# SDKs (tests/clients/setup.sh).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-sdk.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

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
check "the pinned SDKs are installed (tests/clients/setup.sh)" tests/clients/setup.sh

"${SLODRILL_CMD[@]}" fake --config tests/clients/fakes.yaml >"$tmp/urls" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 100); do
  [ "$(wc -l <"$tmp/urls")" -ge 2 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
oai=$(awk '$1 == "oai" {print $2}' "$tmp/urls")
ant=$(awk '$1 == "ant" {print $2}' "$tmp/urls")
check "slodrill fake printed both providers' URLs" [ -n "$oai" -a -n "$ant" ]
if [ -z "$oai" ] || [ -z "$ant" ]; then cat "$tmp/err"; finish; fi

# Each node test becomes one ok/not ok line here (TAP from node --test).
SLODRILL_OAI_URL=$oai SLODRILL_OAI_KEY=sk-test-sdk-openai-0123456789 \
SLODRILL_ANT_URL=$ant SLODRILL_ANT_KEY=sk-ant-test-sdk-anthropic \
  timeout 300 node --test --test-reporter=tap \
    tests/clients/openai.test.mjs tests/clients/anthropic.test.mjs >"$tmp/tap" 2>&1
rc=$?
grep -E '^(ok|not ok) [0-9]+ - ' "$tmp/tap" | sed -E 's/^(ok|not ok) [0-9]+ - /\1 - sdk: /' |
  grep -v '^ok - sdk: .*\.test\.mjs$' | grep -v '^not ok - sdk: .*\.test\.mjs$' >"$tmp/lines"
cat "$tmp/lines"
n=$(grep -c '^ok ' "$tmp/lines")
if [ "$rc" -ne 0 ]; then
  grep -A25 '^not ok' "$tmp/tap" | head -80
  notok "node --test passed (exit $rc)"
fi
check "the SDK suites ran at least 20 tests (ran $n)" [ "$n" -ge 20 ]

kill "$pid"; wait "$pid"; frc=$?; pid=
check "slodrill fake stopped cleanly on SIGTERM (exit $frc)" [ "$frc" -eq 0 ]
finish

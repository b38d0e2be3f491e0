#!/usr/bin/env bash
# e2e_fault.sh -- `slodrill fault` against a running `slodrill fake`: add
# revoke_key and see curl get the 401, list it, clear it, and the exit codes
# for a refusal (1) and for bad usage or an unreachable fake (2).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-fault.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/fakes.yaml" <<'YAML'
providers:
  - { name: primary, dialect: openai, key: sk-test-primary-0123456789,
      latency: { ttft_ms: 5, tokens_per_s: 1000, output_tokens: 8 } }
  - { name: guarded, dialect: anthropic, key: sk-ant-test, control_token: s3cret,
      latency: { ttft_ms: 5, tokens_per_s: 1000, output_tokens: 8 } }
YAML
"${SLODRILL_CMD[@]}" fake --config "$tmp/fakes.yaml" >"$tmp/urls" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 100); do [ "$(wc -l <"$tmp/urls")" -ge 2 ] && break; sleep 0.1; done
url=$(awk '$1 == "primary" {print $2}' "$tmp/urls")
gurl=$(awk '$1 == "guarded" {print $2}' "$tmp/urls")
check "slodrill fake is listening" [ -n "$url" -a -n "$gurl" ]
[ -n "$url" ] || { cat "$tmp/err"; finish; }

ask() { # prints the HTTP status of one chat completion
  curl -s -o "$tmp/body" -w '%{http_code}' -m 5 "$url/v1/chat/completions" \
    -H 'Authorization: Bearer sk-test-primary-0123456789' -H 'Content-Type: application/json' \
    -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
}
check "before: a request succeeds (200)" [ "$(ask)" = 200 ]

"${SLODRILL_CMD[@]}" fault add "$url" revoke_key >"$tmp/o" 2>"$tmp/e"; rc=$?
check "fault add revoke_key exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "fault add prints the active fault" grep -q '^  revoke_key' "$tmp/o"
s=$(ask)
check "with revoke_key: curl gets 401 (got $s)" [ "$s" = 401 ]
check "the 401 is OpenAI's invalid_api_key body" grep -q '"code": "invalid_api_key"' "$tmp/body"

"${SLODRILL_CMD[@]}" fault journal "$url" --last 2 >"$tmp/o" 2>"$tmp/e"; rc=$?
cat "$tmp/o"
check "fault journal exits 0 and shows the last 2 requests" [ "$rc" -eq 0 -a "$(wc -l <"$tmp/o")" -eq 2 ]
check "the journal shows the 401 with revoke_key applied" grep -Eq ' 401 POST +/v1/chat/completions key=sk-test-\.\.\.6789 faults=revoke_key$' "$tmp/o"
check "the journal shows the earlier 200 with no fault" grep -Eq ' 200 POST +/v1/chat/completions key=sk-test-\.\.\.6789 faults=-$' "$tmp/o"
grep -q 'sk-test-primary-0123456789' "$tmp/o"
check "the journal never shows the whole key" [ $? -ne 0 ]

"${SLODRILL_CMD[@]}" fault add "$url/v1" http_error --status 502 --probability 0.5 --duration 60 >/dev/null 2>&1
check "a second fault with flags, URL with /v1 accepted" [ $? -eq 0 ]
"${SLODRILL_CMD[@]}" fault list "$url" >"$tmp/o" 2>"$tmp/e"; rc=$?
cat "$tmp/o"
check "fault list exits 0" [ "$rc" -eq 0 ]
check "fault list shows revoke_key" grep -q '^  revoke_key' "$tmp/o"
check "fault list shows http_error with its parameters" grep -Eq '^  http_error +status=502 probability=0.5 duration=60s' "$tmp/o"
check "fault list counts 2 active faults" grep -q '2 faults active' "$tmp/o"
"${SLODRILL_CMD[@]}" fault list "$url" --json >"$tmp/j"
check "fault list --json is the control API's JSON" [ "$(json "$tmp/j" 'len(d["faults"])')" = 2 ]

"${SLODRILL_CMD[@]}" fault clear "$url" revoke_key >"$tmp/o"; rc=$?
check "fault clear revoke_key exits 0 and leaves http_error" [ "$rc" -eq 0 ] 
check "after clearing one, one fault is left" grep -q '1 fault active' "$tmp/o"
"${SLODRILL_CMD[@]}" fault clear "$url" >"$tmp/o"; rc=$?
check "fault clear (all) exits 0 and lists none" [ "$rc" -eq 0 ]
check "no faults are left" grep -q '0 faults active' "$tmp/o"
check "after clearing: a request succeeds again (200)" [ "$(ask)" = 200 ]

# Refusals: exit 1.
"${SLODRILL_CMD[@]}" fault add "$gurl" overloaded >/dev/null 2>"$tmp/e"; rc=$?
check "without the control token the fake refuses: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "the refusal says why" grep -q 'x-slodrill-token' "$tmp/e"
"${SLODRILL_CMD[@]}" fault add "$gurl" overloaded --token s3cret >/dev/null 2>&1
check "with --token the fault is added" [ $? -eq 0 ]
"${SLODRILL_CMD[@]}" fault clear "$gurl" --token s3cret >/dev/null 2>&1

# Bad usage and an unreachable fake: exit 2, nothing sent.
"${SLODRILL_CMD[@]}" fault add "$url" revoke_keys >/dev/null 2>"$tmp/e"; rc=$?
check "an unknown fault exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "the error lists the faults" grep -q "unknown fault 'revoke_keys'" "$tmp/e"
"${SLODRILL_CMD[@]}" fault add "$url" http_error --status 999 >/dev/null 2>"$tmp/e"; rc=$?
check "a bad parameter exits 2 (got $rc)" [ "$rc" -eq 2 ]
"${SLODRILL_CMD[@]}" fault add "$url" >/dev/null 2>&1
check "add without a fault exits 2" [ $? -eq 2 ]
"${SLODRILL_CMD[@]}" fault frob "$url" >/dev/null 2>&1
check "an unknown action exits 2" [ $? -eq 2 ]
"${SLODRILL_CMD[@]}" fault list http://127.0.0.1:1 >/dev/null 2>"$tmp/e"; rc=$?
check "an unreachable fake exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "the message says it cannot reach the fake" grep -q 'cannot reach the fake' "$tmp/e"
out=$("${SLODRILL_CMD[@]}" fault --help); rc=$?
check "fault --help exits 0 and documents the exit codes" [ "$rc" -eq 0 ] 
echo "$out" | grep -q 'exit codes: 0 done; 1 the fake refused'
check "fault --help lists the exit codes" [ $? -eq 0 ]

kill "$pid"; wait "$pid"; rc=$?; pid=
check "slodrill fake stopped cleanly (exit $rc)" [ "$rc" -eq 0 ]
finish

#!/usr/bin/env bash
# e2e_lint.sh -- `slodrill lint CONFIG`: the golden findings on stdout, a count on
# stderr, exit 0 clean / 1 findings / 2 unreadable, and the kit's configs.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-lint.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

out=$("${SLODRILL_CMD[@]}" lint --help 2>&1); rc=$?
check "slodrill lint --help exits 0 and shows usage and exit codes" \
  [ "$rc" -eq 0 -a -n "$(echo "$out" | grep 'usage: slodrill lint')" -a -n "$(echo "$out" | grep 'exit codes')" ]
"${SLODRILL_CMD[@]}" --help | grep -q '^  lint CONFIG'
check "slodrill --help lists lint" [ $? -eq 0 ]

for name in settings deployments defaults clean; do
  f=tests/data/router_lint_$name.yaml
  "${SLODRILL_CMD[@]}" lint "$f" >"$tmp/$name.out" 2>"$tmp/$name.err"; rc=$?
  want=1; [ "$name" = clean ] && want=0
  check "lint $name exits $want (got $rc)" [ "$rc" -eq "$want" ]
  if diff -u "tests/data/router_lint_$name.out" "$tmp/$name.out" >"$tmp/diff"; then
    ok "lint $name prints the golden findings"
  else
    notok "lint $name prints the golden findings"; cat "$tmp/diff"
  fi
  n=$(wc -l <"$tmp/$name.out")
  check "lint $name counts its $n findings on stderr" grep -q ": $n finding" "$tmp/$name.err"
done

grep -q "router_lint_settings.yaml:9:3: ignored-setting: 'cooldown_time' under litellm_settings" "$tmp/settings.out"
check "cooldown_time under litellm_settings is reported at its key" [ $? -eq 0 ]
grep -q "did you mean 'enable_pre_call_checks'" "$tmp/settings.out"
check "enable_pre_call_check is reported as the misspelling it is" [ $? -eq 0 ]

# The kit's configs: one finding per stream_timeout they set and per section
# of slodrill's own (budgets:, cache:), which LiteLLM ignores; nothing else.
for f in scenarios/configs/*.yaml; do
  "${SLODRILL_CMD[@]}" lint "$f" >"$tmp/kit.out" 2>/dev/null; rc=$?
  total=$(wc -l <"$tmp/kit.out")
  st=$(grep -c ': means-otherwise: stream_timeout' "$tmp/kit.out")
  own=$(grep -c ": slodrill-only: '\(budgets\|cache\)' is slodrill's own section" "$tmp/kit.out")
  want_st=$(grep -c '^ *stream_timeout:' "$f")
  want_own=$(grep -c '^\(budgets\|cache\):' "$f")
  want=$((want_st + want_own)); want_rc=1; [ "$want" -eq 0 ] && want_rc=0
  check "lint $f: $total findings = $want_st stream_timeout + $want_own own sections, exit $want_rc" \
    [ "$rc" -eq "$want_rc" -a "$total" -eq "$want" -a "$st" -eq "$want_st" -a "$own" -eq "$want_own" ]
done

# Unreadable, not YAML, no argument.
"${SLODRILL_CMD[@]}" lint "$tmp/missing.yaml" >/dev/null 2>"$tmp/e"; rc=$?
named=0; grep -q "missing.yaml" "$tmp/e" && named=1
check "a missing file exits 2 (got $rc) and names it" [ "$rc" -eq 2 -a "$named" -eq 1 ]
printf 'model_list:\n  - model_name: [unclosed\n' >"$tmp/broken.yaml"
"${SLODRILL_CMD[@]}" lint "$tmp/broken.yaml" >/dev/null 2>"$tmp/e"; rc=$?
pos=0; grep -Eq "broken.yaml:[0-9]+:[0-9]+:" "$tmp/e" && pos=1
check "broken YAML exits 2 with file:line:col (got $rc)" [ "$rc" -eq 2 -a "$pos" -eq 1 ]
"${SLODRILL_CMD[@]}" lint >/dev/null 2>&1
check "no config exits 2" [ $? -eq 2 ]
finish

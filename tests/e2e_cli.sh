#!/usr/bin/env bash
# e2e_cli.sh -- the command line's promises: --help everywhere, exit code 2
# with file:line:col for bad scenarios and configs, and nothing run for them.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for c in run gate report router fake fault promote slo drill alerts lint cache; do
  out=$("${SLODRILL_CMD[@]}" $c --help 2>&1); rc=$?
  check "slodrill $c --help exits 0 and shows usage" [ "$rc" -eq 0 -a -n "$(echo "$out" | grep "usage: slodrill $c")" ]
done
"${SLODRILL_CMD[@]}" --help | grep -q 'exit codes'
check "slodrill --help documents the exit codes" [ $? -eq 0 ]
"${SLODRILL_CMD[@]}" frobnicate >/dev/null 2>&1
check "an unknown command exits 2" [ $? -eq 2 ]

# A scenario with a typo in a key: exit 2, file:line:col, and nothing runs.
sed 's/^traffic: { model: app\/chat, rate: 20\/s/traffic: { model: app\/chat, rat: 20\/s/' \
    scenarios/gate/primary-revoked-key.yaml >"$tmp/typo.yaml"
"${SLODRILL_CMD[@]}" run "$tmp/typo.yaml" --out "$tmp/typo-run" >"$tmp/o" 2>"$tmp/e"; rc=$?
cat "$tmp/e"
check "a misspelt scenario key exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "the error names file:line:col and the right key" grep -q "typo.yaml:14:[0-9]*: unknown key 'rat' in traffic; did you mean 'rate'?" "$tmp/e"
check "nothing ran for the bad scenario" [ ! -e "$tmp/typo-run" ]

# A bad value deep inside: the position points at the value.
sed 's/inject: revoke_key, provider: primary/inject: revoke_keys, provider: primary/' \
    scenarios/gate/primary-revoked-key.yaml >"$tmp/fault.yaml"
"${SLODRILL_CMD[@]}" run "$tmp/fault.yaml" >"$tmp/o" 2>"$tmp/e"; rc=$?
check "an unknown fault exits 2" [ "$rc" -eq 2 ]
check "the error points at the fault name" grep -q "fault.yaml:17:24: unknown fault 'revoke_keys'" "$tmp/e"

# A router config with a non-number weight: the gate refuses before running.
sed 's/weight: 9/weight: nine/' scenarios/configs/two-provider.yaml >"$tmp/bad-config.yaml"
"${SLODRILL_CMD[@]}" gate "$tmp/bad-config.yaml" scenarios/gate/primary-revoked-key.yaml \
    --out "$tmp/gate-run" --quiet >"$tmp/o" 2>"$tmp/e"; rc=$?
cat "$tmp/e"
check "a malformed router config exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "the config error names file:line:col" grep -Eq "bad-config.yaml:[0-9]+:[0-9]+: .*weight" "$tmp/e"
check "nothing ran for the bad config" [ ! -e "$tmp/gate-run" ]

# YAML that does not parse.
printf 'name: x\ntraffic: { model: a, rate: [1, 2\n' >"$tmp/broken.yaml"
"${SLODRILL_CMD[@]}" run "$tmp/broken.yaml" >"$tmp/o" 2>"$tmp/e"; rc=$?
check "broken YAML exits 2 with a position" [ "$rc" -eq 2 ] 
check "broken YAML message has file:line:col" grep -Eq "broken.yaml:[0-9]+:[0-9]+: YAML syntax error" "$tmp/e"
finish

#!/usr/bin/env bash
# e2e_slo.sh -- slodrill slo writes the one-pager and the SOW clause with the
# user's figures, marks what is missing, adds a run's measured figures, and
# refuses a bad SLO file with file:line:col.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-slo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"${SLODRILL_CMD[@]}" slo tests/data/slo_acme.yaml --out "$tmp/a" >"$tmp/o" 2>&1; rc=$?
check "slo with a full file exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "slo.md names the service" grep -q '^# Acme support assistant — Reliability SLO' "$tmp/a/slo.md"
check "slo.md has the error budget in requests (50 of 10000)" grep -q '\*\*50 failed requests are allowed\*\*' "$tmp/a/slo.md"
check "slo.md has the change-management rule with the 4-of-200 wording" grep -q 'at most 4 of the 200 take longer' "$tmp/a/slo.md"
for s in Scope 'SLIs (how we measure)' Targets 'Error budget' 'Burn-rate policy' 'Change management' Exclusions; do
  check "slo.md has the section '$s'" grep -q "^## $s" "$tmp/a/slo.md"
done
check "nothing is left unset in a full file" [ -z "$(grep -h '\[set ' "$tmp/a/slo.md" "$tmp/a/sow.md")" ]
check "sow.md has the objectives" grep -q 'Success rate at least 99.5%; p95 end-to-end latency (to the first token) at most 2.5 seconds; average cost per request at most \$0.015' "$tmp/a/sow.md"
check "sow.md has the credit" grep -q 'we credit 10% of' "$tmp/a/sow.md"

printf 'service: Tiny\nsuccess_rate: 99.9\n' >"$tmp/min.yaml"
"${SLODRILL_CMD[@]}" slo "$tmp/min.yaml" --out "$tmp/m" >"$tmp/o" 2>&1; rc=$?
check "a minimal file still writes (got $rc)" [ "$rc" -eq 0 ]
check "missing figures show as [set KEY]" grep -q '\[set p95_latency_s\]' "$tmp/m/slo.md"

# A scenario file is an SLO file too (its slo: block), and a run adds figures.
"${SLODRILL_CMD[@]}" run scenarios/gate/primary-revoked-key.yaml --out "$tmp/run" --quiet >"$tmp/run.out" 2>&1
"${SLODRILL_CMD[@]}" slo scenarios/gate/primary-revoked-key.yaml --from-run "$tmp/run/run.db" --out "$tmp/r" >"$tmp/o" 2>&1; rc=$?
check "slo --from-run a passing run exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "slo.md shows measured figures beside the targets" grep -Eq '^\| Success rate \| ≥ 99.5% over 30 days \| [0-9.]+% \|' "$tmp/r/slo.md"
check "sow.md quotes the drill's summary line" grep -Eq 'Latest drill \(primary-revoked-key\): TTR=[0-9.]+s, p95=[0-9.]+s, SR=[0-9.]+%' "$tmp/r/sow.md"

printf 'service: X\nsuccess_rate: 99.5\np95_latency: 2\n' >"$tmp/bad.yaml"
"${SLODRILL_CMD[@]}" slo "$tmp/bad.yaml" --out "$tmp/b" >"$tmp/o" 2>"$tmp/e"; rc=$?
check "a misspelt key exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "with file:line:col and the right key" grep -q "bad.yaml:3:1: unknown key 'p95_latency'.*p95_latency_s" "$tmp/e"
"${SLODRILL_CMD[@]}" slo --help | grep -q 'usage: slodrill slo'
check "slo --help shows the usage" [ $? -eq 0 ]
finish

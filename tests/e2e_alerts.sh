#!/usr/bin/env bash
# e2e_alerts.sh -- `slodrill alerts`: rules for an SLO that `promtool check rules`
# accepts, and, from a drill's run DB, a `promtool test rules` file whose
# predicted alerts Prometheus confirms. promtool comes from Debian's
# prometheus package (installed here when missing and root); without it the
# promtool checks print a skip line.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-alerts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

out=$("${SLODRILL_CMD[@]}" alerts --help); rc=$?
check "slodrill alerts --help exits 0 with usage and exit codes" \
    [ "$rc" -eq 0 -a -n "$(echo "$out" | grep 'usage: slodrill alerts')" -a -n "$(echo "$out" | grep 'exit codes')" ]
"${SLODRILL_CMD[@]}" alerts >/dev/null 2>&1
check "slodrill alerts without a file exits 2" [ $? -eq 2 ]
printf 'service: x\nsuccess_rat: 99\n' >"$tmp/bad.yaml"
"${SLODRILL_CMD[@]}" alerts "$tmp/bad.yaml" --out "$tmp/bad" >"$tmp/o" 2>"$tmp/e"; rc=$?
check "a misspelt SLO key exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "the error names file:line:col" grep -q "bad.yaml:2:1: " "$tmp/e"
check "nothing was written for the bad file" [ ! -e "$tmp/bad/slodrill-alerts.rules.yml" ]

cat >"$tmp/slo.yaml" <<'YAML'
service: Acme support assistant
success_rate: 99.5
p95_latency_s: 2.5
avg_cost_usd: 0.015
monthly_requests: 10000
YAML
"${SLODRILL_CMD[@]}" alerts "$tmp/slo.yaml" --out "$tmp/slo" >"$tmp/o" 2>"$tmp/e"; rc=$?
check "rules from an SLO file (exit $rc)" [ "$rc" -eq 0 -a -s "$tmp/slo/slodrill-alerts.rules.yml" ]
for a in SlodrillLatencyP95High SlodrillSuccessRateLow SlodrillCostPerRequestHigh \
         SlodrillErrorBudgetBurnFast SlodrillErrorBudgetBurnSlow; do
  check "the rules have $a" grep -q "alert: $a" "$tmp/slo/slodrill-alerts.rules.yml"
done

# A drill that fails: one provider, its key revoked.
"${SLODRILL_CMD[@]}" gate scenarios/configs/single-provider.yaml scenarios/gate/primary-revoked-key.yaml \
    --out "$tmp/gate" --quiet >"$tmp/o" 2>"$tmp/e"; rc=$?
db=$(ls "$tmp"/gate/*/run.db 2>/dev/null | head -1)
check "the failing drill left a run DB (gate exit $rc)" [ -n "$db" ]
"${SLODRILL_CMD[@]}" alerts scenarios/gate/primary-revoked-key.yaml --from-run "$db" --out "$tmp/run" \
    >"$tmp/o" 2>"$tmp/e"; rc=$?
cat "$tmp/o"
check "alerts --from-run writes the rules and the test (exit $rc)" \
    [ "$rc" -eq 0 -a -s "$tmp/run/slodrill-alerts.rules.yml" -a -s "$tmp/run/slodrill-alerts.test.yml" ]
check "it says the success-rate alert would have paged" grep -q "SlodrillSuccessRateLow would have fired at" "$tmp/o"
check "it states the time scale" grep -q "each second of the run is one minute" "$tmp/o"

promtool=$(command -v promtool || true)
if [ -z "$promtool" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "# installing prometheus (Debian package) for promtool"
  { apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; }; } || true
  promtool=$(command -v promtool || true)
fi
if [ -z "$promtool" ]; then
  ok "skipped: no promtool"
  finish
fi
check "promtool check rules accepts the SLO file's rules" \
    "$promtool" check rules "$tmp/slo/slodrill-alerts.rules.yml"
check "promtool check rules accepts the drill's rules" \
    "$promtool" check rules "$tmp/run/slodrill-alerts.rules.yml"
(cd "$tmp/run" && "$promtool" test rules slodrill-alerts.test.yml) >"$tmp/t" 2>&1; rc=$?
cat "$tmp/t"
check "promtool test rules confirms every predicted alert (exit $rc)" [ "$rc" -eq 0 ]
# The test has teeth: claiming the success-rate alert stays silent must fail.
python3 - "$tmp/run/slodrill-alerts.test.yml" "$tmp/run/wrong.test.yml" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
m = re.search(r"      - eval_time: (\d+)m\n        alertname: SlodrillSuccessRateLow\n        exp_alerts:\n(          .*\n|            .*\n|              .*\n)+", s)
s = s[:m.start()] + "      - eval_time: %sm\n        alertname: SlodrillSuccessRateLow\n        exp_alerts: []\n" % m.group(1) + s[m.end():]
open(sys.argv[2], "w").write(s)
PY
(cd "$tmp/run" && "$promtool" test rules wrong.test.yml) >/dev/null 2>&1
check "a wrong prediction fails promtool test rules" [ $? -ne 0 ]
finish

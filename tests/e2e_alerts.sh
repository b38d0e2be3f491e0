#!/usr/bin/env bash
# e2e_alerts.sh -- `slodrill alerts`: rules for an SLO that `promtool check rules`
# accepts, and, from a drill's run DB, a `promtool test rules` file whose
# predicted alerts Prometheus confirms; then the same rules over a real scrape
# of `slodrill router`'s /metrics (so a series renamed on either side fails).
# promtool comes from Debian's
# prometheus package (installed here when missing and root); without it the
# promtool checks print a skip line.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-alerts.XXXXXX")
fpid= rpid=
cleanup() {
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
  [ -n "$fpid" ] && kill "$fpid" 2>/dev/null && wait "$fpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

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

# ---- the rules against a real scrape of the router's /metrics ----
# The rules name the router's series; router/metrics.c and reports/alerts.c
# share no code, so this is where a rename on either side fails. A real
# `slodrill router` runs in front of two `slodrill fake` providers. app/chat's
# primary has a wrong key: every request fails over, so the edge sees only
# successes while the upstream attempts include failures. app/down has only
# that deployment: every request fails at the edge.
wait_lines() { # wait_lines FILE N PID: until FILE has N lines (5 s at most) or PID died
  local _
  for _ in $(seq 1 50); do
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
cat >"$tmp/fakes.yaml" <<'YAML'
providers:
  - { name: p, dialect: openai, key: sk-test-alerts-p-0123456789,
      latency: { ttft_ms: { median: 5, p95: 10 }, tokens_per_s: 2000, output_tokens: 8 } }
  - { name: s, dialect: openai, key: sk-test-alerts-s-0123456789,
      latency: { ttft_ms: { median: 5, p95: 10 }, tokens_per_s: 2000, output_tokens: 8 } }
YAML
cat >"$tmp/router.yaml" <<'YAML'
model_list:
  - model_name: app/chat
    litellm_params: { model: openai/gpt-4o-mini, api_base: os.environ/P_BASE, api_key: sk-wrong-key,
                      order: 1, input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006 }
    model_info: { id: primary }
  - model_name: app/chat
    litellm_params: { model: openai/gpt-4.1-mini, api_base: os.environ/S_BASE, api_key: os.environ/S_KEY,
                      order: 2, input_cost_per_token: 0.0000004, output_cost_per_token: 0.0000016 }
    model_info: { id: secondary }
  - model_name: app/down
    litellm_params: { model: openai/gpt-4o-mini, api_base: os.environ/P_BASE, api_key: sk-wrong-key,
                      input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006 }
    model_info: { id: down }
general_settings: { master_key: sk-alerts-master }
YAML
"${SLODRILL_CMD[@]}" fake --config "$tmp/fakes.yaml" >"$tmp/fakes" 2>"$tmp/fake.err" &
fpid=$!
wait_lines "$tmp/fakes" 2 "$fpid"
P_BASE=$(awk '$1 == "p" {print $2}' "$tmp/fakes")/v1 S_BASE=$(awk '$1 == "s" {print $2}' "$tmp/fakes")/v1 \
S_KEY=sk-test-alerts-s-0123456789 \
  "${SLODRILL_CMD[@]}" router --config "$tmp/router.yaml" --port 0 >"$tmp/router" 2>"$tmp/router.err" &
rpid=$!
wait_lines "$tmp/router" 1 "$rpid"
url=$(awk '$1 == "router" {print $2}' "$tmp/router")
check "slodrill router in front of two fakes printed its URL" [ -n "$url" ]
ask() { # ask ALIAS: one chat request; prints the status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Authorization: Bearer sk-alerts-master' \
    -H 'Content-Type: application/json' \
    -d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Where is my order?\"}]}" \
    "$url/v1/chat/completions"
}
codes=
for i in 1 2 3 4 5 6; do codes="$codes$(ask app/chat) "; done
check "six app/chat requests answered 200 after failover ($codes)" [ "$codes" = "200 200 200 200 200 200 " ]
codes=
for i in 1 2 3 4; do codes="$codes$(ask app/down) "; done
check "four app/down requests failed with 5xx ($codes)" [ -z "$(echo "$codes" | tr ' ' '\n' | grep -v '^5' | grep .)" ]
curl -s --max-time 10 -H 'Authorization: Bearer sk-alerts-master' "$url/metrics" >"$tmp/scrape.txt"
check "GET /metrics answered" [ -s "$tmp/scrape.txt" ]

cat >"$tmp/slo-scrape.yaml" <<'YAML'
service: scrape-check
success_rate: 99.5
p95_latency_s: 0.001
avg_cost_usd: 0.0000001
YAML
"${SLODRILL_CMD[@]}" alerts "$tmp/slo-scrape.yaml" --out "$tmp/scrape" >/dev/null 2>"$tmp/e"; rc=$?
check "rules for the scrape check (exit $rc)" [ "$rc" -eq 0 -a -s "$tmp/scrape/slodrill-alerts.rules.yml" ]

# scrape_tests.py SCRAPE RULES OUTDIR: checks the scrape, writes two promtool
# tests built from it. Each exported sample becomes a series growing by its
# scraped value every minute, so rates keep the scrape's ratios; 25 minutes
# in, the rules must say what the requests were.
cat >"$tmp/scrape_tests.py" <<'PY'
import re, sys, yaml
scrape, rules_path, out = sys.argv[1:4]
samples = []  # (name, {labels}, label text, value)
for line in open(scrape):
    if not line.strip() or line.startswith("#"):
        continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line.strip())
    if not m:
        sys.exit("unparsable sample line: " + line)
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
    samples.append((m.group(1), labels, m.group(2) or "", float(m.group(4))))
names = {s[0] for s in samples}
rules = yaml.safe_load(open(rules_path))["groups"][0]["rules"]
used = set()
for r in rules:
    used |= set(re.findall(r'slodrill_[a-z_]+', r["expr"]))
missing = sorted(used - names)
if missing:
    sys.exit("the rules read series the router does not export: " + ", ".join(missing))
def value(name, **want):
    return sum(s[3] for s in samples
               if s[0] == name and all(s[1].get(k) == v for k, v in want.items()))
# what the scrape says, as a user would read it
print("chat_ok=%g chat_failed=%g down_failed=%g primary_auth_attempts=%g attempts=%g" % (
    value("slodrill_requests_total", alias="app/chat", outcome="ok"),
    sum(value("slodrill_requests_total", alias="app/chat", outcome=o)
        for o in ("retryable_error", "timeout", "rate_limited")),
    value("slodrill_requests_total", alias="app/down", outcome="retryable_error"),
    value("slodrill_upstream_attempts_total", deployment="primary", **{"class": "auth"}),
    value("slodrill_upstream_attempts_total")))
def write(fname, alias, firing):
    f = open(out + "/" + fname, "w")
    f.write("rule_files:\n  - slodrill-alerts.rules.yml\nevaluation_interval: 1m\ntests:\n"
            "  - interval: 1m\n    input_series:\n")
    for name, labels, text, v in samples:
        if labels.get("alias") == alias:
            f.write("      - series: '%s%s'\n        values: '0+%.12fx30'\n" % (name, text, v))
    f.write("    alert_rule_test:\n")
    for r in rules:
        f.write("      - eval_time: 25m\n        alertname: %s\n" % r["alert"])
        if r["alert"] not in firing:
            f.write("        exp_alerts: []\n")
            continue
        flow = lambda d: yaml.safe_dump(d, default_flow_style=True, width=100000).strip()
        f.write("        exp_alerts:\n          - exp_labels: %s\n            exp_annotations: %s\n"
                % (flow(r["labels"]), flow(r["annotations"])))
    f.close()
# app/chat: fast, priced answers and no edge failure (failed attempts are not edge failures)
write("chat.test.yml", "app/chat", {"SlodrillLatencyP95High", "SlodrillCostPerRequestHigh"})
# app/down: every request failed at the edge
write("down.test.yml", "app/down",
      {"SlodrillSuccessRateLow", "SlodrillErrorBudgetBurnFast", "SlodrillErrorBudgetBurnSlow"})
PY
out=$(python3 "$tmp/scrape_tests.py" "$tmp/scrape.txt" "$tmp/scrape/slodrill-alerts.rules.yml" "$tmp/scrape" 2>&1); rc=$?
echo "# scrape: $out"
check "every series the rules read is in the router's scrape (exit $rc)" [ "$rc" -eq 0 ]
check "the scrape counts the 6 app/chat requests ok at the edge, none failed" \
    grep -q "chat_ok=6 chat_failed=0 " <<<"$out"
check "the scrape counts the 4 app/down requests as retryable_error" grep -q "down_failed=4 " <<<"$out"
check "the primary's failures are upstream attempts (class auth), not edge failures" \
    grep -qE "primary_auth_attempts=[1-9][0-9]* attempts=([7-9]|[1-9][0-9])" <<<"$out"
kill "$rpid"; wait "$rpid"; rrc=$?; rpid=
check "slodrill router stopped cleanly on SIGTERM (exit $rrc)" [ "$rrc" -eq 0 ]
kill "$fpid"; wait "$fpid"; fpid=

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

# The rules over the router's real series (the tests built above from the scrape).
check "promtool check rules accepts the scrape check's rules" \
    "$promtool" check rules "$tmp/scrape/slodrill-alerts.rules.yml"
for t in chat down; do
  (cd "$tmp/scrape" && "$promtool" test rules $t.test.yml) >"$tmp/t" 2>&1; rc=$?
  [ "$rc" -eq 0 ] || cat "$tmp/t"
  check "promtool: the rules over the scrape's app/$t series fire as its requests went (exit $rc)" [ "$rc" -eq 0 ]
done
# The check has teeth: the same series under another name (a rename on one side) fail it.
sed 's/slodrill_requests_total/slodrill_requests_count/' "$tmp/scrape/down.test.yml" >"$tmp/scrape/renamed.test.yml"
(cd "$tmp/scrape" && "$promtool" test rules renamed.test.yml) >/dev/null 2>&1
check "a renamed series fails the promtool test" [ $? -ne 0 ]
finish

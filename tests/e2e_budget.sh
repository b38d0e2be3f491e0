#!/usr/bin/env bash
# e2e_budget.sh -- budget guardrails through real runs: a tenant that hits its monthly cap is
# refused with 400 budget_exceeded while another is served; with a secondary priced 3x, the
# guardrails keep the average cost within the SLO where the same config without them fails.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-budget.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

sed 's/duration: 15s/duration: 6s/' scenarios/budget-tenant-cap.yaml >"$tmp/cap.yaml"
"${SLODRILL_CMD[@]}" run "$tmp/cap.yaml" --quiet --out "$tmp/cap" >"$tmp/o" 2>&1; rc=$?
check "the tenant-cap run passes (rc $rc)" [ "$rc" -eq 0 ]
refused=$(sqlite3 "$tmp/cap/run.db" "select count(*) from requests where tenant='startup' and http_status=400" 2>/dev/null)
served=$(sqlite3 "$tmp/cap/run.db" "select count(*) from requests where tenant='startup' and http_status=200" 2>/dev/null)
acme_bad=$(sqlite3 "$tmp/cap/run.db" "select count(*) from requests where tenant='acme' and http_status<>200" 2>/dev/null)
check "startup was served, then refused (${served:-?} served, ${refused:-?} refused)" \
  [ "${served:-0}" -gt 0 -a "${refused:-0}" -gt 0 ]
check "acme was never refused (${acme_bad:-?})" [ "${acme_bad:-1}" -eq 0 ]
rej=$(sqlite3 "$tmp/cap/run.db" "select count(*) from requests where tenant='startup' and outcome='rejected_by_budget'" 2>/dev/null)
check "the refusals are recorded as a guardrail's, not as failures (${rej:-?})" [ "${rej:-0}" -eq "${refused:-x}" ]
check "the closeout counts them under cache and guardrails" grep -q '^## Cache and guardrails' "$tmp/cap/closeout.md"

for v in "" "-unguarded"; do
  sed 's/duration: 24s/duration: 10s/' "scenarios/budget-failover-3x$v.yaml" >"$tmp/f$v.yaml"
  "${SLODRILL_CMD[@]}" run "$tmp/f$v.yaml" --quiet --out "$tmp/f$v" >"$tmp/o$v" 2>&1
  echo $? >"$tmp/rc$v"
done
judged "with guardrails the 3x failover passes, cost included (rc $(cat "$tmp/rc"))" [ "$(cat "$tmp/rc")" -eq 0 ]
valgrind_clean "the guarded run" "$(cat "$tmp/rc")"
valgrind_clean "the unguarded run" "$(cat "$tmp/rc-unguarded")"
judged "without them the same failover fails on cost (rc $(cat "$tmp/rc-unguarded"))" \
  grep -q 'failed: slo_avg_cost' "$tmp/f-unguarded/closeout.md"
finish

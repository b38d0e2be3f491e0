#!/usr/bin/env bash
# e2e_cache.sh -- the write-through cache through a real run: repeated prompts are served
# from the cache (at least 60%), `slodrill cache stats` reports the hit rate from the file,
# `purge` empties it; travel mode answers with all providers down.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-cache.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"${SLODRILL_CMD[@]}" cache --help | grep -q 'usage: slodrill cache stats'
check "slodrill cache --help shows usage" [ $? -eq 0 ]
"${SLODRILL_CMD[@]}" cache stats "$tmp/none.db" >/dev/null 2>&1
check "stats of a missing file exits 2" [ $? -eq 2 ]
"${SLODRILL_CMD[@]}" cache frob "$tmp/none.db" >/dev/null 2>&1
check "an unknown verb exits 2" [ $? -eq 2 ]

# The repeated-prompt scenario, shortened, with the cache in a file.
sed "s#path: \":memory:\"#path: $tmp/cache.db#" scenarios/configs/cache-two-provider.yaml >"$tmp/config.yaml"
sed -e "s#config: scenarios/configs/cache-two-provider.yaml#config: $tmp/config.yaml#" \
    -e 's/duration: 20s/duration: 6s/' scenarios/cache-repeated-prompts.yaml >"$tmp/scenario.yaml"
"${SLODRILL_CMD[@]}" run "$tmp/scenario.yaml" --quiet --out "$tmp/run" >"$tmp/o" 2>&1; rc=$?
check "the repeated-prompt run passes (rc $rc)" [ "$rc" -eq 0 ]
read -r total cached < <(sqlite3 -separator ' ' "$tmp/run/run.db" \
  "select count(*), sum(outcome = 'served_from_cache') from requests" 2>/dev/null || echo "0 0")
check "at least 60% of requests came from the cache ($cached of $total)" \
  [ "${total:-0}" -gt 50 -a $((cached * 100)) -ge $((total * 60)) ]
"${SLODRILL_CMD[@]}" cache stats "$tmp/cache.db" >"$tmp/stats" 2>&1; rc=$?
cat "$tmp/stats"
check "cache stats exits 0" [ "$rc" -eq 0 ]
rate=$(sed -n 's/^hit rate *\([0-9.]*\)%.*/\1/p' "$tmp/stats")
check "cache stats reports a hit rate of at least 60% (${rate:-none})" \
  python3 -c "import sys; sys.exit(0 if float('${rate:-0}') >= 60 else 1)"
check "cache stats lists acme's faq entries" grep -qE '^  acme +faq ' "$tmp/stats"
"${SLODRILL_CMD[@]}" cache stats --config "$tmp/config.yaml" >/dev/null 2>&1
check "cache stats --config finds the file" [ $? -eq 0 ]
"${SLODRILL_CMD[@]}" cache purge "$tmp/cache.db" --tenant acme >"$tmp/p" 2>&1
check "purge --tenant acme deletes entries" grep -qE '^purged [1-9][0-9]* entr' "$tmp/p"
"${SLODRILL_CMD[@]}" cache stats "$tmp/cache.db" | grep -q '^entries   0 '
check "the cache is empty after the purge" [ $? -eq 0 ]

# Travel mode: every provider down, a warm cache: requests still succeed.
sed -e 's/duration: 30s/duration: 14s/' -e 's/at: 10s/at: 6s/' -e 's/at: 25s/at: 13s/' \
    scenarios/cache-travel-mode.yaml >"$tmp/travel.yaml"
"${SLODRILL_CMD[@]}" run "$tmp/travel.yaml" --quiet --out "$tmp/travel" >"$tmp/o" 2>&1; rc=$?
tail -2 "$tmp/o"
check "the travel-mode run passes with both providers down (rc $rc)" [ "$rc" -eq 0 ]
stale=$(sqlite3 "$tmp/travel/run.db" "select count(*) from requests where outcome='served_from_cache' and cache_hit=2")
check "stale answers are counted as such ($stale)" [ "${stale:-0}" -gt 10 ]
check "the closeout shows the cache and the stale answers" \
    grep -Eq '^\| during \| [0-9]+ \| [0-9]+ \| [0-9.]+% \| [1-9][0-9]* \|' "$tmp/travel/closeout.md"
finish

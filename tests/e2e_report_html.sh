#!/usr/bin/env bash
# e2e_report_html.sh -- a run writes report.html, `slodrill report` writes it
# again, and headless Chromium renders it with its four charts. Chromium comes
# from Debian's chromium package (installed here when missing and root);
# without it the rendering checks print a skip line. SLODRILL_SCREENSHOT_DIR=DIR
# keeps the screenshot for a human look.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-html.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"${SLODRILL_CMD[@]}" run scenarios/gate/primary-revoked-key.yaml --out "$tmp/run" --quiet \
    >"$tmp/o" 2>"$tmp/e"; rc=$?
check "the drill ran (exit $rc, 0 or 1)" [ "$rc" -le 1 ]
html="$tmp/run/report.html"
check "the run wrote report.html beside closeout.md" [ -s "$html" -a -s "$tmp/run/closeout.md" ]
check "report.html has four inline SVG charts" [ "$(grep -o '<svg id="chart-' "$html" | wc -l)" -eq 4 ]
check "report.html loads nothing from elsewhere" \
    bash -c "! grep -Eq '<script|<link| src=|href=|url\\(|@import' '$html'"
summary=$(head -1 "$tmp/run/closeout.md" | tr -d '`')
check "report.html shows the closeout's summary line ($summary)" grep -qF "id=\"summary\">$summary<" "$html"

"${SLODRILL_CMD[@]}" report "$tmp/run/run.db" --out "$tmp/again" >"$tmp/o" 2>"$tmp/e"; rc=$?
check "slodrill report writes report.html again (exit $rc)" [ "$rc" -le 1 -a -s "$tmp/again/report.html" ]

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "# installing chromium (Debian package) for the rendering checks"
  { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; } || true
  browser=$(command -v chromium || true)
fi
if [ -z "$browser" ]; then
  ok "skipped: no chromium"
  finish
fi

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --disable-dev-shm-usage --hide-scrollbars)
timeout 120 "$browser" "${flags[@]}" --user-data-dir="$(mktemp -d "$tmp/profile.XXXXXX")" \
    --dump-dom "file://$html" >"$tmp/dom.html" 2>"$tmp/chromium.log"; rc=$?
check "chromium rendered the page (exit $rc)" [ "$rc" -eq 0 -a -s "$tmp/dom.html" ]
for id in chart-success chart-p95 chart-providers chart-latency-hist; do
  check "the rendered DOM has <svg id=\"$id\">" grep -q "<svg id=\"$id\"" "$tmp/dom.html"
done
check "the rendered DOM has the success-rate line and points" \
    [ "$(grep -o '<circle class="pt' "$tmp/dom.html" | wc -l)" -ge 20 ]
check "the rendered DOM has a shaded fault window" grep -q '<rect class="fault"' "$tmp/dom.html"
check "the rendered DOM has who-served shares" grep -q '<path class="share" data-series=' "$tmp/dom.html"
check "the rendered DOM has histogram bars" grep -q '<rect class="bin"' "$tmp/dom.html"
check "the rendered DOM has the checks table" grep -q '<table id="checks">' "$tmp/dom.html"

timeout 120 "$browser" "${flags[@]}" --user-data-dir="$(mktemp -d "$tmp/profile.XXXXXX")" \
    --window-size=1100,2400 --screenshot="$tmp/report.png" "file://$html" \
    >>"$tmp/chromium.log" 2>&1; rc=$?
size=$(stat -c %s "$tmp/report.png" 2>/dev/null || echo 0)
check "chromium took a screenshot (exit $rc, $size bytes)" [ "$rc" -eq 0 -a "$size" -gt 20000 ]
check "the screenshot is a PNG" [ "$(head -c 8 "$tmp/report.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
if [ -n "${SLODRILL_SCREENSHOT_DIR:-}" ]; then
  mkdir -p "$SLODRILL_SCREENSHOT_DIR" && cp "$tmp/report.png" "$html" "$SLODRILL_SCREENSHOT_DIR/"
fi
finish

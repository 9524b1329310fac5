#!/bin/sh
# This file tests that a report's HTML renders in a real browser: it writes an estimate
# result and its report, renders report.html with headless Chromium (Debian `chromium`) into a
# PNG, and checks that the PNG exists, is a PNG, is not trivially small, and that Chromium
# reported no error for the page (console messages, failed loads). Chromium's own start-up
# noise (D-Bus, GPU) is not about the page and is ignored. Exits 77 (skip) without chromium.
# Run through `meson test` (it needs $SWITCHSIM and $SWITCHSIM_SOURCE_ROOT).
set -eu
: "${SWITCHSIM:?run through meson test}" "${SWITCHSIM_SOURCE_ROOT:?run through meson test}"
browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
    echo "test_report_browser: chromium is not installed: skipped"
    exit 77
fi
tmp=$(mktemp -d /tmp/switchsim-test-report-browser-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$SWITCHSIM_SOURCE_ROOT"
"$SWITCHSIM" estimate --run configs/runs/switch-tiny-v3-8.yaml --results "$tmp/r.json" >/dev/null
"$SWITCHSIM" report "$tmp/r.json" -o "$tmp/report" 2>/dev/null
# a profile of its own, so parallel runs and a user's browser do not interfere
"$browser" --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/profile" \
    --enable-logging=stderr --v=0 --window-size=1280,2000 \
    --screenshot="$tmp/page.png" "file://$tmp/report/report.html" >"$tmp/log" 2>&1 || {
    echo "test_report_browser: $browser failed:"; cat "$tmp/log"; exit 1; }
if [ ! -s "$tmp/page.png" ]; then
    echo "test_report_browser: no screenshot"; cat "$tmp/log"; exit 1
fi
magic=$(od -An -tx1 -N8 "$tmp/page.png" | tr -d ' \n')
if [ "$magic" != "89504e470d0a1a0a" ]; then
    echo "test_report_browser: page.png is not a PNG ($magic)"; exit 1
fi
size=$(wc -c <"$tmp/page.png")
# a blank 1280x2000 page compresses to a few kB; the report's charts and tables do not
if [ "$size" -lt 40000 ]; then
    echo "test_report_browser: page.png is only $size bytes: nothing rendered?"; exit 1
fi
page_errors='CONSOLE|Uncaught|net::ERR_|Failed to load|Not allowed to load|SyntaxError'
if grep -E "$page_errors" "$tmp/log"; then
    echo "test_report_browser: chromium reported errors for the page (above)"; exit 1
fi
echo "test_report_browser: $browser rendered report.html into a $size-byte PNG without page errors"

#!/usr/bin/env bash
# Regenerates docs/web-page.png, the screenshot of the web page docs/service.md shows: runs the
# browser test (tests/test_web.py, which writes build/web-page-*.png) and copies the one taken
# after a job finished.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build
rm -f build/web-page-after.png
meson test -C build --print-errorlogs web
cp build/web-page-after.png docs/web-page.png
echo "docs/web-page.png updated"

#!/usr/bin/env bash
# Install the headless browser the wallboard and console tests drive (playwright-core with
# executablePath /usr/bin/chromium): Debian's chromium and chromium-driver, and a CJK font so that
# the Chinese pages render in screenshots. Never a browser downloaded by Playwright.
# Quiet and non-interactive; does nothing when /usr/bin/chromium and the font are already there.
# Usage: scripts/browser.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
# Chinese glyphs for the wallboard's screenshots (the floor's own screens bring their fonts)
if ! fc-list 2>/dev/null | grep -qi -e 'wenquanyi' -e 'noto sans cjk'; then missing+=(fonts-wqy-zenhei); fi

if [ "${#missing[@]}" -eq 0 ]; then
  log "browser present ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
  exit 0
fi

log "installing the test browser: ${missing[*]}"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -x /usr/bin/chromium ] || die "chromium installed but /usr/bin/chromium is missing"
log "browser installed ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"

#!/usr/bin/env bash
# Install the node modules when they are missing or older than package-lock.json (npm ci: exactly the lock).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] installing node modules (npm ci)"
  npm ci --no-audit --no-fund
fi
# the floor's web pages (/wallboard, /console): built into dist/web when missing or older than their sources
if [ ! -f dist/web/wallboard.html ] || [ ! -f dist/web/console.html ] \
  || [ -n "$(find web package-lock.json -newer dist/web/wallboard.html -type f -print -quit 2>/dev/null)" ]; then
  echo "[setup] building the web pages (npm run build:web)"
  npm run --silent build:web
fi

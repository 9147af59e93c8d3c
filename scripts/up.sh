#!/usr/bin/env bash
# npm run up: install and provision everything, build, then run the service in the foreground,
# ready for calls on 127.0.0.1:5060 (SIP) with the API on 127.0.0.1:3000.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/node-deps.sh
bash scripts/provision.sh
echo "[setup] building"
npx tsc -p tsconfig.json
exec node --enable-source-maps dist/src/main.js

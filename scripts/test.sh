#!/usr/bin/env bash
# npm test: provision what the tests need with the same scripts as `npm run up`, type-check, run the whole suite.
# Extra arguments go to tap instead of the whole suite (e.g. `npm test -- test/unit/*.test.ts`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/hotline_test}"
bash scripts/node-deps.sh
bash scripts/provision.sh hotline_test
bash scripts/browser.sh
echo "[setup] type-checking"
npx tsc -p tsconfig.test.json
if [ "$#" -gt 0 ]; then exec npx tap "$@"; fi
exec npx tap test/unit/*.test.ts test/integration/*.test.ts test/e2e/*.test.ts

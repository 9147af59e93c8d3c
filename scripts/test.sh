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
# Tests that need no Asterisk (each has a PostgreSQL schema and a Redis prefix of its own) run two at a
# time; the ones that drive the one Asterisk (its single Stasis app) run one after the other.
# agent-desk waits on live events with short timeouts: it runs with the serial group, away from the load
on_asterisk=(test/integration/api.test.ts test/integration/agents-api.test.ts test/integration/startup.test.ts test/integration/agent-desk.test.ts)
apart=()
for f in test/unit/*.test.ts test/integration/*.test.ts; do
  case " ${on_asterisk[*]} " in *" $f "*) ;; *) apart+=("$f") ;; esac
done
status=0
npx tap --jobs=2 "${apart[@]}" || status=$?
npx tap "${on_asterisk[@]}" test/e2e/*.test.ts || status=$?
exit "$status"


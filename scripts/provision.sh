#!/usr/bin/env bash
# Provision everything the service and its tests need, idempotently (seconds when all is in place):
# OS packages -> PostgreSQL + Redis (+ databases) -> Asterisk running with the project's config.
# Usage: scripts/provision.sh [DBNAME|postgres://URL ...]   (extra databases, passed to services.sh)
# Environment: DATABASE_URL, REDIS_URL (services.sh); ARI_USER, ARI_PASSWORD, HOTLINE_ASTERISK_ROOT,
# HOTLINE_CACHE (asterisk.sh); ARI_URL: use an Asterisk running elsewhere (only checked, not provisioned;
# 127.0.0.1/localhost:8088 means the local one, which is provisioned as usual).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

started_ms=$(($(date +%s%N) / 1000000))
bash "$HOTLINE_REPO/scripts/install-packages.sh"
bash "$HOTLINE_REPO/scripts/services.sh" "$@"

if ari_elsewhere; then
  url="${ARI_URL%/}/ari/asterisk/info"
  if ! out="$(ari_get "$url" 2>&1)"; then
    die "ARI_URL is set but ARI does not answer at $url as ${ARI_USER:-hotline}: ${out:-no answer}"
  fi
  log "ARI_URL is set: using the Asterisk at $ARI_URL (ARI answers)"
else
  bash "$HOTLINE_REPO/scripts/asterisk.sh" start
fi
log "provisioned in $(($(date +%s%N) / 1000000 - started_ms)) ms"

#!/usr/bin/env bash
# Install the OS packages the stack needs, only when something is missing:
# debootstrap (builds the Asterisk root filesystem), sip-tester (sipp: test callers and agent phones),
# espeak-ng + sox (prompts and music on hold), curl (ARI checks).
# Usage: scripts/install-packages.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# package:command pairs; the command tells us quickly whether the package is there
wanted=(debootstrap:debootstrap sip-tester:sipp espeak-ng:espeak-ng sox:sox curl:curl)
missing=()
for pair in "${wanted[@]}"; do
  pkg="${pair%%:*}" cmd="${pair#*:}"
  if command -v "$cmd" >/dev/null 2>&1; then continue; fi
  if dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then continue; fi
  missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  log "OS packages present"
  exit 0
fi

log "installing OS packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
for pair in "${wanted[@]}"; do
  command -v "${pair#*:}" >/dev/null 2>&1 || die "package ${pair%%:*} installed but ${pair#*:} is not on PATH"
done
log "OS packages installed"

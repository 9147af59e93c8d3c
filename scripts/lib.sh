# Shared helpers for the provisioning scripts. Source it, don't run it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Sets HOTLINE_REPO (the checkout), HOTLINE_CACHE (machine-wide cache, outside the checkout)
# and HOTLINE_ASTERISK_ROOT (the Asterisk root filesystem).

HOTLINE_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOTLINE_CACHE="${HOTLINE_CACHE:-/var/cache/hotline}"
HOTLINE_ASTERISK_ROOT="${HOTLINE_ASTERISK_ROOT:-$HOTLINE_CACHE/asterisk-root}"
export HOTLINE_CACHE HOTLINE_ASTERISK_ROOT

log() { printf '[provision] %s\n' "$*"; }
warn() { printf '[provision] warning: %s\n' "$*" >&2; }
die() { printf '[provision] error: %s\n' "$*" >&2; exit 1; }

# as_root CMD...: run CMD as root (directly when we are root, else through sudo when available).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (not root and no sudo)"
  fi
}

# debian_mirror: the Debian archive URI this machine's apt already uses (never hard-coded).
# deb822 files first (skipping security suites, which carry no unstable), then sources.list.
debian_mirror() {
  local uri="" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk '
      function flush() {
        if (uris != "" && suites !~ /security/ && (types == "" || types ~ /(^| )deb( |$)/)) { split(uris, u, " "); print u[1]; found = 1; exit }
        uris = ""; suites = ""; types = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      tolower($1) == "uris:"   { $1 = ""; uris = $0; sub(/^ +/, "", uris); next }
      tolower($1) == "suites:" { $1 = ""; suites = $0; next }
      tolower($1) == "types:"  { $1 = ""; types = $0; next }
      END { if (!found) flush() }
    ' "$f")"
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri="$(awk '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) !~ /security/) { print $i; exit }
      }' /etc/apt/sources.list)"
  fi
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
  printf '%s\n' "${uri%/}"
}

# url_host URL: the host part of scheme://[user[:pass]@]host[:port][/path] ("" for a socket URL).
url_host() {
  local rest="${1#*://}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  rest="${rest##*@}"
  case "$rest" in
    \[*\]*) rest="${rest#\[}"; rest="${rest%%\]*}" ;;
    *) rest="${rest%%:*}" ;;
  esac
  printf '%s\n' "$rest"
}

# is_local_host HOST: true for this machine's loopback names (and empty: a unix socket).
is_local_host() {
  case "$1" in
    "" | 127.0.0.1 | localhost | ::1) return 0 ;;
    *) return 1 ;;
  esac
}

# ari_get URL: GET an ARI resource with ARI_USER / ARI_PASSWORD, credentials kept off the command line.
ari_get() {
  local user="${ARI_USER:-hotline}" pass="${ARI_PASSWORD:-hotline-dev}" cred
  cred="$user:$pass"
  cred="${cred//\\/\\\\}"
  cred="${cred//\"/\\\"}"
  printf 'user = "%s"\n' "$cred" | curl -fsS --max-time 5 -K - "$1"
}

# ari_elsewhere: ARI_URL is set and names an Asterisk other than the local one this project runs
# (127.0.0.1 / localhost / ::1 on port 8088 is ours: provisioned and started as usual)
ari_elsewhere() {
  [ -n "${ARI_URL:-}" ] || return 1
  is_local_host "$(url_host "$ARI_URL")" || return 0
  local rest port=""
  rest="${ARI_URL#*://}"
  rest="${rest%%/*}"
  rest="${rest##*@}"
  case "$rest" in
    *\]:*) port="${rest##*\]:}" ;;
    \[*) port="" ;;
    *:*) port="${rest##*:}" ;;
  esac
  [ "$port" != 8088 ]
}

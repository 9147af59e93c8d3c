#!/usr/bin/env bash
# Start the local PostgreSQL and Redis when they are installed but not running, then create the databases.
# Usage: scripts/services.sh [DBNAME|postgres://URL ...]
#   DATABASE_URL  default postgres://postgres@127.0.0.1:5432/hotline: its database is created when missing
#   REDIS_URL     default redis://127.0.0.1:6379
#   extra args    more databases to create: a bare name (on DATABASE_URL's server) or a full postgres:// URL
# A URL pointing anywhere but this machine (127.0.0.1 / localhost / ::1) is left alone.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/hotline}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

# wait_for SECONDS CMD...: poll CMD every 0.5 s until it succeeds
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

pg_alive() { pg_isready -q -h 127.0.0.1; }
redis_alive() { [ "$(redis-cli -h 127.0.0.1 ping 2>/dev/null)" = "PONG" ]; }

ensure_postgres() {
  if ! command -v pg_isready >/dev/null 2>&1; then
    die "PostgreSQL client tools (pg_isready, psql) are not installed; install PostgreSQL or point DATABASE_URL at a server"
  fi
  if pg_alive; then
    log "PostgreSQL running"
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    die "PostgreSQL is not running on 127.0.0.1 and is not installed here"
  fi
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for 30 pg_alive || die "PostgreSQL did not answer on 127.0.0.1 within 30 s"
  log "PostgreSQL running"
}

ensure_redis() {
  if command -v redis-cli >/dev/null 2>&1 && redis_alive; then
    log "Redis running"
    return
  fi
  command -v redis-server >/dev/null 2>&1 || die "Redis is not running on 127.0.0.1 and is not installed here"
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli is not installed (needed to check Redis)"
  log "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 30 redis_alive || die "Redis did not answer on 127.0.0.1:6379 within 30 s (see /var/log/redis/ci.log)"
  log "Redis running"
}

# url_dbname URL: the database named by a postgres URL (path without the leading slash and the query)
url_dbname() {
  local rest="${1#*://}"
  case "$rest" in */*) rest="${rest#*/}" ;; *) rest="" ;; esac
  rest="${rest%%\?*}"
  printf '%s\n' "$rest"
}

# with_dbname URL NAME: the same URL naming another database
with_dbname() {
  local url="$1" name="$2" scheme rest query=""
  scheme="${url%%://*}"
  rest="${url#*://}"
  case "$rest" in *\?*) query="?${rest#*\?}"; rest="${rest%%\?*}" ;; esac
  rest="${rest%%/*}"
  printf '%s://%s/%s%s\n' "$scheme" "$rest" "$name" "$query"
}

# ensure_database URL: create the database the URL names when it is missing
ensure_database() {
  local url="$1" name admin exists
  name="$(url_dbname "$url")"
  [ -n "$name" ] || die "no database name in $url"
  [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_-]*$ ]] || die "refusing unusual database name: $name"
  admin="$(with_dbname "$url" postgres)"
  exists="$(psql -X -q -t -A -d "$admin" -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" \
    || die "cannot connect to PostgreSQL as $(with_dbname "$url" postgres | sed -E 's#://([^:@/]*):[^@/]*@#://\1:***@#')"
  if [ "$exists" = "1" ]; then
    log "database $name exists"
  else
    psql -X -q -v ON_ERROR_STOP=1 -d "$admin" -c "CREATE DATABASE \"$name\"" >/dev/null \
      || die "could not create database $name"
    log "database $name created"
  fi
}

pg_host="$(url_host "$DATABASE_URL")"
if is_local_host "$pg_host"; then
  ensure_postgres
  urls=("$DATABASE_URL")
  for arg in "$@"; do
    case "$arg" in
      *://*) urls+=("$arg") ;;
      *) urls+=("$(with_dbname "$DATABASE_URL" "$arg")") ;;
    esac
  done
  for url in "${urls[@]}"; do
    if is_local_host "$(url_host "$url")"; then
      ensure_database "$url"
    else
      log "database at $(url_host "$url") is not local: left alone"
    fi
  done
else
  log "DATABASE_URL points at $pg_host: PostgreSQL left alone"
  for arg in "$@"; do
    case "$arg" in
      *://*)
        if is_local_host "$(url_host "$arg")"; then ensure_postgres; ensure_database "$arg"; fi ;;
    esac
  done
fi

redis_host="$(url_host "$REDIS_URL")"
if is_local_host "$redis_host"; then
  ensure_redis
else
  log "REDIS_URL points at $redis_host: Redis left alone"
fi

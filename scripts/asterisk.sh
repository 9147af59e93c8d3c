#!/usr/bin/env bash
# Run Asterisk 22 (Debian unstable's package) in a chroot root filesystem kept outside the checkout.
# Usage: scripts/asterisk.sh provision|start|stop|restart|reload|status|cli "command"|render DIR
#   provision  build the root filesystem if missing (debootstrap, ~1-2 min), write the project's config,
#              /etc/hosts, spool/log dirs, prompts and hold music into it
#   start      provision, then start Asterisk and wait for ARI; when already running: provision + reload
#   stop       core stop now, SIGKILL after 15 s; fine when not running
#   restart    stop + start
#   reload     provision + "module reload" + "dialplan reload" on the running Asterisk
#   status     one line; exit 0 when running and ARI answers, 1 otherwise
#   cli CMD    run an Asterisk CLI command (asterisk -rx CMD)
#   render DIR write the project's Asterisk config, filled in, into DIR (no root, Asterisk untouched)
# Environment:
#   HOTLINE_ASTERISK_ROOT  root filesystem (default $HOTLINE_CACHE/asterisk-root)
#   HOTLINE_CACHE          cache dir for prompts, log (asterisk.log) and pid file (default /var/cache/hotline)
#   ARI_USER, ARI_PASSWORD ARI credentials written into ari.conf (default hotline / hotline-dev; with
#                          NODE_ENV=production the default and passwords under 16 characters are refused)
#   SIP_TRUNK_ADDRESSES    the IPv4 addresses (a.b.c.d or a.b.c.d/nn, comma-separated) calls are taken
#                          from: the callers' trunk is identified by them and refuses any other (default 127.0.0.1)
#   ARI_URL                when it names another Asterisk than 127.0.0.1:8088: provision/start do nothing
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ARI_USER="${ARI_USER:-hotline}"
ARI_PASSWORD="${ARI_PASSWORD:-hotline-dev}"
SIP_TRUNK_ADDRESSES="${SIP_TRUNK_ADDRESSES:-127.0.0.1}"
export ARI_USER ARI_PASSWORD SIP_TRUNK_ADDRESSES
DIR="$HOTLINE_ASTERISK_ROOT"
LOG="$HOTLINE_CACHE/asterisk.log"
PIDFILE="$HOTLINE_CACHE/asterisk.pid"
LOCAL_ARI="http://127.0.0.1:8088/ari/asterisk/info"
START_TIMEOUT=60
STOP_TIMEOUT=15

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }

# ---------------------------------------------------------------- helpers

# pid_alive PID: the process exists and is not a zombie
pid_alive() {
  local state
  [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
  state="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ "$state" != Z ] && [ "$state" != X ]
}

# is_asterisk PID: that process is an Asterisk running in this root filesystem
is_asterisk() {
  pid_alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = asterisk ] \
    && [ "$(readlink "/proc/$1/root" 2>/dev/null)" = "$(realpath -m "$DIR")" ]
}

# asterisk_pid: the running Asterisk's pid (our pid file, else the one Asterisk writes in the root), or ""
asterisk_pid() {
  local pid=""
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if is_asterisk "$pid"; then echo "$pid"; return; fi
  # /var/run is a symlink to /run inside the root: read it through chroot, never the host's /run
  pid="$(chroot "$DIR" cat /var/run/asterisk/asterisk.pid 2>/dev/null || true)"
  if is_asterisk "$pid"; then echo "$pid"; return; fi
  echo ""
}

ast_rx() { timeout 15 chroot "$DIR" /usr/sbin/asterisk -rx "$1"; }
ast_answers() { ast_rx 'core show version' >/dev/null 2>&1; }
ari_answers() { ari_get "$LOCAL_ARI" >/dev/null 2>&1; }
# wait_ari SECONDS: poll ARI until it answers
wait_ari() {
  local deadline=$((SECONDS + $1))
  until ari_answers; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.25
  done
}

# safe_path REL: DIR/REL, refusing symlinks on the way (they point into the host outside the chroot)
safe_path() {
  local rel="$1" p="$DIR" part
  local IFS=/
  for part in $rel; do
    [ -n "$part" ] || continue
    p="$p/$part"
    [ ! -L "$p" ] || die "$p is a symlink; refusing to write through it"
  done
  printf '%s\n' "$p"
}

log_tail() {
  echo "---- last lines of $LOG" >&2
  tail -n 25 "$LOG" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
  if chroot "$DIR" test -f /var/log/asterisk/messages 2>/dev/null; then
    echo "---- last lines of $DIR/var/log/asterisk/messages" >&2
    chroot "$DIR" tail -n 15 /var/log/asterisk/messages | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
  fi
}

# unmount_under PATH: unmount everything mounted below PATH (deepest first)
unmount_under() {
  local m
  awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    as_root umount -l "$m" || true
  done
}

# ---------------------------------------------------------------- root filesystem

ensure_rootfs() {
  if [ -x "$DIR/usr/sbin/asterisk" ]; then return; fi
  if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    die "$DIR exists but has no usr/sbin/asterisk: remove it (or set HOTLINE_ASTERISK_ROOT) and run again"
  fi
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (run scripts/install-packages.sh)"
  local mirror partial="$DIR.partial" blog="$HOTLINE_CACHE/debootstrap.log"
  mirror="$(debian_mirror)"
  log "building the Asterisk root filesystem in $DIR (debootstrap unstable, ~1-2 min, ~500 MB)"
  if [ -e "$partial" ]; then
    log "removing an interrupted build ($partial)"
    unmount_under "$partial"
    as_root rm -rf --one-file-system "$partial"
  fi
  as_root mkdir -p "$(dirname "$DIR")"
  if ! as_root debootstrap --variant=minbase --include=asterisk,asterisk-modules unstable "$partial" "$mirror" >"$blog" 2>&1; then
    unmount_under "$partial"
    tail -n 20 "$blog" >&2
    die "debootstrap failed (full log: $blog)"
  fi
  unmount_under "$partial"
  [ -x "$partial/usr/sbin/asterisk" ] || die "debootstrap finished but $partial/usr/sbin/asterisk is missing (log: $blog)"
  [ ! -e "$DIR" ] || rmdir "$DIR"
  as_root mv "$partial" "$DIR"
  log "root filesystem ready: $("$DIR/usr/sbin/asterisk" -V 2>/dev/null || chroot "$DIR" /usr/sbin/asterisk -V)"
}

# ---------------------------------------------------------------- configuration

# render SRC DEST: copy a config template, filling @ARI_USER@, @ARI_PASSWORD@ and @SIP_TRUNK_ADDRESSES@
# (plain string replacement, no eval; ';' in the password escaped for Asterisk's config parser)
render() {
  local src="$1" dest="$2" text unknown pass
  unknown="$(grep -o '@[A-Z][A-Z0-9_]*@' "$src" | grep -v -x -e '@ARI_USER@' -e '@ARI_PASSWORD@' -e '@SIP_TRUNK_ADDRESSES@' | sort -u | tr '\n' ' ' || true)"
  [ -z "$unknown" ] || die "$src: unknown placeholder(s): $unknown"
  text="$(cat "$src"; printf x)"
  text="${text%x}"
  pass="${ARI_PASSWORD//;/\\;}"
  text="${text//@ARI_USER@/"$ARI_USER"}"
  text="${text//@ARI_PASSWORD@/"$pass"}"
  text="${text//@SIP_TRUNK_ADDRESSES@/"$SIP_TRUNK_ADDRESSES"}"
  printf '%s' "$text" >"$dest"
}

check_credentials() {
  [[ "$ARI_USER" =~ ^[A-Za-z0-9._-]+$ ]] || die "ARI_USER must be letters, digits, '.', '_' or '-'"
  case "$ARI_PASSWORD" in
    "" | *$'\n'* | *$'\r'* | " "* | *" " | *$'\t'*) die "ARI_PASSWORD must be non-empty, one line, without leading/trailing blanks" ;;
  esac
  if [ "${NODE_ENV:-}" = production ]; then
    [ "$ARI_PASSWORD" != hotline-dev ] || die "ARI_PASSWORD must be set in production (the development default is refused)"
    [ "${#ARI_PASSWORD}" -ge 16 ] || die "ARI_PASSWORD must have at least 16 characters in production"
  fi
  # IPv4 host addresses or networks, never "anyone" (0.0.0.0/0): the trunk is taken from these only
  local addr_re='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}(/(3[0-2]|[12]?[0-9]))?'
  [[ "$SIP_TRUNK_ADDRESSES" =~ ^$addr_re(,$addr_re)*$ ]] || die "SIP_TRUNK_ADDRESSES must be IPv4 addresses (a.b.c.d or a.b.c.d/nn), comma-separated, got \"$SIP_TRUNK_ADDRESSES\""
  case ",$SIP_TRUNK_ADDRESSES," in
    *,0.0.0.0/0,* | *,0.0.0.0,* | */0,*) die "SIP_TRUNK_ADDRESSES must name the trunk's addresses, not every address" ;;
  esac
}

# render_all DIR: every project config file (config/asterisk/*.conf, dialplan/*.conf) rendered into DIR
render_all() {
  local stage="$1" f name
  check_credentials
  for f in "$HOTLINE_REPO"/config/asterisk/*.conf "$HOTLINE_REPO"/dialplan/*.conf; do
    [ -f "$f" ] || continue
    name="$(basename "$f")"
    [ ! -e "$stage/$name" ] || die "$name is given twice (config/asterisk and dialplan, or it is asterisk.conf)"
    render "$f" "$stage/$name"
  done
  chmod 0640 "$stage/ari.conf" 2>/dev/null || true
}

# install_config: make DIR/etc/asterisk = dist asterisk.conf + config/asterisk/*.conf + dialplan/*.conf
install_config() {
  local etc dist stage f name
  etc="$(safe_path etc/asterisk)"
  dist="$(safe_path etc/asterisk.dist)"
  if [ ! -d "$dist" ]; then
    [ ! -e "$etc/.hotline-provisioned" ] || die "$dist is missing and $etc is already the project's: rebuild the root filesystem"
    log "keeping the package's pristine /etc/asterisk as /etc/asterisk.dist"
    rm -rf "$dist.tmp"
    cp -a "$etc" "$dist.tmp"
    mv "$dist.tmp" "$dist"
  fi
  [ -f "$dist/asterisk.conf" ] || die "$dist/asterisk.conf is missing"
  check_credentials
  stage="$(safe_path etc/asterisk.new)"
  rm -rf "$stage"
  mkdir -p "$stage"
  cp "$dist/asterisk.conf" "$stage/asterisk.conf"
  render_all "$stage"
  : >"$stage/.hotline-provisioned"
  if [ -d "$etc" ] && diff -r -q "$stage" "$etc" >/dev/null 2>&1; then
    rm -rf "$stage"
    log "config up to date"
    return
  fi
  rm -rf "$etc.old"
  [ ! -e "$etc" ] || mv "$etc" "$etc.old"
  mv "$stage" "$etc"
  rm -rf "$etc.old"
  log "config written to $etc"
}

write_hosts() {
  local hosts host short
  hosts="$(safe_path etc/hosts)"
  host="$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
  short="${host%%.*}"
  # without it Asterisk resolves the hostname through DNS on every call (5 s stalls under load)
  local want
  want="127.0.0.1 localhost $host"
  [ "$short" = "$host" ] || want="$want $short"
  want="$want"$'\n'"::1 localhost ip6-localhost ip6-loopback"
  if [ "$(cat "$hosts" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" >"$hosts"
    log "wrote $hosts"
  fi
}

make_dirs() {
  # created through chroot: /var/run is a symlink to /run inside the root
  chroot "$DIR" mkdir -p /var/spool/asterisk/recording /var/spool/asterisk/voicemail \
    /var/log/asterisk /var/run/asterisk /usr/share/asterisk/sounds /usr/share/asterisk/moh
}

# sync_tree SRC RELDEST: make DIR/RELDEST an exact copy of SRC's *.wav files (swap in a fresh copy when different)
sync_tree() {
  local src="$1" dest stage
  dest="$(safe_path "$2")"
  stage="$dest.new"
  rm -rf "$stage"
  mkdir -p "$stage"
  cp -a "$src/." "$stage/"
  find "$stage" -type f ! -name '*.wav' -delete
  if [ -d "$dest" ] && diff -r -q "$stage" "$dest" >/dev/null 2>&1; then
    rm -rf "$stage"
    return 1
  fi
  rm -rf "$dest.old"
  [ ! -e "$dest" ] || mv "$dest" "$dest.old"
  mv "$stage" "$dest"
  rm -rf "$dest.old"
}

install_sounds() {
  bash "$HOTLINE_REPO/scripts/sounds.sh"
  if sync_tree "$HOTLINE_CACHE/sounds" usr/share/asterisk/sounds/hotline; then
    log "prompts installed in $DIR/usr/share/asterisk/sounds/hotline"
  fi
  if sync_tree "$HOTLINE_CACHE/moh" usr/share/asterisk/moh/hotline; then
    log "hold music installed in $DIR/usr/share/asterisk/moh/hotline"
  fi
}

provision() {
  mkdir -p "$HOTLINE_CACHE"
  ensure_rootfs
  install_config
  write_hosts
  make_dirs
  install_sounds
}

# ---------------------------------------------------------------- commands

reload_running() {
  ast_rx 'module reload' >/dev/null || die "module reload failed"
  ast_rx 'dialplan reload' >/dev/null || die "dialplan reload failed"
}

cmd_start() {
  local pid
  pid="$(asterisk_pid)"
  if [ -n "$pid" ] && ast_answers; then
    provision
    reload_running
    echo "$pid" >"$PIDFILE"
    wait_ari 10 || die "Asterisk is running (pid $pid) but ARI does not answer on $LOCAL_ARI after the reload (try: asterisk.sh restart)"
    log "Asterisk already running (pid $pid): config reloaded"
    return
  fi
  if [ -n "$pid" ]; then
    log "Asterisk pid $pid does not answer the CLI: stopping it"
    cmd_stop
  fi
  provision
  if ! mountpoint -q "$DIR/proc"; then
    as_root mount -t proc proc "$DIR/proc" || die "cannot mount proc at $DIR/proc"
  fi
  [ ! -f "$LOG" ] || mv -f "$LOG" "$LOG.1"
  log "starting Asterisk (log: $LOG)"
  # detached: own session, no terminal, lock fd closed so it is not held for Asterisk's lifetime
  setsid chroot "$DIR" /usr/sbin/asterisk -f </dev/null >"$LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until ari_answers; do
    if ! pid_alive "$pid"; then
      log_tail
      die "Asterisk exited during start-up"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log_tail
      cmd_stop >/dev/null 2>&1 || true
      die "Asterisk started but ARI did not answer on $LOCAL_ARI within ${START_TIMEOUT} s (stopped it again)"
    fi
    sleep 0.25
  done
  # setsid only forks when already a group leader: trust the pid Asterisk reports
  local real
  real="$(chroot "$DIR" cat /var/run/asterisk/asterisk.pid 2>/dev/null || true)"
  if is_asterisk "$real"; then echo "$real" >"$PIDFILE"; pid="$real"; fi
  log "Asterisk running (pid $pid), ARI answers on 127.0.0.1:8088"
}

cmd_stop() {
  local pid
  pid="$(asterisk_pid)"
  if [ -z "$pid" ] && ! ast_answers; then
    rm -f "$PIDFILE"
    log "Asterisk not running"
    return
  fi
  log "stopping Asterisk${pid:+ (pid $pid)}"
  ast_rx 'core stop now' >/dev/null 2>&1 || true
  if [ -z "$pid" ]; then
    # answering the CLI but pid unknown: give it a moment, then look again
    sleep 1
    pid="$(asterisk_pid)"
  fi
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while [ -n "$pid" ] && pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "Asterisk did not stop within ${STOP_TIMEOUT} s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE"
  log "Asterisk stopped"
}

cmd_status() {
  local pid
  pid="$(asterisk_pid)"
  if [ -z "$pid" ]; then
    echo "[provision] Asterisk not running"
    return 1
  fi
  if ari_answers; then
    echo "[provision] Asterisk running (pid $pid), ARI answers on 127.0.0.1:8088"
    return 0
  fi
  echo "[provision] Asterisk process $pid is up but ARI does not answer on $LOCAL_ARI"
  return 1
}

# ---------------------------------------------------------------- main

cmd="${1:-}"
[ -n "$cmd" ] || usage

if ari_elsewhere; then
  case "$cmd" in
    provision | start | restart | reload)
      log "ARI_URL is set ($ARI_URL): Asterisk is managed elsewhere, provisioning skipped"
      exit 0 ;;
    stop)
      log "ARI_URL is set ($ARI_URL): Asterisk is managed elsewhere, nothing to stop"
      exit 0 ;;
    status)
      if ari_get "${ARI_URL%/}/ari/asterisk/info" >/dev/null 2>&1; then
        echo "[provision] ARI_URL is set: Asterisk is managed elsewhere; ARI answers at $ARI_URL"
        exit 0
      fi
      echo "[provision] ARI_URL is set: Asterisk is managed elsewhere; ARI does not answer at $ARI_URL"
      exit 1 ;;
    cli)
      die "ARI_URL is set: Asterisk is managed elsewhere, no local CLI" ;;
  esac
fi

case "$cmd" in -h | --help | help) usage ;; esac

if [ "$cmd" = render ]; then
  # the config as provisioning would write it, for review and tests: no root, no Asterisk touched
  [ "$#" -eq 2 ] || die "usage: asterisk.sh render DIR"
  mkdir -p "$2"
  [ -z "$(ls -A "$2")" ] || die "$2 is not empty"
  render_all "$2"
  exit 0
fi

# chroot and mount need root: go through sudo when we are not root
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "asterisk.sh $cmd needs root (chroot, mount) and sudo is not available"
  exec sudo -E bash "${BASH_SOURCE[0]}" "$@"
fi

case "$cmd" in
  provision | start | stop | restart | reload)
    mkdir -p "$HOTLINE_CACHE"
    exec 9>"$HOTLINE_CACHE/asterisk.lock"
    flock -w 120 9 || die "another asterisk.sh is still running (lock $HOTLINE_CACHE/asterisk.lock)"
    ;;
esac

case "$cmd" in
  provision)
    provision
    if [ -n "$(asterisk_pid)" ]; then log "Asterisk is running: 'asterisk.sh reload' (or start) loads the new config"; fi
    ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  reload)
    [ -n "$(asterisk_pid)" ] && ast_answers || die "Asterisk is not running"
    provision
    reload_running
    log "config reloaded"
    ;;
  status) cmd_status ;;
  cli)
    [ "$#" -ge 2 ] || die "usage: asterisk.sh cli \"command\""
    [ -x "$DIR/usr/sbin/asterisk" ] || die "no Asterisk root filesystem at $DIR"
    shift
    ast_rx "$*"
    ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# The RabbitMQ releases Warren is tested against, and how to run a node of each on this machine.
# See docs/rabbitmq-releases.md for the facts behind it.
#
#   3.10  Debian bookworm's rabbitmq-server, installed on the host (scripts/deps.sh)
#   4.0   Debian trixie's, in a chroot
#   4.3   Debian forky's, in a chroot
#
#   scripts/rabbitmq-release.sh ensure RELEASE
#       makes the release runnable: for a chroot release, builds it once under
#       $WARREN_BROKER_CACHE/SUITE (default /var/cache/warren-brokers/SUITE; installs debootstrap
#       if missing). Prints the rabbitmq-server package version.
#   scripts/rabbitmq-release.sh run RELEASE NODE_DIR TLS_DIR -- COMMAND [ARGS...]
#       runs COMMAND (a path inside the release, e.g. /usr/lib/rabbitmq/bin/rabbitmq-server) in
#       the foreground and in place of this script (same pid: `setsid` in front of it still gives
#       the caller one process group to stop). In a chroot, NODE_DIR (the node's state) appears
#       as /warren/node and TLS_DIR (may be empty) read-only as /warren/tls: use release_path
#       to name files inside them.
#
# broker.sh and cluster.sh source this file for release_select and release_path.
set -euo pipefail

WARREN_BROKER_CACHE=${WARREN_BROKER_CACHE:-/var/cache/warren-brokers}
# Where the chroots' packages come from; debootstrap's own default.
WARREN_DEBIAN_MIRROR=${WARREN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
RELEASES="3.10 4.0 4.3"

# release_select RELEASE: sets RELEASE, RELEASE_SUITE and RELEASE_ROOT (empty for the host).
release_select() {
  RELEASE=$1
  case "$RELEASE" in
    3.10) RELEASE_SUITE=bookworm; RELEASE_ROOT="" ;;
    4.0) RELEASE_SUITE=trixie; RELEASE_ROOT="$WARREN_BROKER_CACHE/trixie" ;;
    4.3) RELEASE_SUITE=forky; RELEASE_ROOT="$WARREN_BROKER_CACHE/forky" ;;
    *) echo "unknown RabbitMQ release '$RELEASE' (known: $RELEASES)" >&2; return 2 ;;
  esac
}

# release_path node|tls HOST_DIR: how the node of the selected release names HOST_DIR.
release_path() {
  if [ -z "$RELEASE_ROOT" ]; then echo "$2"; else echo "/warren/$1"; fi
}

release_ready() { [ -z "$RELEASE_ROOT" ] || [ -f "$RELEASE_ROOT/.warren-ready" ]; }

# Unmounts whatever is mounted at or under $1 (deepest first), e.g. the /proc and /sys that
# debootstrap mounts in its target and leaves there when it is killed.
unmount_under() {
  local mnt
  findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1' | sort -r |
    while read -r mnt; do umount -l "$mnt" || true; done
}

ensure_debootstrap() {
  command -v debootstrap > /dev/null && return 0
  echo "installing: debootstrap" >&2
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends debootstrap > /dev/null
}

release_ensure() {
  release_ready && return 0
  [ "$(id -u)" -eq 0 ] || { echo "building the $RELEASE_SUITE chroot needs root" >&2; return 1; }
  ensure_debootstrap
  mkdir -p "$WARREN_BROKER_CACHE"
  # One builder at a time (two `make test` runs may start together); the second finds it ready.
  exec 9> "$WARREN_BROKER_CACHE/.lock"
  flock 9
  if release_ready; then exec 9>&-; return 0; fi
  # Leftovers of an interrupted build: never a chroot, as only a finished one is renamed into place.
  local stale
  for stale in "$WARREN_BROKER_CACHE/.building-$RELEASE_SUITE".*; do
    [ -e "$stale" ] || continue
    unmount_under "$stale"
    rm -rf --one-file-system "$stale"
  done
  local tmp started
  tmp=$(mktemp -d "$WARREN_BROKER_CACHE/.building-$RELEASE_SUITE.XXXXXX")
  chmod 755 "$tmp"
  started=$(date +%s)
  echo "building the $RELEASE_SUITE chroot for RabbitMQ $RELEASE in $RELEASE_ROOT (once; about 1-2 min)" >&2
  # Bookworm's debootstrap has no script for forky; trixie's fits it.
  local script=/usr/share/debootstrap/scripts/$RELEASE_SUITE
  [ -e "$script" ] || script=/usr/share/debootstrap/scripts/trixie
  if ! debootstrap --variant=minbase --include=rabbitmq-server,curl \
         "$RELEASE_SUITE" "$tmp" "$WARREN_DEBIAN_MIRROR" "$script" > "$tmp.log" 2>&1; then
    echo "debootstrap $RELEASE_SUITE failed; last lines of $tmp.log:" >&2
    tail -n 20 "$tmp.log" >&2
    unmount_under "$tmp"
    rm -rf --one-file-system "$tmp"
    exec 9>&-
    return 1
  fi
  unmount_under "$tmp"
  rm -f "$tmp.log"
  # A directory in the chroot's place without the mark is none of ours to trust (made by hand,
  # or by an older script): the finished one replaces it.
  if [ -e "$RELEASE_ROOT" ]; then
    unmount_under "$RELEASE_ROOT"
    rm -rf --one-file-system "$RELEASE_ROOT"
  fi
  # Mount points for `run`; /etc/hosts must exist to be bound over.
  mkdir -p "$tmp/warren/node" "$tmp/warren/tls"
  cp /etc/hosts "$tmp/etc/hosts"
  # The Erlang cookie of every node and rabbitmqctl run in this chroot (HOME=/root there):
  # made now, so nodes starting together never race to write different ones.
  (umask 077; head -c 15 /dev/urandom | base64 | tr -dc 'A-Za-z' > "$tmp/root/.erlang.cookie")
  chmod 400 "$tmp/root/.erlang.cookie"
  touch "$tmp/.warren-ready"
  mv -T "$tmp" "$RELEASE_ROOT"
  exec 9>&-
  echo "built $RELEASE_ROOT in $(( $(date +%s) - started )) s" >&2
}

release_package_version() {
  dpkg-query --admindir="$RELEASE_ROOT/var/lib/dpkg" -W -f='${Version}\n' rabbitmq-server
}

release_run() {
  local node_dir=$1 tls_dir=$2
  shift 2
  [ "${1:-}" = "--" ] && shift
  if [ -z "$RELEASE_ROOT" ]; then exec "$@"; fi
  release_ready || { echo "no $RELEASE_SUITE chroot: run '$0 ensure $RELEASE'" >&2; exit 1; }
  # A mount namespace of the node's own: the mounts below are private to it and vanish with its
  # last process, so neither a crash nor SIGKILL leaves a mount behind, and nodes sharing the
  # chroot each see their own /warren/node. RabbitMQ's memory monitor needs /proc; Erlang
  # distribution resolves `localhost` through /etc/hosts.
  exec unshare --mount --propagation private -- /bin/sh -c '
    set -e
    root=$1 node=$2 tls=$3
    shift 3
    mount --bind /proc "$root/proc"
    mount --bind /etc/hosts "$root/etc/hosts"
    mount --bind "$node" "$root/warren/node"
    if [ -n "$tls" ]; then mount --bind -o ro "$tls" "$root/warren/tls"; fi
    exec chroot "$root" /usr/bin/env HOME=/root "$@"' sh "$RELEASE_ROOT" "$node_dir" "$tls_dir" "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    ensure) [ $# -eq 2 ] || { echo "usage: $0 ensure RELEASE" >&2; exit 2; }
      release_select "$2"; release_ensure; release_package_version ;;
    run) [ $# -ge 5 ] || { echo "usage: $0 run RELEASE NODE_DIR TLS_DIR -- COMMAND..." >&2; exit 2; }
      release_select "$2"; shift 2; release_run "$@" ;;
    *) echo "usage: $0 ensure RELEASE | run RELEASE NODE_DIR TLS_DIR -- COMMAND... (RELEASE: $RELEASES)" >&2
      exit 2 ;;
  esac
fi

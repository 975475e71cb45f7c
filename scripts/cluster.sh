#!/usr/bin/env bash
# Starts or stops a private three-node RabbitMQ cluster on free loopback ports, for the cluster
# tests (Tests/integration/test_cluster.py). Modelled on scripts/broker.sh.
#
#   scripts/cluster.sh start DIR          start nodes 1-3 (state in DIR/n1..n3), join 2 and 3 to 1
#   scripts/cluster.sh stop-node DIR N    stop node N cleanly (rabbitmqctl stop; then SIGTERM,
#                                         SIGKILL to its process group)
#   scripts/cluster.sh stop DIR           stop every node (SIGTERM to each group, then SIGKILL)
#
# WARREN_BROKER_RELEASE picks the RabbitMQ release of all three nodes, as for scripts/broker.sh
# (3.10 by default; 4.0 and 4.3 run in a chroot, each node in a mount namespace of its own).
#
# After `start`, DIR/cluster.env holds shell assignments: for N in 1 2 3 NODE{N}_AMQP_PORT,
# NODE{N}_MGMT_PORT, NODE{N}_DIST_PORT, NODE{N}_NODENAME, NODE{N}_PID (the setsid group leader),
# NODE{N}_URL; CLUSTER_DIR, CLUSTER_RELEASE, and WARREN_MANAGEMENT_URL=url1,url2,url3.
# How a private node is started, and why, is in scripts/broker.sh and docs/rabbitmq-releases.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/rabbitmq-release.sh
. "$here/rabbitmq-release.sh"

RMQ=/usr/lib/rabbitmq/bin
NODES="1 2 3"

log() { echo "cluster: $*" >&2; }

# The inner rabbitmqctl: /usr/sbin/rabbitmqctl would switch to the rabbitmq user, whose HOME and
# therefore Erlang cookie differ from the nodes'. It is the nodes' own release's: its CLI calls
# into the node's internals, and its Erlang must speak the node's distribution protocol.
ctl() {
  local node=$1; shift
  timeout 90 "$here/rabbitmq-release.sh" run "$RELEASE" "$CLUSTER_DIR" "" -- "$RMQ/rabbitmqctl" -n "$node" "$@"
}

# Nine distinct free ports at once (holding every socket until all are chosen).
free_ports() {
  python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()'
}

# Every node, and rabbitmqctl, must share one Erlang cookie: they all run as this user with this
# HOME, so they read $HOME/.erlang.cookie. Make it before any node starts, or three nodes starting
# at once could each write a different one.
ensure_cookie() {
  # A chroot release has its own, made with the chroot (scripts/rabbitmq-release.sh).
  [ -z "$RELEASE_ROOT" ] || return 0
  [ -n "${HOME:-}" ] && [ -d "$HOME" ] || { log "HOME is not set to a directory"; return 1; }
  local cookie="$HOME/.erlang.cookie"
  if [ ! -s "$cookie" ]; then
    (umask 077; python3 -c 'import secrets, string; print("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)), end="")' > "$cookie")
    chmod 400 "$cookie"
    log "created $cookie"
  fi
  [ -r "$cookie" ] || { log "$cookie is not readable by $(id -un)"; return 1; }
}

mgmt_up() {
  curl -fsS -m 5 -u guest:guest -o /dev/null "http://127.0.0.1:$1/api/overview?disable_stats=true" 2>/dev/null
}

# wait_mgmt N SECONDS: until node N's management API answers (fails if its process died).
wait_mgmt() {
  local n=$1 limit=$2 port pid
  port=$(var "NODE${n}_MGMT_PORT"); pid=$(var "NODE${n}_PID")
  local deadline=$(( $(date +%s) + limit ))
  until mgmt_up "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "node $n exited; last lines of its log:"; tail -n 30 "$CLUSTER_DIR/n$n/out.log" >&2 || true
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "node $n: management API on port $port did not answer within $limit s"; return 1
    fi
    sleep 0.5
  done
}

var() { eval "echo \"\${$1:-}\""; }

running_nodes() {
  ctl "$NODE1_NODENAME" cluster_status --formatter json 2>/dev/null |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("running_nodes", [])))' 2>/dev/null || echo 0
}

start() {
  local dir=$1
  release_select "${WARREN_BROKER_RELEASE:-3.10}"
  release_ensure
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  CLUSTER_DIR=$dir
  ensure_cookie
  local ports
  read -r -a ports <<< "$(free_ports)"
  # The release first, so `stop` of a half-started cluster knows it.
  echo "CLUSTER_RELEASE=$RELEASE" > "$dir/cluster.env"
  local urls="" n i=0
  for n in $NODES; do
    local amqp=${ports[$i]} mgmt=${ports[$((i + 1))]} dist=${ports[$((i + 2))]}
    i=$((i + 3))
    local node="warrenc${ports[0]}n$n@localhost" hdir="$dir/n$n" ndir
    mkdir -p "$hdir"
    # The node's own name for its directory (/warren/node in a chroot).
    ndir=$(release_path node "$hdir")
    echo "[rabbitmq_management]." > "$hdir/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$ndir/mnesia" RABBITMQ_LOG_BASE="$ndir/log" RABBITMQ_NODENAME="$node" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$amqp" RABBITMQ_DIST_PORT="$dist" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$ndir/enabled_plugins" \
    RABBITMQ_FEATURE_FLAGS_FILE="$ndir/feature_flags" RABBITMQ_PLUGINS_EXPAND_DIR="$ndir/plugins-expand" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-rabbitmq_management tcp_config [{ip,\"127.0.0.1\"},{port,$mgmt}]" \
      setsid "$here/rabbitmq-release.sh" run "$RELEASE" "$hdir" "" -- "$RMQ/rabbitmq-server" \
        > "$hdir/out.log" 2>&1 < /dev/null &
    local pid=$!
    # Written as each node starts, so `stop` finds every node even if start fails half-way.
    cat >> "$dir/cluster.env" <<ENV
NODE${n}_AMQP_PORT=$amqp
NODE${n}_MGMT_PORT=$mgmt
NODE${n}_DIST_PORT=$dist
NODE${n}_NODENAME=$node
NODE${n}_PID=$pid
NODE${n}_URL=http://127.0.0.1:$mgmt
ENV
    urls="${urls:+$urls,}http://127.0.0.1:$mgmt"
  done
  cat >> "$dir/cluster.env" <<ENV
CLUSTER_DIR=$dir
WARREN_MANAGEMENT_URL=$urls
ENV
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  local started; started=$(date +%s)
  # A single node is up in 7-12 s on an idle machine; three at once on a loaded 2-core box
  # take several times that.
  for n in $NODES; do wait_mgmt "$n" 180 || { stop "$dir"; return 1; }; done
  log "3 nodes up after $(( $(date +%s) - started )) s; joining 2 and 3 to $NODE1_NODENAME"
  for n in 2 3; do
    local node; node=$(var "NODE${n}_NODENAME")
    if ! { ctl "$node" stop_app && ctl "$node" reset && ctl "$node" join_cluster "$NODE1_NODENAME" &&
           ctl "$node" start_app; } > "$dir/n$n/join.log" 2>&1; then
      log "node $n could not join:"; cat "$dir/n$n/join.log" >&2; stop "$dir"; return 1
    fi
  done
  local deadline=$(( $(date +%s) + 120 ))
  until [ "$(running_nodes)" = 3 ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "cluster_status does not list 3 running nodes within 120 s:"
      ctl "$NODE1_NODENAME" cluster_status >&2 || true
      stop "$dir"; return 1
    fi
    sleep 1
  done
  # start_app restarted the management listeners of nodes 2 and 3.
  for n in $NODES; do wait_mgmt "$n" 120 || { stop "$dir"; return 1; }; done
  log "cluster of 3 running nodes ready after $(( $(date +%s) - started )) s: $WARREN_MANAGEMENT_URL"
}

# Whether process group PID still runs the node whose management port is MGMT (its beam.smp
# has "{port,MGMT}" on its command line): a stopped node's pid may since have been reused.
ours() { pgrep -g "$1" -f "port,$2[}]" > /dev/null 2>&1; }

# Ends a node's process group: SIGTERM, up to 20 s, then SIGKILL.
end_group() {
  local pid=$1 mgmt=$2
  ours "$pid" "$mgmt" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 80); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

stop_node() {
  local dir=$1 n=$2
  [ -f "$dir/cluster.env" ] || { log "no $dir/cluster.env"; return 1; }
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  release_select "${CLUSTER_RELEASE:-3.10}"
  local node pid mgmt
  node=$(var "NODE${n}_NODENAME"); pid=$(var "NODE${n}_PID"); mgmt=$(var "NODE${n}_MGMT_PORT")
  [ -n "$pid" ] || { log "no node $n in $dir/cluster.env"; return 1; }
  ours "$pid" "$mgmt" || { log "node $n is not running"; return 0; }
  # A clean stop: the node leaves the running set and stays a cluster member.
  if ctl "$node" stop > /dev/null 2>&1; then
    for _ in $(seq 1 120); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.25
    done
  else
    log "rabbitmqctl stop of node $n failed; signalling it"
  fi
  end_group "$pid" "$mgmt"
  log "node $n ($node) stopped"
}

stop() {
  local dir=$1
  [ -f "$dir/cluster.env" ] || return 0
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  local pids="" n pid
  for n in $NODES; do
    pid=$(var "NODE${n}_PID")
    [ -n "$pid" ] && ours "$pid" "$(var "NODE${n}_MGMT_PORT")" && pids="$pids $pid"
  done
  for pid in $pids; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 1 80); do
    local alive=0
    for pid in $pids; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.25
  done
  for pid in $pids; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -f "$dir/cluster.env"
}

case "${1:-}" in
  start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop-node) [ $# -eq 3 ] || { echo "usage: $0 stop-node DIR N" >&2; exit 2; }; stop_node "$2" "$3" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 start DIR | stop-node DIR N | stop DIR" >&2; exit 2 ;;
esac

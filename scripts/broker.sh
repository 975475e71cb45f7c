#!/usr/bin/env bash
# Starts or stops a private RabbitMQ node on free loopback ports, for `make run` and `make test`.
#
#   scripts/broker.sh start DIR [AMQP_PORT MGMT_PORT]   start a node whose state lives in DIR
#   scripts/broker.sh stop DIR                          stop it (SIGTERM to beam, then SIGKILL)
#
# WARREN_BROKER_RELEASE picks the RabbitMQ release: 3.10 (default: the host's package), 4.0 or
# 4.3 (each in a chroot that scripts/rabbitmq-release.sh builds once; see docs/rabbitmq-releases.md).
#
# After `start`, DIR/broker.env holds shell assignments for the node:
# BROKER_AMQP_PORT, BROKER_MGMT_PORT, BROKER_DIST_PORT, BROKER_NODENAME, BROKER_PID, BROKER_DIR,
# BROKER_RELEASE (3.10, 4.0, 4.3), BROKER_VERSION (the node's own rabbitmq_version),
# BROKER_STREAM_PORT (the stream protocol's listener: the rabbitmq_stream plugin, on 127.0.0.1,
# advertised as 127.0.0.1 so a stream client is never sent to the node's host name),
# WARREN_MANAGEMENT_URL.
#
# With BROKER_MGMT_TLS_DIR set (a directory holding ca.pem, cert.pem and key.pem, the server
# certificate naming localhost), the management plugin also serves HTTPS on 127.0.0.1, on
# BROKER_MGMT_TLS_PORT (free port if unset); broker.env then adds BROKER_MGMT_TLS_PORT and
# BROKER_MGMT_TLS_URL=https://localhost:PORT. The plain HTTP listener stays as it is.
#
# Resource alarms and limits, for tests of what a noisy tenant can do to the node (each optional,
# a whole number of bytes; unset: the release's default):
#   BROKER_MEMORY_WATERMARK   vm_memory_high_watermark {absolute,N}: the memory alarm (which blocks
#                             every publishing connection on the node) goes off above N bytes.
#   BROKER_DISK_LIMIT         disk_free_limit {absolute,N}: the disk alarm goes off when the free
#                             space of the node's disk falls below N. A limit above the free space
#                             raises the alarm at once: to make it reachable, set it a few hundred
#                             MB below what `df` shows for DIR.
#   BROKER_MAX_MESSAGE_SIZE   max_message_size N: the node refuses (closes the channel of) a
#                             publish of a larger message. RabbitMQ caps it at 512 MiB.
# They go to the node as `-rabbit KEY VALUE` Erlang arguments (RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS),
# the same on the host's 3.10 and the 4.0 / 4.3 chroots; broker.env repeats the ones set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/rabbitmq-release.sh
. "$here/rabbitmq-release.sh"

RMQ=/usr/lib/rabbitmq/bin

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir=$1 amqp=${2:-} mgmt=${3:-}
  # Checked first: nothing is started or written for a bad value.
  local limits="" var value
  for var in BROKER_MEMORY_WATERMARK BROKER_DISK_LIMIT BROKER_MAX_MESSAGE_SIZE; do
    value=${!var:-}
    [ -n "$value" ] || continue
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "$var must be a whole number of bytes, got '$value'" >&2; return 1; }
    limits="$limits$var=$value"$'\n'
  done
  release_select "${WARREN_BROKER_RELEASE:-3.10}"
  release_ensure
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # The node's own name for $dir: the same path on the host, /warren/node in a chroot.
  local ndir
  ndir=$(release_path node "$dir")
  [ -n "$amqp" ] || amqp=$(free_port)
  [ -n "$mgmt" ] || mgmt=$(free_port)
  local dist stream
  dist=$(free_port)
  # BROKER_STREAM_LISTEN_PORT asks for a port (make run asks for the usual 5552 when it is free).
  stream=${BROKER_STREAM_LISTEN_PORT:-$(free_port)}
  local node="warren${amqp}@localhost"
  echo "[rabbitmq_management,rabbitmq_stream]." > "$dir/enabled_plugins"
  local erl_args="-rabbitmq_management tcp_config [{ip,\"127.0.0.1\"},{port,$mgmt}]"
  # The stream plugin tells a client which host and port to connect to for a stream's leader or
  # replica (its metadata command); unset, it names the node's host ("localhost", which may
  # resolve to ::1 where nothing listens), so both are set to the listener itself.
  erl_args="$erl_args -rabbitmq_stream tcp_listeners [{\"127.0.0.1\",$stream}]"
  erl_args="$erl_args -rabbitmq_stream advertised_host <<\"127.0.0.1\">> -rabbitmq_stream advertised_port $stream"
  # The values are Erlang terms without spaces: the server script splits the variable on spaces.
  [ -z "${BROKER_MEMORY_WATERMARK:-}" ] || erl_args="$erl_args -rabbit vm_memory_high_watermark {absolute,$BROKER_MEMORY_WATERMARK}"
  [ -z "${BROKER_DISK_LIMIT:-}" ] || erl_args="$erl_args -rabbit disk_free_limit {absolute,$BROKER_DISK_LIMIT}"
  [ -z "${BROKER_MAX_MESSAGE_SIZE:-}" ] || erl_args="$erl_args -rabbit max_message_size $BROKER_MAX_MESSAGE_SIZE"
  local tls_dir=${BROKER_MGMT_TLS_DIR:-} tls_port=""
  if [ -n "$tls_dir" ]; then
    tls_dir=$(cd "$tls_dir" && pwd)
    for f in ca.pem cert.pem key.pem; do
      [ -r "$tls_dir/$f" ] || { echo "BROKER_MGMT_TLS_DIR: $tls_dir/$f is missing" >&2; return 1; }
    done
    tls_port=${BROKER_MGMT_TLS_PORT:-$(free_port)}
    local ntls
    ntls=$(release_path tls "$tls_dir")
    erl_args="$erl_args -rabbitmq_management ssl_config [{ip,\"127.0.0.1\"},{port,$tls_port},{cacertfile,\"$ntls/ca.pem\"},{certfile,\"$ntls/cert.pem\"},{keyfile,\"$ntls/key.pem\"}]"
  fi
  # /usr/sbin/rabbitmq-server would switch to the rabbitmq user, which cannot write to $dir:
  # run the inner script directly (it dies without RABBITMQ_FEATURE_FLAGS_FILE). setsid puts the
  # node in its own process group, so `stop` can end beam.smp and its children together; the
  # release runner execs in place, so $! is that group's leader.
  RABBITMQ_MNESIA_BASE="$ndir/mnesia" RABBITMQ_LOG_BASE="$ndir/log" RABBITMQ_NODENAME="$node" \
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$amqp" RABBITMQ_DIST_PORT="$dist" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$ndir/enabled_plugins" \
  RABBITMQ_FEATURE_FLAGS_FILE="$ndir/feature_flags" RABBITMQ_PLUGINS_EXPAND_DIR="$ndir/plugins-expand" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$erl_args" \
    setsid "$here/rabbitmq-release.sh" run "$RELEASE" "$dir" "$tls_dir" -- "$RMQ/rabbitmq-server" \
      > "$dir/out.log" 2>&1 < /dev/null &
  local pid=$!
  cat > "$dir/broker.env" <<ENV
BROKER_AMQP_PORT=$amqp
BROKER_MGMT_PORT=$mgmt
BROKER_DIST_PORT=$dist
BROKER_STREAM_PORT=$stream
BROKER_NODENAME=$node
BROKER_PID=$pid
BROKER_DIR=$dir
BROKER_RELEASE=$RELEASE
WARREN_MANAGEMENT_URL=http://127.0.0.1:$mgmt
ENV
  printf '%s' "$limits" >> "$dir/broker.env"
  if [ -n "$tls_port" ]; then
    printf 'BROKER_MGMT_TLS_PORT=%s\nBROKER_MGMT_TLS_URL=https://localhost:%s\n' "$tls_port" "$tls_port" >> "$dir/broker.env"
  fi
  # 3.10 is up in 7-12 s on an idle machine, 4.x in 3-5 s; allow 120 s for a loaded CI box.
  local overview
  for _ in $(seq 1 240); do
    if overview=$(curl -fsS -u guest:guest "http://127.0.0.1:$mgmt/api/overview?disable_stats=true" 2>/dev/null) &&
       { [ -z "$tls_port" ] || curl -fsS -u guest:guest -o /dev/null --cacert "$tls_dir/ca.pem" \
           --resolve "localhost:$tls_port:127.0.0.1" "https://localhost:$tls_port/api/overview?disable_stats=true" 2>/dev/null; }; then
      # /api/version only exists from 4.0.5; the overview names the version on every release.
      local version
      version=$(printf '%s' "$overview" | python3 -c 'import json, sys; print(json.load(sys.stdin)["rabbitmq_version"])')
      echo "BROKER_VERSION=$version" >> "$dir/broker.env"
      echo "broker $node (RabbitMQ $version) up: amqp 127.0.0.1:$amqp, management http://127.0.0.1:$mgmt${tls_port:+ and https://localhost:$tls_port}" >&2
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "broker $node exited during start-up; last lines of $dir/out.log:" >&2
      tail -n 30 "$dir/out.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  echo "broker $node did not answer on port $mgmt within 120 s" >&2
  stop "$dir"
  return 1
}

stop() {
  local dir=$1
  [ -f "$dir/broker.env" ] || return 0
  # shellcheck disable=SC1091
  . "$dir/broker.env"
  # The pid is the session leader started by setsid: signal its whole group (sh, beam.smp, children).
  kill -TERM -- "-$BROKER_PID" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 -- "-$BROKER_PID" 2>/dev/null || break
    sleep 0.25
  done
  kill -KILL -- "-$BROKER_PID" 2>/dev/null || true
  rm -f "$dir/broker.env"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: $0 start DIR [AMQP_PORT MGMT_PORT] | stop DIR" >&2; exit 2 ;;
esac

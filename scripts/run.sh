#!/usr/bin/env bash
# `make run`: installs what is missing, builds warren and warren-cli (release), starts a local RabbitMQ node
# when WARREN_MANAGEMENT_URL is not set, writes a development token when WARREN_TOKENS_FILE is
# not set, prints a curl command and warren-cli commands to try, and runs warren in the
# foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
swift build -c release --product warren
swift build -c release --product warren-cli
bin="$(swift build -c release --show-bin-path)/warren"
cli="$(swift build -c release --show-bin-path)/warren-cli"

state=.run
mkdir -p "$state"
broker_dir=""
cleanup() { [ -z "$broker_dir" ] || scripts/broker.sh stop "$broker_dir"; }
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -z "${WARREN_MANAGEMENT_URL:-}" ]; then
  broker_dir="$state/broker"
  scripts/broker.sh stop "$broker_dir" 2>/dev/null || true
  # The largest message is node-wide and no management call sets it: 16 MiB (RabbitMQ 4's
  # default; 3.x takes 128 MiB) keeps one tenant's messages from filling the node's memory.
  export BROKER_MAX_MESSAGE_SIZE=${BROKER_MAX_MESSAGE_SIZE:-16777216}
  # The usual ports when they are free, so AMQP clients find the broker where they expect it.
  if port_free 5672 && port_free 15672; then
    # The stream protocol's usual port too, for stream clients' defaults.
    if port_free 5552; then export BROKER_STREAM_LISTEN_PORT=5552; fi
    scripts/broker.sh start "$broker_dir" 5672 15672
  else
    scripts/broker.sh start "$broker_dir"
  fi
  # shellcheck disable=SC1091
  . "$broker_dir/broker.env"
  export WARREN_MANAGEMENT_URL WARREN_AMQP_PORT="$BROKER_AMQP_PORT"
  export WARREN_MANAGEMENT_USER=guest WARREN_MANAGEMENT_PASSWORD=guest
fi

if [ -z "${WARREN_TOKENS_FILE:-}" ]; then
  token_file="$state/dev-token"
  [ -s "$token_file" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$token_file"
  token=$(cat "$token_file")
  printf 'dev %s\n' "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" > "$state/tokens"
  export WARREN_TOKENS_FILE="$state/tokens"
  listen="${WARREN_LISTEN:-127.0.0.1:8080}"
  cat <<MSG

Warren is starting on http://$listen for team "dev". Try:

  curl -s -X POST -H "Authorization: Bearer $token" -H "Content-Type: application/json" \\
       -d '{"name":"fraud-scoring"}' http://$listen/v1/environments

or the command-line client (docs/cli.md; the token is read from the file, never given on the
command line):

  export WARREN_URL=http://$listen WARREN_TOKEN_FILE=$PWD/$token_file
  $cli create fraud-scoring
  $cli list
  $cli --help

MSG
fi

"$bin" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
wait $pid || true
wait $pid 2>/dev/null || true

#!/usr/bin/env bash
# `make bench`: Warren's benchmarks (not part of `make test`). Builds warren and the Hummingbird
# reference server (bench/hummingbird-reference, its own package, never a dependency of the
# product) in release mode, starts a private RabbitMQ node on free loopback ports, runs
# bench/bench.py against 127.0.0.1 only, prints one table, and stops everything it started.
# The table, with the machine it ran on, is also written to .run/bench/result.md (the format
# of BENCHMARKS.md). Extra arguments for bench.py: BENCH_ARGS="--cycles 500 --runs 1" make bench
#
# Then the scale part (bench/scale.py), once per release in BENCH_SCALE_RELEASES (default
# "4.3 3.10"), each against a fresh private node of that release: latencies and create
# throughput with 10, 1,000 and 5,000 environments of 50 teams on the broker (3.10 stops at
# 1,000 by default: its own PUT vhost takes seconds with thousands of vhosts, so filling it
# to 5,000 takes the better part of an hour). BENCH_SCALE_LEVELS overrides the levels for
# every release, BENCH_SCALE_ARGS passes more arguments. BENCH_PARTS="http scale" (default)
# picks the parts; tables go to .run/bench/result.md and .run/bench/scale-RELEASE.md.
#
# BENCH_PARTS="depth" (not a default part) runs bench/queue_depth.py against a fresh RabbitMQ 4.3
# node: what GET /v1/environments/{id}/queues costs when 1,000 autoscalers poll it (latency,
# the broker's CPU); BENCH_DEPTH_ARGS passes more arguments; the table goes to
# .run/bench/queue-depth.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/rabbitmq-release.sh
. scripts/rabbitmq-release.sh
parts=" ${BENCH_PARTS:-http scale} "

scripts/deps.sh >&2
if ! command -v wrk >/dev/null; then
  echo "installing: wrk" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

started=$(date +%s)
echo "building warren (release)" >&2
swift build -c release --product warren >&2
warren_bin="$(swift build -c release --show-bin-path)/warren"

broker_dir=""
cleanup() {
  [ -z "$broker_dir" ] || { scripts/broker.sh stop "$broker_dir" || true; rm -rf "$broker_dir"; }
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1,000 keep-alive connections need more descriptors than a default soft limit of 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

if [[ $parts == *" http "* ]]; then
  echo "building the Hummingbird reference (release; the first build takes several minutes)" >&2
  swift build -c release --package-path bench/hummingbird-reference >&2
  hb_bin="$(swift build -c release --package-path bench/hummingbird-reference --show-bin-path)/HummingbirdReference"
  broker_dir=$(mktemp -d /tmp/warren-bench-broker.XXXXXX)
  scripts/broker.sh start "$broker_dir" >&2
  # shellcheck disable=SC2086
  python3 bench/bench.py --warren-bin "$warren_bin" --hummingbird-bin "$hb_bin" \
    --broker-env "$broker_dir/broker.env" --out .run/bench/result.md ${BENCH_ARGS:-}
  cleanup
  broker_dir=""
fi

if [[ $parts == *" scale "* ]]; then
  for release in ${BENCH_SCALE_RELEASES:-4.3 3.10}; do
    release_select "$release"
    if ! release_ready; then release_ensure >&2; fi
    case "$release" in 3.*) levels=${BENCH_SCALE_LEVELS:-10,1000} ;; *) levels=${BENCH_SCALE_LEVELS:-10,1000,5000} ;; esac
    broker_dir=$(mktemp -d "/tmp/warren-bench-broker-$release.XXXXXX")
    WARREN_BROKER_RELEASE=$release scripts/broker.sh start "$broker_dir" >&2
    # shellcheck disable=SC2086
    python3 bench/scale.py --warren-bin "$warren_bin" --broker-env "$broker_dir/broker.env" \
      --release "$release" --levels "$levels" --out ".run/bench/scale-$release.md" ${BENCH_SCALE_ARGS:-}
    cleanup
    broker_dir=""
  done
fi
if [[ $parts == *" depth "* ]]; then
  release_select 4.3
  if ! release_ready; then release_ensure >&2; fi
  broker_dir=$(mktemp -d /tmp/warren-bench-broker-depth.XXXXXX)
  WARREN_BROKER_RELEASE=4.3 scripts/broker.sh start "$broker_dir" >&2
  # shellcheck disable=SC2086
  python3 bench/queue_depth.py --warren-bin "$warren_bin" --broker-env "$broker_dir/broker.env" \
    --out .run/bench/queue-depth.md ${BENCH_DEPTH_ARGS:-}
  cleanup
  broker_dir=""
fi
echo "make bench: done in $(( $(date +%s) - started )) s" >&2

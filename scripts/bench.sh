#!/usr/bin/env bash
# `make bench`: Warren's benchmarks (not part of `make test`). Builds warren and the Hummingbird
# reference server (bench/hummingbird-reference, its own package, never a dependency of the
# product) in release mode, starts a private RabbitMQ node on free loopback ports, runs
# bench/bench.py against 127.0.0.1 only, prints one table, and stops everything it started.
# The table, with the machine it ran on, is also written to .run/bench/result.md (the format
# of BENCHMARKS.md). Extra arguments for bench.py: BENCH_ARGS="--cycles 500 --runs 1" make bench
set -euo pipefail
cd "$(dirname "$0")/.."

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
echo "building the Hummingbird reference (release; the first build takes several minutes)" >&2
swift build -c release --package-path bench/hummingbird-reference >&2
hb_bin="$(swift build -c release --package-path bench/hummingbird-reference --show-bin-path)/HummingbirdReference"

broker_dir=$(mktemp -d /tmp/warren-bench-broker.XXXXXX)
cleanup() {
  scripts/broker.sh stop "$broker_dir" || true
  rm -rf "$broker_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scripts/broker.sh start "$broker_dir" >&2

# 1,000 keep-alive connections need more descriptors than a default soft limit of 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

# shellcheck disable=SC2086
python3 bench/bench.py --warren-bin "$warren_bin" --hummingbird-bin "$hb_bin" \
  --broker-env "$broker_dir/broker.env" --out .run/bench/result.md ${BENCH_ARGS:-}
echo "make bench: done in $(( $(date +%s) - started )) s" >&2

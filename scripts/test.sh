#!/usr/bin/env bash
# `make test`: installs what is missing, builds, starts a private RabbitMQ node on free
# loopback ports, runs the Swift tests (unit + management-client integration) and the Python
# integration and end-to-end suite (real warren, real broker, pika), and stops the node.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh --test

started=$(date +%s)
swift build --build-tests

broker_dir=$(mktemp -d /tmp/warren-test-broker.XXXXXX)
cleanup() { scripts/broker.sh stop "$broker_dir" || true; }
trap cleanup EXIT
scripts/broker.sh start "$broker_dir"
# shellcheck disable=SC1091
. "$broker_dir/broker.env"

export WARREN_TEST_MANAGEMENT_URL="$WARREN_MANAGEMENT_URL"
swift test --skip-build

export WARREN_BIN
WARREN_BIN="$(swift build --show-bin-path)/warren"
export WARREN_TEST_BROKER_ENV="$broker_dir/broker.env"
python3 -m pytest Tests/integration -q -p no:cacheprovider

echo "make test: all suites passed in $(( $(date +%s) - started )) s"

#!/usr/bin/env bash
# `make test`: installs what is missing, builds, starts a private RabbitMQ node on free
# loopback ports, runs the Swift tests (unit + management-client integration) and the Python
# integration and end-to-end suite (real warren, real broker, pika), then the hardening runs:
# the Swift tests under AddressSanitizer (and the hostile-client suites against an ASan-built
# warren), the concurrency-heavy Swift tests under ThreadSanitizer, and a brief libFuzzer run
# of the HTTP parser and JSON decoding harnesses; and stops the node.
#
# WARREN_TEST_SANITIZERS=0 skips the sanitizer runs, WARREN_TEST_FUZZ=0 the fuzzing (for a
# quicker local loop; `make test` and CI run everything).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh --test

started=$(date +%s)
timings=()
phase_started=$started
phase() {  # phase NAME: records how long the phase that just ended took
  local now
  now=$(date +%s)
  timings+=("$1 $((now - phase_started)) s")
  phase_started=$now
}

swift build --build-tests
phase "build"

broker_dir=$(mktemp -d /tmp/warren-test-broker.XXXXXX)
cleanup() { scripts/broker.sh stop "$broker_dir" || true; }
trap cleanup EXIT
scripts/broker.sh start "$broker_dir"
# shellcheck disable=SC1091
. "$broker_dir/broker.env"
phase "broker start"

export WARREN_TEST_MANAGEMENT_URL="$WARREN_MANAGEMENT_URL"
swift test --skip-build
phase "swift test"

export WARREN_BIN
WARREN_BIN="$(swift build --show-bin-path)/warren"
export WARREN_TEST_BROKER_ENV="$broker_dir/broker.env"
python3 -m pytest Tests/integration -q -p no:cacheprovider
phase "pytest"

if [ "${WARREN_TEST_SANITIZERS:-1}" != 0 ]; then
  # XCTest's runner keeps objects alive until exit; LeakSanitizer would call that a leak.
  lsan="suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0"
  # The sanitizer builds rebuild everything (swift-crypto included) in scratch dirs of their own.
  swift build --build-tests --sanitize=address --scratch-path .build-asan
  phase "ASan build"
  LSAN_OPTIONS=$lsan swift test --sanitize=address --scratch-path .build-asan --skip-build
  # The hostile-client and input suites again, against a warren built with ASan.
  WARREN_BIN="$PWD/.build-asan/debug/warren" WARREN_TEST_SANITIZER=address LSAN_OPTIONS=$lsan \
    python3 -m pytest -q -p no:cacheprovider Tests/integration/test_hostile_http.py \
      Tests/integration/test_http.py Tests/integration/test_validation.py \
      Tests/integration/test_secrets.py Tests/integration/test_isolation.py
  phase "ASan tests"

  swift build --build-tests --sanitize=thread --scratch-path .build-tsan
  phase "TSan build"
  # Only the suites without a contended Synchronization.Mutex: on Linux its futex-based lock
  # is invisible to TSan, which then reports every access under it as a race (a false positive;
  # a two-thread Mutex counter reproduces it). HTTPServerTests drive the epoll loop thread, the
  # concurrency pool and real sockets together, which is where races would live.
  swift test --sanitize=thread --scratch-path .build-tsan --skip-build --filter 'HTTPServerTests|WarrenAPITests'
  phase "TSan tests"
fi

if [ "${WARREN_TEST_FUZZ:-1}" != 0 ]; then
  scripts/fuzz.sh --brief
  phase "fuzz (brief)"
fi

echo "make test: ${timings[*]/%/;}" | sed 's/; *$//'
echo "make test: all suites passed in $(( $(date +%s) - started )) s"

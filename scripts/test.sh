#!/usr/bin/env bash
# `make test`: installs what is missing, builds, starts a private RabbitMQ node on free
# loopback ports, runs the Swift tests (unit + management-client integration), then the Python
# integration and end-to-end suite (real warren, real broker, pika) once per RabbitMQ release of
# the matrix, side by side, each against a fresh node of its own, then the hardening runs:
# the Swift tests under AddressSanitizer (and the hostile-client suites against an ASan-built
# warren), the Swift tests again under ThreadSanitizer, and a brief libFuzzer run
# of the HTTP parser and JSON decoding harnesses; and stops the nodes. Beside the Python suites,
# scripts/openapi-clients.sh checks that the committed Swift client is what openapi.yaml
# generates and that neither client generator warns about the document.
#
# The matrix: 3.10 (Debian bookworm's package, on the host), 4.0 (trixie's) and 4.3 (forky's),
# the newer two in chroots that scripts/rabbitmq-release.sh builds once (about a minute each)
# and keeps under /var/cache/warren-brokers. The three-node cluster test (test_cluster.py) runs
# on the oldest and the newest release only: it adds about a minute per release, and 4.0 sits
# between them. The Swift and sanitizer phases use 3.10.
#
# WARREN_TEST_BROKERS="3.10" (releases separated by spaces or commas) narrows the matrix,
# WARREN_TEST_SANITIZERS=0 skips the sanitizer runs, WARREN_TEST_FUZZ=0 the fuzzing (for a
# quicker local loop; `make test` and CI run everything).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/rabbitmq-release.sh
. scripts/rabbitmq-release.sh

brokers=$(echo "${WARREN_TEST_BROKERS:-$RELEASES}" | tr ',' ' ')
for release in $brokers; do release_select "$release"; done  # refuse an unknown one up front
[ -n "${brokers// /}" ] || { echo "WARREN_TEST_BROKERS names no release" >&2; exit 2; }
cluster_releases="3.10 4.3"
# The Swift and sanitizer phases' node is 3.10 whatever the caller's environment says; the
# matrix runs below name their release themselves.
export WARREN_BROKER_RELEASE=3.10

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

# The committed Swift client must be what openapi.yaml generates, and neither generator may warn
# about the document (docs/openapi-rules.md). The generator's first build takes a minute or two
# of CPU, so it runs in the background, beside the Swift tests and the Python suites, and is
# waited for after them.
openapi_log=$(mktemp /tmp/warren-openapi-clients.XXXXXX.log)
scripts/openapi-clients.sh check >"$openapi_log" 2>&1 &
openapi_pid=$!

for release in $brokers; do
  release_select "$release"
  if [ -n "$RELEASE_ROOT" ] && ! release_ready; then
    release_ensure
    phase "chroot $release"
  fi
done

broker_dir=$(mktemp -d /tmp/warren-test-broker.XXXXXX)
declare -A matrix_dirs=()
cleanup() {
  local dir
  for dir in "${matrix_dirs[@]}"; do scripts/broker.sh stop "$dir" || true; done
  scripts/broker.sh stop "$broker_dir" || true
}
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
# The releases' suites run side by side, each against a fresh node of its own: most of a
# suite's time is spent waiting on its broker, so three at once take little longer than one.
# The nodes start one after the other (each picks free ports as it starts). Each suite's output
# goes to a file, printed whole when all are done, release by release.
for release in $brokers; do
  matrix_dirs[$release]=$(mktemp -d "/tmp/warren-test-broker-$release.XXXXXX")
  # The release also reaches the brokers the tests start themselves (test_tls.py, test_cluster.py).
  WARREN_BROKER_RELEASE=$release scripts/broker.sh start "${matrix_dirs[$release]}"
done
phase "broker start ${brokers}"
declare -A pids=()
for release in $brokers; do
  skip=()
  case " $cluster_releases " in *" $release "*) ;; *) skip=(--ignore Tests/integration/test_cluster.py) ;; esac
  # --durations: the slowest tests of each release, to see where make test's time goes.
  WARREN_BROKER_RELEASE=$release WARREN_TEST_BROKER_ENV="${matrix_dirs[$release]}/broker.env" \
    python3 -m pytest Tests/integration -q -p no:cacheprovider --durations=15 "${skip[@]}" \
    > "${matrix_dirs[$release]}/pytest.log" 2>&1 &
  pids[$release]=$!
done
failed=()
for release in $brokers; do
  wait "${pids[$release]}" || failed+=("$release")
done
for release in $brokers; do
  echo "pytest against RabbitMQ $release" >&2
  cat "${matrix_dirs[$release]}/pytest.log"
done
phase "pytest ${brokers} side by side"
for release in $brokers; do
  scripts/broker.sh stop "${matrix_dirs[$release]}"
  # A failed run keeps the node's logs for a look.
  case " ${failed[*]} " in
    *" $release "*) echo "RabbitMQ $release's log: ${matrix_dirs[$release]}/log" >&2 ;;
    *) rm -rf "${matrix_dirs[$release]}" ;;
  esac
  unset "matrix_dirs[$release]"
done
phase "broker stop ${brokers}"
openapi_ok=1
if wait "$openapi_pid"; then cat "$openapi_log"; else cat "$openapi_log" >&2; openapi_ok=0; fi
rm -f "$openapi_log"
phase "generated clients' check (beside pytest)"
if [ ${#failed[@]} -gt 0 ] || [ "$openapi_ok" = 0 ]; then
  echo "make test: ${timings[*]/%/;}" | sed 's/; *$//'
  [ ${#failed[@]} -eq 0 ] || echo "make test: the Python suite failed against RabbitMQ ${failed[*]}" >&2
  [ "$openapi_ok" = 1 ] || echo "make test: scripts/openapi-clients.sh check failed (above)" >&2
  exit 1
fi

# The sanitizer runs below use the 3.10 node the Swift tests used.
export WARREN_TEST_BROKER_ENV="$broker_dir/broker.env"

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
  # Every suite, the broker-backed ones included (the node above). The package's locks are
  # pthread mutexes (Sources/Locking) because TSan cannot see a contended
  # Synchronization.Mutex and reports the accesses under it as races.
  swift test --sanitize=thread --scratch-path .build-tsan --skip-build
  phase "TSan tests"
fi

if [ "${WARREN_TEST_FUZZ:-1}" != 0 ]; then
  scripts/fuzz.sh --brief
  phase "fuzz (brief)"
fi

echo "make test: ${timings[*]/%/;}" | sed 's/; *$//'
echo "make test: all suites passed in $(( $(date +%s) - started )) s"

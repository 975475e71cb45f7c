#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer harnesses in fuzz/ and runs each for FUZZ_SECONDS (default 60).
#
#   FUZZ_SECONDS=600 make fuzz     a longer run of every fuzzer
#   scripts/fuzz.sh --brief        ~20 s each (part of `make test`)
#   scripts/fuzz.sh --build        build only
#   FUZZERS=json scripts/fuzz.sh   only some (parser, json)
#
# fuzz-parser: the HTTP request parser (Sources/HTTPServer/HTTPRequestParser*.swift), with
#   invariants: consumed <= input, body == Content-Length, same answer fed in pieces as at once,
#   a parsed head written back parses the same.
# fuzz-json: the strict JSON parser and POST /v1/environments decoding (StrictJSON.swift,
#   CreateEnvironmentRequest.swift and what it uses), checked against its own rewrite and
#   Foundation's decoder.
# Each harness is compiled with swiftc -sanitize=fuzzer,address -parse-as-library (a SwiftPM
# executable target would bring its own main and silently not fuzz), together with just the
# package sources it needs: the parser's into the harness's module, the JSON harness against
# small stand-in modules named like the package's (RabbitManagement, EnvironmentModel, HTTPServer)
# built from the few files the decoder imports. Seeds: fuzz/corpus-*/ (committed, read-only);
# the growing corpora and any crash (with its reproducer) live in .build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
build_only=0
case "${1:-}" in
  --brief) seconds=${FUZZ_SECONDS_BRIEF:-20} ;;
  --build) build_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--brief|--build]" >&2; exit 2 ;;
esac
fuzzers=${FUZZERS:-"parser json"}

out=.build-fuzz
modules=$out/modules
mkdir -p "$out" "$modules" "$out/artifacts"
# -package-name: the model and the API share `package` declarations, as in the package build.
flags=(-O -sanitize=fuzzer,address -parse-as-library -package-name Warren)

# The package sources each harness compiles with. When a file moves or gains a dependency,
# this is the one place to change.
PARSER_SOURCES=(
  Sources/HTTPServer/HTTPRequestParser.swift
  Sources/HTTPServer/HTTPRequestParser+Framing.swift
  Sources/HTTPServer/HTTPHeaders.swift
  Sources/HTTPServer/HTTPMessages.swift
  Sources/HTTPServer/HTTPServerConfiguration.swift
)
STUB_WIREFORMAT=(Sources/WireFormat/JSONValue.swift Sources/WireFormat/StrictJSON.swift Sources/WireFormat/PercentEncoding.swift
  Sources/WireFormat/StringCodingKey.swift)
STUB_RABBITMANAGEMENT=(Sources/RabbitManagement/Models.swift Sources/RabbitManagement/ManagementError.swift)
STUB_HTTPSERVER=(Sources/HTTPServer/HTTPMessages.swift Sources/HTTPServer/HTTPHeaders.swift)
STUB_MODEL=(Sources/EnvironmentModel/EnvironmentSpec.swift Sources/EnvironmentModel/NameRules.swift
  Sources/EnvironmentModel/Topology.swift Sources/EnvironmentModel/EnvironmentNaming.swift
  Sources/EnvironmentModel/Topology+Policies.swift Sources/EnvironmentModel/Ceilings.swift
  Sources/EnvironmentModel/QueueSettings.swift Sources/EnvironmentModel/BrokerRelease.swift
  Sources/EnvironmentModel/TopologyAddition.swift Sources/EnvironmentModel/ProvisioningError.swift
  Sources/EnvironmentModel/Role.swift Sources/EnvironmentModel/Agent.swift Sources/EnvironmentModel/TopicPattern.swift
  Sources/EnvironmentModel/StreamSettings.swift Sources/EnvironmentModel/SuperStreams.swift)
STUB_LOCKING=(Sources/Locking/PThreadMutex.swift)
JSON_SOURCES=(
  Sources/WarrenAPI/CreateEnvironmentRequest.swift
  Sources/WarrenAPI/JSONFields.swift
  Sources/WarrenAPI/TopologyFields.swift
  Sources/WarrenAPI/AgentFields.swift
  Sources/WarrenAPI/Blueprints.swift
  Sources/WarrenAPI/Problem.swift
  Sources/WarrenAPI/DuplicateAuthorization.swift
)

# swiftc's linker warns about every ASan helper symbol; keep the real diagnostics only.
compile() {
  local log=$out/compile.log
  if ! swiftc "$@" > "$log" 2>&1; then
    grep -v "Cannot export local symbol" "$log" | grep -E "error|note:" -A3 | head -40 >&2 || cat "$log" >&2
    return 1
  fi
}

stub_module() {
  local name=$1; shift
  compile "${flags[@]}" -wmo -I "$modules" -module-name "$name" -emit-module \
    -emit-module-path "$modules/$name.swiftmodule" -emit-object -o "$modules/$name.o" "$@"
}

build() {
  local started=$SECONDS
  for f in $fuzzers; do
    case "$f" in
      parser)
        compile "${flags[@]}" -module-name FuzzParser fuzz/ParserHarness.swift "${PARSER_SOURCES[@]}" \
          -o "$out/fuzz-parser" || { echo "fuzz: building fuzz-parser failed" >&2; return 1; } ;;
      json)
        { stub_module WireFormat "${STUB_WIREFORMAT[@]}" &&
          stub_module RabbitManagement "${STUB_RABBITMANAGEMENT[@]}" &&
          stub_module HTTPServer "${STUB_HTTPSERVER[@]}" &&
          stub_module Locking "${STUB_LOCKING[@]}" &&
          stub_module EnvironmentModel "${STUB_MODEL[@]}" &&
          compile "${flags[@]}" -module-name FuzzJSON -I "$modules" fuzz/JSONHarness.swift "${JSON_SOURCES[@]}" \
            "$modules/WireFormat.o" "$modules/RabbitManagement.o" "$modules/HTTPServer.o" "$modules/Locking.o" "$modules/EnvironmentModel.o" -o "$out/fuzz-json"
        } || { echo "fuzz: building fuzz-json failed (a Source file it compiles gained a dependency? see the lists in $0)" >&2; return 1; } ;;
      *) echo "fuzz: unknown fuzzer $f" >&2; return 2 ;;
    esac
  done
  echo "fuzz: built ${fuzzers// /, } in $((SECONDS - started)) s" >&2
}

run_one() {
  local name=$1 dict=()
  local work=$out/corpus-$name seeds=fuzz/corpus-$name log=$out/fuzz-$name.log
  mkdir -p "$work"
  [ "$name" = parser ] && dict=(-dict=fuzz/http.dict)
  # A crash exits non-zero and leaves $out/artifacts/$name-crash-*; -timeout catches hangs.
  # The Swift runtime's own backtracer would pause on a crash; libFuzzer prints the stack.
  if ! SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$out/fuzz-$name" "$work" "$seeds" "${dict[@]}" \
      -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -artifact_prefix="$out/artifacts/$name-" > "$log" 2>&1; then
    echo "fuzz-$name: FAILED. The invariant or crash, from $log:" >&2
    grep -E "Fatal error|invariant|ERROR: (libFuzzer|AddressSanitizer)|^input|SUMMARY" "$log" | head -20 >&2 || tail -40 "$log" >&2
    local artifact
    artifact=$(ls -t "$out"/artifacts/"$name"-* 2>/dev/null | head -1 || true)
    [ -n "$artifact" ] && echo "reproduce: SWIFT_BACKTRACE=enable=no $out/fuzz-$name $artifact" >&2
    return 1
  fi
  local runs rate corpus
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  corpus=$(find "$work" -type f | wc -l)
  echo "fuzz-$name: ${runs:-?} executions in ${seconds} s (${rate:-?}/s), corpus $corpus inputs, no invariant broken"
}

build
[ "$build_only" = 1 ] && exit 0
status=0
for f in $fuzzers; do
  run_one "$f" || status=1
done
exit $status

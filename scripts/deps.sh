#!/usr/bin/env bash
# Installs what Warren needs on a fresh Debian machine, and nothing that is already there:
# libcurl's headers (build), rabbitmq-server (the local broker), curl, openssl (the TLS test's
# certificates), faketime (a test runs a warren on a clock 10 minutes ahead); with --test
# also the Python packages the integration tests use (pika, pytest, schemathesis, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libcurl4-openssl-dev rabbitmq-server curl ca-certificates openssl faketime; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # The package's own service must not start: Warren runs private nodes (scripts/broker.sh).
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift (6.x) is not on PATH" >&2; exit 1; }

if [ "${1:-}" = "--test" ]; then
  python3 -m pip install -q --disable-pip-version-check -r Tests/integration/requirements.txt
fi

# syntax=docker/dockerfile:1
#
# Warren: build with the official Swift 6 image, run on debian:bookworm-slim as a non-root user.
#
#   docker build -t warren .
#   docker run --rm -p 8080:8080 \
#     -e WARREN_MANAGEMENT_URL=http://rabbitmq:15672 \
#     -e WARREN_MANAGEMENT_USER=warren -e WARREN_MANAGEMENT_PASSWORD=... \
#     -e WARREN_AMQP_HOST=rabbitmq -e WARREN_AMQP_PORT=5672 \
#     -e WARREN_TOKENS_FILE=/run/secrets/warren-tokens \
#     -v "$PWD/tokens:/run/secrets/warren-tokens:ro" \
#     warren
#
# The tokens file holds one `TEAM SHA256HEX` line per token (`#` comments allowed). The
# management user needs the `administrator` tag. Over TLS, point WARREN_MANAGEMENT_URL at https;
# the runtime image carries the system CA bundle.

# The toolchain the team builds with locally is Swift 6.3.1: build the image with the same.
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build ------------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build

# libcurl's headers for the CCurl system library target (found through pkg-config).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcurl4-openssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, so this layer stays cached while only the sources change.
# (Package.resolved is optional: it is not tracked in git.)
COPY Package.swift Package.resolved* ./
RUN swift package resolve

# SwiftPM checks that every declared target's directory exists, test targets included.
COPY Sources ./Sources
COPY Tests ./Tests

# --static-swift-stdlib links the Swift runtime and Foundation into the binaries; libcurl stays a
# shared system library (libcurl4 in the runtime stage). warren-cli, the command-line client,
# rides along: `docker run --entrypoint warren-cli warren --help`.
RUN swift build -c release --static-swift-stdlib --product warren \
 && swift build -c release --static-swift-stdlib --product warren-cli \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/warren" /out/warren \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/warren-cli" /out/warren-cli

# ---- runtime ----------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

# libcurl4: the management API client. ca-certificates: https management URLs.
# curl: the HEALTHCHECK below.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcurl4 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 warren \
 && useradd --system --uid 10001 --gid warren --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin warren

COPY --from=build /out/warren /out/warren-cli /usr/local/bin/

LABEL org.opencontainers.image.title="warren" \
      org.opencontainers.image.description="Isolated RabbitMQ environments in one HTTP call" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV WARREN_LISTEN=0.0.0.0:8080
# Debian's libcurl4 loads GnuTLS (through librtmp), whose library constructor initialises it at
# start-up: about 0.8 MiB of resident pages for a library Warren never calls (its TLS is OpenSSL's).
# GnuTLS then initialises only if something asks it to (BENCHMARKS.md, "Idle memory").
ENV GNUTLS_NO_IMPLICIT_INIT=1
EXPOSE 8080

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# The port follows WARREN_LISTEN (shell form: ${WARREN_LISTEN##*:} is the text after the last ':').
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${WARREN_LISTEN##*:}/healthz" || exit 1

# Warren drains and exits 0 on SIGTERM (docker stop).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/warren"]

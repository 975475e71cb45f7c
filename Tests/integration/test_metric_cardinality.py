"""Metric label cardinality against a real warren: an unauthenticated client that sends
requests with made-up methods must not be able to create metric series.

The HTTP parser accepts any RFC 9110 token as a method, and every request, routed or not, is
timed in `warren_http_request_duration_seconds`. If a label took the raw method, each new junk
method would add a histogram that lives until the process exits: memory and /metrics grow
without bound for anyone who can open a socket. Labels must come from closed sets (standard
methods or `other`, route patterns or `unmatched`, status codes).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time

import requests

from warren_support import _read_response, raw_request

# Set by scripts/test.sh for a sanitizer build: RSS then measures ASan's shadow memory and
# quarantine, not warren, so the memory bound is only checked on a plain build.
SANITIZED = bool(os.environ.get("WARREN_TEST_SANITIZER"))

JUNK_METHODS = 10_000
CONNECTIONS = 8
BATCH = 50              # pipelined requests in flight per connection
MAX_SERIES = 50         # this test's own requests make 3 series; one per junk method would be 10,000
# Measured on a debug build: about 8 MiB when every junk method keeps a histogram, about
# 0.1 MiB when none does. 4 MiB sits well clear of both.
MAX_RSS_GROWTH_MIB = 4
HISTOGRAM = "warren_http_request_duration_seconds"
STANDARD_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}


def junk_method(i: int) -> str:
    # Letters and digits only: a valid token (RFC 9110 §9.1), so the parser accepts it.
    return f"XJUNK{i:05d}"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def flood(port: int, methods: list[str]) -> list[int]:
    """Sends one request per method over CONNECTIONS keep-alive connections, pipelined BATCH at
    a time, and returns every status received (in no particular order)."""
    shares = [methods[i::CONNECTIONS] for i in range(CONNECTIONS)]
    statuses: list[list[int]] = [[] for _ in shares]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                buf = bytearray()
                share = shares[index]
                for start in range(0, len(share), BATCH):
                    batch = share[start:start + BATCH]
                    sock.sendall(b"".join(f"{m} /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode() for m in batch))
                    for _ in batch:
                        resp = _read_response(sock, buf, time.monotonic() + 30)
                        assert resp is not None, "warren closed a keep-alive connection during the flood"
                        statuses[index].append(resp.status)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "the flood did not finish within 120 s"
    if errors:
        raise errors[0]
    return [s for per in statuses for s in per]


def series(text: str, name: str) -> list[dict[str, str]]:
    """The label sets of one histogram (one per `_count` sample)."""
    found = []
    for line in text.splitlines():
        if line.startswith(name + "_count{"):
            found.append(dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0])))
    return found


def test_junk_methods_do_not_create_metric_series(warren_factory, report):
    proc = warren_factory("cardinality")
    pid, port = proc.proc.pid, proc.port

    # The parser takes a junk method and the router answers it (405: /healthz is GET only).
    assert raw_request(port, f"{junk_method(0)} /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode()).status == 405

    # Warm-up with one repeated method, so that the baseline already includes the allocator's
    # per-thread arenas, the connections' buffers and the first /metrics rendering.
    flood(port, ["XWARMUP"] * 2_000)
    assert requests.get(f"{proc.url}/metrics", timeout=30).status_code == 200
    before = rss_kib(pid)

    started = time.monotonic()
    statuses = flood(port, [junk_method(i) for i in range(1, JUNK_METHODS + 1)])
    elapsed = time.monotonic() - started
    flooded = rss_kib(pid)
    assert len(statuses) == JUNK_METHODS and set(statuses) == {405}, sorted(set(statuses))

    resp = requests.get(f"{proc.url}/metrics", timeout=60)
    assert resp.status_code == 200
    text = resp.text
    # After the scrape too: every retained series also costs memory each time it is rendered.
    after = max(flooded, rss_kib(pid))
    labels = series(text, HISTOGRAM)
    grown_mib = (after - before) / 1024
    report("cardinality", f"{JUNK_METHODS:,} junk methods in {elapsed:.1f} s: {len(labels)} "
                          f"{HISTOGRAM} series, /metrics {len(text) / 1024:.0f} KiB, "
                          f"RSS {before / 1024:.1f} -> {flooded / 1024:.1f} (flood) -> "
                          f"{after / 1024:.1f} MiB (peak after scrape)")

    # Every check is collected, so one run shows all that is wrong.
    failures = []
    leaked = sorted({l.get("method", "") for l in labels} - STANDARD_METHODS - {"other"})
    if leaked:
        failures.append(f"{len(leaked)} methods outside the closed set became series, e.g. {leaked[:5]}")
    if "XJUNK" in text or "XWARMUP" in text:
        failures.append("a junk method appears in /metrics")
    if len(labels) >= MAX_SERIES:
        failures.append(f"{len(labels)} {HISTOGRAM} series after the flood (bound {MAX_SERIES})")
    # The junk requests are still counted, under the closed-set labels.
    other = [l for l in labels if l.get("method") == "other"]
    if not other or any(l.get("route") != "unmatched" for l in other):
        failures.append(f"the junk requests are not counted as method=other, route=unmatched: {other}")
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(HISTOGRAM + "_count{") and 'method="other"' in line)
    if counted < JUNK_METHODS + 2_000 + 1:
        failures.append(f"only {counted:.0f} requests counted as method=other")
    if not SANITIZED and grown_mib >= MAX_RSS_GROWTH_MIB:
        failures.append(f"warren's RSS grew {grown_mib:.1f} MiB ({before} -> {after} KiB) for "
                        f"{JUNK_METHODS:,} junk methods (bound {MAX_RSS_GROWTH_MIB} MiB)")
    assert not failures, "\n".join(failures)

    assert requests.get(f"{proc.url}/healthz", timeout=5).status_code == 200
    assert proc.running

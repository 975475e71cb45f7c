#!/usr/bin/env python3
"""Revocation lateness and janitor sweep cost as the broker fills up with users (a benchmark that
prints numbers, not a test).

On a broker with about 85,000 users a janitor that listed every user (or every permission) before
doing anything timed out on every sweep, and scheduled revocations came late. This measures, for
each level of users on the broker (default 1,000, 10,000 and 100,000; --max-users caps them):

  1. fills the broker up to the level directly through the management API: users of no
     environment, each with permissions on one vhost of the benchmark's own (so both the user and
     the permission listings grow), --workers calls in flight;
  2. starts a fresh warren (its janitor sweeps every --sweep seconds, the management timeout is
     warren's default unless --timeout-ms says otherwise) and, --samples times, creates an
     environment, rotates its credentials with `revoke_others_after_seconds` and polls the
     broker until the old user is gone: the lateness is the time from due to gone;
  3. reads warren's /metrics for the janitor's own management steps (count, mean seconds; steps the
     API shares with it, such as reading one vhost, are left out) and its
     log for failed sweep phases: a sweep's cost is the sum of its steps.

Usage (a broker from `scripts/broker.sh start DIR`):
  python3 bench/revocation.py --warren-bin .build/debug/warren --broker-env DIR/broker.env \
      [--max-users 10000]

127.0.0.1 only; everything it makes (users, its vhost, environments) is removed at the end.
Standard library only (helpers shared with bench.py).
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import KeptAlive, Server, free_port, log, read_broker_env, wait_http  # noqa: E402

TEAM = "revocation-bench"
CROWD_VHOST = "revocation-bench-crowd"
# The janitor's management steps (ProvisioningMetrics' `step` label).
JANITOR_STEPS = ("list vhosts", "list team indexes", "list users without permissions",
                 "delete users", "revoke user", "clear revocation", "list permissions", "list users")


class Management:
    """The broker's management API, one keep-alive connection per thread."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.auth = "Basic " + base64.b64encode(b"guest:guest").decode()
        self.local = threading.local()

    def call(self, method, path, body=None, ok=(200, 201, 204)):
        http = getattr(self.local, "http", None)
        if http is None:
            http = self.local.http = KeptAlive(self.host, self.port, timeout=300)
        status, data = http.request(method, "/api/" + path, body, {"Authorization": self.auth})
        if status not in ok:
            raise RuntimeError(f"{method} /api/{path}: {status} {data[:200]!r}")
        return status, data


def seg(text):
    return urllib.parse.quote(text, safe="")


def bounded(calls, workers):
    """Runs the callables, `workers` at a time (the broker is shared; never all at once)."""
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda f: f(), calls):
            pass


def fill(mgmt, prefix, start, stop, workers):
    """Users start..stop-1, each with permissions on the benchmark's vhost."""
    names = [f"{prefix}{i:06d}" for i in range(start, stop)]
    bounded([lambda n=n: mgmt.call("PUT", f"users/{seg(n)}", {"password": secrets.token_hex(8), "tags": ""})
             for n in names], workers)
    bounded([lambda n=n: mgmt.call("PUT", f"permissions/{seg(CROWD_VHOST)}/{seg(n)}",
                                   {"configure": "^$", "write": "^$", "read": "^$"}) for n in names], workers)


def empty(mgmt, prefix, count, workers):
    names = [f"{prefix}{i:06d}" for i in range(count)]
    batches = [names[i:i + 500] for i in range(0, len(names), 500)]
    # Every name exists, so RabbitMQ 3.10's refusal of absent names does not come up.
    bounded([lambda b=b: mgmt.call("POST", "users/bulk-delete", {"users": b}) for b in batches], min(workers, 2))
    mgmt.call("DELETE", f"vhosts/{seg(CROWD_VHOST)}", ok=(204, 404))


class Warren:
    def __init__(self, cfg, broker, workdir, label):
        self.port = free_port()
        self.token = secrets.token_urlsafe(32)
        tokens = os.path.join(workdir, "tokens")
        with open(tokens, "w") as f:
            f.write(f"{TEAM} {hashlib.sha256(self.token.encode()).hexdigest()}\n")
        env = dict(os.environ, WARREN_LISTEN=f"127.0.0.1:{self.port}", WARREN_TOKENS_FILE=tokens,
                   WARREN_MANAGEMENT_URL=broker["WARREN_MANAGEMENT_URL"], WARREN_MANAGEMENT_USER="guest",
                   WARREN_MANAGEMENT_PASSWORD="guest", WARREN_AMQP_PORT=broker["BROKER_AMQP_PORT"],
                   WARREN_SWEEP_INTERVAL_SECONDS=str(cfg.sweep), WARREN_LOG_LEVEL="notice")
        if cfg.timeout_ms:
            env["WARREN_MANAGEMENT_TIMEOUT_MS"] = str(cfg.timeout_ms)
        self.log_path = os.path.join(workdir, f"warren-{label}.log")
        self.server = Server("warren", [cfg.warren_bin], env, self.port, self.log_path)
        wait_http(self.port, "/healthz", 60, self.server.proc)

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data

    def steps(self):
        """step -> (count, total seconds) of management calls so far."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        out = {}
        for line in text.splitlines():
            m = re.match(r'warren_broker_call_duration_seconds_(sum|count)\{step="([^"]+)"\} ([0-9.e+-]+)', line)
            if m:
                count, total = out.get(m.group(2), (0, 0.0))
                out[m.group(2)] = (int(float(m.group(3))), total) if m.group(1) == "count" else (count, float(m.group(3)))
        return out

    def failed_phases(self):
        phases = {}
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if "janitor phase failed" in line or "janitor sweep failed" in line:
                    m = re.search(r'"phase":"([^"]+)"', line)
                    key = m.group(1) if m else "whole sweep"
                    phases[key] = phases.get(key, 0) + 1
        return phases

    def stop(self):
        self.server.stop()


def lateness(warren, mgmt, delay, deadline_s):
    """Creates an environment, schedules its first user's revocation `delay` s ahead, and returns
    how long after due the user was gone (None when not within deadline_s)."""
    name = f"rev-{secrets.token_hex(4)}"
    status, body = warren.call("POST", "/v1/environments", {"name": name})
    if status != 201:
        raise RuntimeError(f"create: {status} {body[:300]!r}")
    old = json.loads(body)["credentials"]["username"]
    status, body = warren.call("POST", f"/v1/environments/{name}/credentials", {"revoke_others_after_seconds": delay})
    if status != 201:
        raise RuntimeError(f"rotate: {status} {body[:300]!r}")
    due = time.monotonic() + delay
    late = None
    while time.monotonic() < due + deadline_s:
        status, _ = mgmt.call("GET", f"users/{seg(old)}", ok=(200, 404))
        if status == 404:
            late = time.monotonic() - due
            break
        time.sleep(0.1)
    warren.call("DELETE", f"/v1/environments/{name}?force=true")
    return late


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warren-bin", required=True)
    ap.add_argument("--broker-env", required=True)
    ap.add_argument("--levels", default="1000,10000,100000", help="users on the broker, comma-separated")
    ap.add_argument("--max-users", type=int, default=None, help="skip levels above this")
    ap.add_argument("--workers", type=int, default=8, help="management calls in flight while filling")
    ap.add_argument("--sweep", type=int, default=5, help="janitor interval (s)")
    ap.add_argument("--timeout-ms", type=int, default=None, help="WARREN_MANAGEMENT_TIMEOUT_MS (default: warren's)")
    ap.add_argument("--samples", type=int, default=3, help="revocations measured per level")
    ap.add_argument("--delay", type=int, default=2, help="revoke_others_after_seconds")
    ap.add_argument("--deadline", type=int, default=300, help="give up on a revocation after this (s)")
    cfg = ap.parse_args()

    broker = read_broker_env(cfg.broker_env)
    mgmt = Management(broker["WARREN_MANAGEMENT_URL"])
    levels = sorted(int(x) for x in cfg.levels.split(","))
    if cfg.max_users is not None:
        levels = [n for n in levels if n <= cfg.max_users]
    prefix = f"revbench-{secrets.token_hex(3)}-"
    mgmt.call("PUT", f"vhosts/{seg(CROWD_VHOST)}", {"description": "revocation benchmark"})
    workdir = tempfile.mkdtemp(prefix="warren-revocation-")
    rows, made = [], 0
    try:
        for level in levels:
            t = time.monotonic()
            fill(mgmt, prefix, made, level, cfg.workers)
            log(f"{level} users on the broker (+{level - made} in {time.monotonic() - t:.1f} s)")
            made = level
            warren = Warren(cfg, broker, workdir, str(level))
            try:
                before = warren.steps()
                started = time.monotonic()
                late = [lateness(warren, mgmt, cfg.delay, cfg.deadline) for _ in range(cfg.samples)]
                window = time.monotonic() - started
                after = warren.steps()
                failed = warren.failed_phases()
            finally:
                warren.stop()
            steps = {}
            for step in JANITOR_STEPS:
                count = after.get(step, (0, 0.0))[0] - before.get(step, (0, 0.0))[0]
                total = after.get(step, (0, 0.0))[1] - before.get(step, (0, 0.0))[1]
                if count:
                    steps[step] = (count, total / count)
            sweeps = max(1, steps.get("list vhosts", (0, 0))[0])
            # A sweep's management time: each step's mean times how often a sweep makes it.
            per_sweep = sum(count * mean for count, mean in steps.values()) / sweeps
            rows.append((level, late, per_sweep, steps, failed, window))
            shown = ", ".join("never" if x is None else f"{x:.1f}" for x in late)
            log(f"{level}: lateness {shown} s; sweep ~{per_sweep * 1000:.0f} ms of management calls; failed phases {failed}")
    finally:
        empty(mgmt, prefix, made, cfg.workers)

    version = json.loads(mgmt.call("GET", "overview?disable_stats=true")[1])["rabbitmq_version"]
    print(f"\nRevocation lateness and janitor sweep cost, RabbitMQ {version}, sweep every {cfg.sweep} s, "
          f"management timeout {cfg.timeout_ms or 'default (10000)'} ms, {cfg.samples} revocations per level\n")
    print("| users on broker | lateness (s) per revocation | sweep: management time | janitor steps (calls, mean ms) | failed phases |")
    print("|---:|---|---:|---|---|")
    for level, late, per_sweep, steps, failed, _ in rows:
        shown = ", ".join("never" if x is None else f"{x:.1f}" for x in late)
        detail = "; ".join(f"{s} {c}x {m * 1000:.0f}" for s, (c, m) in steps.items())
        print(f"| {level:,} | {shown} | {per_sweep * 1000:.0f} ms | {detail} | {failed or '-'} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What GET /v1/environments/{id}/queues costs when autoscalers poll it (docs/keda.md).

Not part of `make test`; `BENCH_PARTS=depth make bench` runs it (scripts/bench.sh) against a
fresh private RabbitMQ 4.3 node, or by hand:

    WARREN_BROKER_RELEASE=4.3 scripts/broker.sh start /tmp/depth-bench
    swift build -c release --product warren
    python3 bench/queue_depth.py --warren-bin .build/release/warren --broker-env /tmp/depth-bench/broker.env
    scripts/broker.sh stop /tmp/depth-bench

It starts a warren of its own, then:

  1. creates --environments environments through Warren (--teams teams, --create-clients at a
     time), each with a queue and its dead-letter queue (three queues per vhost with Warren's
     claim queue);
  2. measures the broker's own CPU time (beam.smp's utime + stime from /proc) over --seconds
     with nothing polling: the baseline (statistics emission, the management plugin's
     collectors), subtracted from the phases below;
  3. for each of --intervals (default 5 and 20 s), polls GET .../queues as --environments
     scalers polling that often would (environments / interval requests/s in total: 200 and
     50), paced (open loop: each request has its slot; a late one goes at once and its lateness
     is reported), over --seconds on --poll-clients keep-alive connections: client-side latency
     p50/p99, the broker's, Warren's and this client's CPU time;
  4. at the same rate, each of the two management calls the endpoint makes, asked of the
     management API directly: the queue listing (what KEDA's own HTTP mode would cost, were
     tenants let in) and the vhost read that proves the environment is the team's; so the
     table shows what each costs the broker, and what Warren adds;
  5. deletes every environment it made (bounded concurrency) and stops its warren.

The janitor and the usage collector are held off (intervals of a day) so that the broker CPU of
the polling phases is the polls' own. The client runs on the same machine (127.0.0.1 only) and
takes CPU too: its own is reported. Every loop is bounded in count and time. Standard library
only (helpers shared with bench.py and scale.py).
"""

import argparse
import base64
import hashlib
import http.client
import os
import secrets
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (  # noqa: E402
    Server, broker_call_totals, cpu_seconds, free_port, log, machine, percentile, read_broker_env, sh, wait_http)
from scale import run_clients  # noqa: E402

COLUMNS = ("name,messages_ready,messages_unacknowledged,consumers,"
           "message_stats.publish_details.rate,message_stats.deliver_get_details.rate")


def paced(port, requests, rate, seconds, clients, headers_for):
    """Sends requests[k % len] at start + k / rate for `seconds`, on `clients` keep-alive
    connections; returns (latencies ms, statuses by count, lateness ms, wall seconds)."""
    lock = threading.Lock()
    slots = int(rate * seconds)
    state = {"next": 0}
    latencies, late, statuses = [], [], {}
    start = time.monotonic() + 0.5

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                k = state["next"]
                if k >= slots:
                    break
                state["next"] = k + 1
            slot = start + k / rate
            wait = slot - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            path, headers = requests[k % len(requests)], headers_for(k % len(requests))
            sent = time.monotonic()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = "error"
            done = time.monotonic()
            with lock:
                latencies.append((done - sent) * 1000)
                late.append(max(0.0, (sent - slot) * 1000))
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    return latencies, statuses, late, time.monotonic() - start


def measured(pids, fn):
    """fn()'s result and the CPU seconds each of `pids` (name -> pid) spent meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = fn()
    return result, {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warren-bin", required=True)
    ap.add_argument("--broker-env", required=True)
    ap.add_argument("--environments", type=int, default=1000)
    ap.add_argument("--teams", type=int, default=50)
    ap.add_argument("--create-clients", type=int, default=16)
    ap.add_argument("--intervals", default="5,20",
                    help="each scaler's polling interval (s), one phase each: environments / interval requests/s")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each measured phase (s)")
    ap.add_argument("--poll-clients", type=int, default=64,
                    help="connections polling at once: enough that a slow answer does not hold the next slot back")
    ap.add_argument("--deadline", type=int, default=1800, help="bound (s) for creating or deleting")
    ap.add_argument("--out", default=".run/bench/queue-depth.md")
    cfg = ap.parse_args()
    rates = [cfg.environments / float(x) for x in cfg.intervals.split(",")]

    broker = read_broker_env(cfg.broker_env)
    broker_pid = int(sh(["pgrep", "-s", broker["BROKER_PID"], "beam.smp"]).split()[0])
    mgmt_port = int(broker["BROKER_MGMT_PORT"])

    workdir = tempfile.mkdtemp(prefix="warren-depth-bench-")
    teams = [f"team-{i:02d}" for i in range(cfg.teams)]
    tokens = {team: secrets.token_urlsafe(24) for team in teams}
    with open(os.path.join(workdir, "tokens"), "w") as f:
        for team, token in tokens.items():
            f.write(f"{team} {hashlib.sha256(token.encode()).hexdigest()}\n")
    port = free_port()
    env = dict(os.environ)
    env.update({
        "WARREN_LISTEN": f"127.0.0.1:{port}", "WARREN_TOKENS_FILE": os.path.join(workdir, "tokens"),
        "WARREN_MANAGEMENT_URL": f"http://127.0.0.1:{mgmt_port}",
        "WARREN_MANAGEMENT_USER": "guest", "WARREN_MANAGEMENT_PASSWORD": "guest",
        "WARREN_AMQP_PORT": broker["BROKER_AMQP_PORT"], "WARREN_LOG_LEVEL": "warning",
        "WARREN_MAX_ENVIRONMENTS_PER_TEAM": "100000",
        "WARREN_SWEEP_INTERVAL_SECONDS": "86400", "WARREN_USAGE_INTERVAL_SECONDS": "86400",
    })
    warren = Server("warren", [cfg.warren_bin], env, port, os.path.join(workdir, "warren.log"))
    names = [(teams[i % len(teams)], f"depth-{i:05d}") for i in range(cfg.environments)]
    problems, rows, steps = [], [], {}
    create_rate, idle = 0.0, {"broker": 0.0}
    try:
        wait_http(port, "/healthz", proc=warren.proc)
        log(f"creating {len(names)} environments ({cfg.create_clients} clients)")
        seconds, failures = run_clients(
            port, [(tokens[team], "POST", "/v1/environments", {"name": name, "queues": [{"name": "jobs", "dead_letter": True}]}, 201)
                   for team, name in names], cfg.create_clients, cfg.deadline)
        create_rate = (len(names) - len(failures)) / seconds
        problems += [f"create: {f}" for f in failures[:5]]
        if failures:
            problems.append(f"create: {len(failures)} of {len(names)} failed")
        pids = {"broker": broker_pid, "warren": warren.pid, "client": os.getpid()}

        # Warm-up: one poll of each environment, so no first-time cost lands in the measurement.
        paths = [f"/v1/environments/{name}/queues" for _, name in names]
        bearer = [{"Authorization": f"Bearer {tokens[team]}"} for team, _ in names]
        paced(port, paths, rates[0] * 2, len(names) / (rates[0] * 2), cfg.poll_clients, lambda i: bearer[i])

        log(f"baseline: broker CPU over {cfg.seconds:.0f} s with nothing polling")
        _, idle = measured(pids, lambda: time.sleep(cfg.seconds))

        guest = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
        vhosts = [urllib.parse.quote(f"warren.{team}.{name}", safe="") for team, name in names]
        listing = [f"/api/queues/{v}?columns={urllib.parse.quote(COLUMNS, safe=',')}" for v in vhosts]
        vhost_reads = [f"/api/vhosts/{v}" for v in vhosts]
        for rate in rates:
            log(f"polling GET .../queues at {rate:.0f} requests/s for {cfg.seconds:.0f} s")
            calls_before = broker_call_totals(port)
            (lat, statuses, late, wall), cpu = measured(
                pids, lambda: paced(port, paths, rate, cfg.seconds, cfg.poll_clients, lambda i: bearer[i]))
            calls_after = broker_call_totals(port)
            steps[rate] = {step: ((after[1] - calls_before.get(step, (0, 0.0))[1]) * 1000
                                  / (after[0] - calls_before.get(step, (0, 0.0))[0]),
                                  after[0] - calls_before.get(step, (0, 0.0))[0])
                           for step, after in calls_after.items() if after[0] > calls_before.get(step, (0, 0.0))[0]}
            rows.append(("GET /v1/environments/{id}/queues (Warren)", rate, lat, late, wall, cpu))
            if set(statuses) != {200}:
                problems.append(f"GET .../queues at {rate:.0f}/s answered {statuses}")
            # Each of Warren's two management calls alone, asked of the management API directly.
            for label, direct in (("GET /api/queues/{vhost}?columns=... (the listing alone, directly)", listing),
                                  ("GET /api/vhosts/{vhost} (the record's read alone, directly)", vhost_reads)):
                log(f"{label} at {rate:.0f} requests/s")
                (lat, statuses, late, wall), cpu = measured(
                    pids, lambda: paced(mgmt_port, direct, rate, cfg.seconds, cfg.poll_clients, lambda i: guest))
                rows.append((label, rate, lat, late, wall, cpu))
                if set(statuses) != {200}:
                    problems.append(f"{label} at {rate:.0f}/s: the management API answered {statuses}")
    finally:
        log("deleting the environments")
        _, failures = run_clients(port, [(tokens[team], "DELETE", f"/v1/environments/{name}?force=true", None, 204)
                                         for team, name in names], cfg.create_clients, cfg.deadline)
        if failures:
            problems.append(f"delete: {len(failures)} failed, e.g. {failures[0]}")
        warren.stop()

    report = render(cfg, broker, create_rate, idle["broker"] / cfg.seconds, rows, steps, problems)
    print(report)
    os.makedirs(os.path.dirname(os.path.abspath(cfg.out)), exist_ok=True)
    with open(cfg.out, "w") as f:
        f.write(report)
    return 1 if problems else 0


def render(cfg, broker, create_rate, idle_rate, rows, steps, problems):
    info = machine(broker.get("BROKER_VERSION", "?"))
    lines = [f"### Queue depths polled by autoscalers, RabbitMQ {broker.get('BROKER_VERSION', '?')}", "",
             f"{info['date']}; {info['cpus']} x {info['cpu']}, {info['memory']}; load at start "
             f"{info['load average at the start']}; {cfg.environments:,} environments of {cfg.teams} teams "
             f"(3 queues each; made at {create_rate:.1f} creates/s); each phase {cfg.seconds:.0f} s, paced, "
             f"{cfg.poll_clients} keep-alive connections; broker CPU with nothing polling: {idle_rate * 1000:.0f} ms/s", "",
             "| polled | requests/s asked (scalers every N s) | answered | p50 / p99 latency (ms) | late sends p99 (ms) "
             "| broker CPU above idle (ms/s) | broker CPU per request (ms) | Warren CPU (ms/s) | client CPU (ms/s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, rate, lat, late, wall, cpu in rows:
        above = cpu["broker"] - idle_rate * wall
        lines.append(
            f"| {label} | {rate:.0f} ({cfg.environments / rate:g} s) | {len(lat):,} in {wall:.1f} s "
            f"| {percentile(lat, 50):.1f} / {percentile(lat, 99):.1f} | {percentile(late, 99):.1f} "
            f"| {above / wall * 1000:.0f} | {above / len(lat) * 1000:.2f} "
            f"| {cpu['warren'] / wall * 1000:.0f} | {cpu['client'] / wall * 1000:.0f} |")
    for rate, by_step in steps.items():
        lines += ["", f"Warren's management calls at {rate:.0f} requests/s (mean ms, count): " + ", ".join(
            f"{step} {ms:.2f} ({count:,})" for step, (ms, count) in sorted(by_step.items()))]
    if problems:
        lines += ["", "Problems seen (each counted, none hidden):", ""] + [f"- {p}" for p in problems[:20]]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

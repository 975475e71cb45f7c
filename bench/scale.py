#!/usr/bin/env python3
"""`make bench`, scale part: what a call costs as the broker fills up with other teams' environments.

Started by scripts/bench.sh once per RabbitMQ release (each with a private node of its own),
after the release build of warren. For each level of environments already on the broker
(default 10, 1,000 and 5,000, spread over 50 teams), it:

  1. fills the broker up to the level through Warren itself (16 clients; the fill rate is
     reported: it is create throughput at that size);
  2. measures, for one more team with few environments, the latency of create, GET, list,
     PATCH (a queue added), rotate (a new credential set) and DELETE, one keep-alive client,
     sequentially: p50 and p99 over --samples environments;
  3. measures create throughput at 1, 16 and 64 concurrent clients (then deletes what it made);
  4. reads from Warren's /metrics how long the janitor's listings took at that size (it sweeps
     every --sweep seconds throughout, as it would in production, so its cost also shows in
     the latencies above).

It prints one Markdown table per release and writes it to --out. 127.0.0.1 only; every loop is
bounded in count and time. Standard library only (helpers shared with bench.py).
"""

import argparse
import hashlib
import http.client
import json
import os
import secrets
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (  # noqa: E402
    KeptAlive, Server, broker_call_totals, free_port, log, machine, percentile, read_broker_env, rss_kib, wait_http)

MEASURED_TEAM = "measured"


class Client:
    """One keep-alive connection to Warren for one team."""

    def __init__(self, port, token):
        self.token = token
        self.http = KeptAlive("127.0.0.1", port, timeout=120)

    def call(self, method, path, body=None):
        """One request; once more on a new connection when the kept-alive one turns out closed
        (Warren closes connections left idle), before any answer came."""
        return self.http.request(method, path, body, {"Authorization": f"Bearer {self.token}"})

    def expect(self, method, path, body, status):
        """The call, timed in ms; raises unless it answered `status` (a create sent again after
        a lost answer may find its environment made: 200 counts as 201 then)."""
        started = time.perf_counter()
        got, data = self.call(method, path, body)
        elapsed = (time.perf_counter() - started) * 1000
        if got != status and not (status == 201 and got == 200):
            raise RuntimeError(f"{method} {path}: {got} {data[:300]!r}")
        return elapsed

    def close(self):
        self.http.close()


def run_clients(port, jobs, clients, deadline_s):
    """Runs `jobs` (a list of (token, method, path, body, status)) on `clients` threads, each
    with its own connection per token; returns (seconds, failures as text)."""
    lock = threading.Lock()
    queue = list(reversed(jobs))
    failures = []
    deadline = time.monotonic() + deadline_s

    def worker():
        connections = {}
        while time.monotonic() < deadline:
            with lock:
                if not queue:
                    break
                token, method, path, body, status = queue.pop()
            client = connections.setdefault(token, Client(port, token))
            try:
                client.expect(method, path, body, status)
            except (RuntimeError, OSError, http.client.HTTPException) as error:
                with lock:
                    failures.append(str(error)[:300])
        for client in connections.values():
            client.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline_s + 60)
    if queue:
        failures.append(f"{len(queue)} calls not made within {deadline_s} s")
    return time.monotonic() - started, failures


def broker_call_means(port):
    """Mean duration (ms) and count of each management step, from Warren's /metrics."""
    return {step: (total / count * 1000, count) for step, (count, total) in broker_call_totals(port).items() if count}


def measure_latencies(client, level, samples):
    """Sequential create, GET, list, PATCH, rotate, DELETE of `samples` environments."""
    ops = {op: [] for op in ("create", "get", "list", "patch", "rotate", "delete")}
    for i in range(samples):
        name = f"m{level}-{i}"
        ops["create"].append(client.expect("POST", "/v1/environments", {"name": name}, 201))
        ops["get"].append(client.expect("GET", f"/v1/environments/{name}", None, 200))
        ops["list"].append(client.expect("GET", "/v1/environments", None, 200))
        ops["patch"].append(client.expect("PATCH", f"/v1/environments/{name}",
                                          {"queues": [{"name": f"{name}-extra"}]}, 200))
        ops["rotate"].append(client.expect("POST", f"/v1/environments/{name}/credentials", {}, 201))
        ops["delete"].append(client.expect("DELETE", f"/v1/environments/{name}", None, 204))
    return ops


def measure_throughput(port, token, level, clients, count, deadline_s):
    names = [f"t{level}-{clients}-{i}" for i in range(count)]
    seconds, failures = run_clients(
        port, [(token, "POST", "/v1/environments", {"name": n}, 201) for n in names], clients, deadline_s)
    made = count - len(failures)
    # Cleanup, untimed (it only has to finish).
    _, cleanup_failures = run_clients(
        port, [(token, "DELETE", f"/v1/environments/{n}?force=true", None, 204) for n in names],
        min(clients, 16), deadline_s)
    failures += ["cleanup: " + f for f in cleanup_failures]
    return made / seconds if seconds else 0.0, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warren-bin", required=True)
    ap.add_argument("--broker-env", required=True)
    ap.add_argument("--release", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--levels", default="10,1000,5000")
    ap.add_argument("--teams", type=int, default=50)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--throughput-clients", default="1,16,64")
    ap.add_argument("--throughput-count", type=int, default=64,
                    help="environments per throughput level (1 client makes a quarter of it)")
    ap.add_argument("--fill-clients", type=int, default=16)
    ap.add_argument("--sweep", type=int, default=5, help="janitor interval (s) during the run")
    ap.add_argument("--deadline", type=int, default=1800, help="bound (s) for any one phase")
    cfg = ap.parse_args()
    levels = [int(x) for x in cfg.levels.split(",")]
    throughput_clients = [int(x) for x in cfg.throughput_clients.split(",")]

    broker = read_broker_env(cfg.broker_env)

    workdir = tempfile.mkdtemp(prefix="warren-scale-")
    teams = [f"team-{i:02d}" for i in range(cfg.teams)]
    tokens = {team: secrets.token_urlsafe(24) for team in teams + [MEASURED_TEAM]}
    tokens_file = os.path.join(workdir, "tokens")
    with open(tokens_file, "w") as f:
        for team, token in tokens.items():
            f.write(f"{team} {hashlib.sha256(token.encode()).hexdigest()}\n")

    port = free_port()
    env = dict(os.environ)
    env.update({
        "WARREN_LISTEN": f"127.0.0.1:{port}", "WARREN_TOKENS_FILE": tokens_file,
        "WARREN_MANAGEMENT_URL": f"http://127.0.0.1:{broker['BROKER_MGMT_PORT']}",
        "WARREN_MANAGEMENT_USER": "guest", "WARREN_MANAGEMENT_PASSWORD": "guest",
        "WARREN_AMQP_PORT": broker["BROKER_AMQP_PORT"], "WARREN_LOG_LEVEL": "warning",
        "WARREN_MAX_ENVIRONMENTS_PER_TEAM": "100000",
        "WARREN_SWEEP_INTERVAL_SECONDS": str(cfg.sweep),
    })
    warren = Server("warren", [cfg.warren_bin], env, port, os.path.join(workdir, "warren.log"))
    rows = []
    problems = []
    try:
        wait_http(port, "/healthz", proc=warren.proc)
        filled = 0
        for level in levels:
            fill = [(tokens[teams[i % len(teams)]], "POST", "/v1/environments", {"name": f"pop-{i:05d}"}, 201)
                    for i in range(filled, level)]
            fill_rate = None
            if fill:
                log(f"{cfg.release}: filling the broker to {level} environments ({len(fill)} creates, "
                    f"{cfg.fill_clients} clients)")
                seconds, failures = run_clients(port, fill, cfg.fill_clients, cfg.deadline)
                fill_rate = (len(fill) - len(failures)) / seconds
                problems += [f"fill to {level}: {f}" for f in failures[:5]]
                if failures:
                    problems.append(f"fill to {level}: {len(failures)} of {len(fill)} creates failed")
                filled = level
            log(f"{cfg.release}: {level} environments; latencies ({cfg.samples} each)")
            # A connection of its own per level: Warren closes one left idle through a long fill.
            measured = Client(port, tokens[MEASURED_TEAM])
            lat = measure_latencies(measured, level, cfg.samples)
            measured.close()
            after = broker_call_means(port)
            thr = {}
            for clients in throughput_clients:
                count = max(4, cfg.throughput_count // 4) if clients == 1 else cfg.throughput_count
                log(f"{cfg.release}: {level} environments; create throughput, {clients} clients x {count}")
                thr[clients], failures = measure_throughput(port, tokens[MEASURED_TEAM], level, clients, count,
                                                            cfg.deadline)
                problems += [f"throughput {clients} at {level}: {f}" for f in failures[:5]]
            sweep = {step: after[step] for step in ("list users", "list vhosts", "list permissions") if step in after}
            rows.append({"level": level, "fill_rate": fill_rate, "lat": lat, "thr": thr, "sweep": sweep, "rss": rss_kib(warren.pid)})
    finally:
        warren.stop()

    table = render(cfg, broker, rows, problems, throughput_clients)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(cfg.out)), exist_ok=True)
    with open(cfg.out, "w") as f:
        f.write(table)
    return 1 if any("failed" in p for p in problems) else 0


def render(cfg, broker, rows, problems, throughput_clients):
    def ms(x):
        return f"{x:.1f}" if x < 100 else f"{x:.0f}"

    lines = [f"### Scale on RabbitMQ {broker.get('BROKER_VERSION', cfg.release)}", ""]
    info = machine(broker.get("BROKER_VERSION", "?"))
    lines.append(f"{info['date']}; {info['cpus']} x {info['cpu']}, {info['memory']}; load at start "
                 f"{info['load average at the start']}; {cfg.teams} teams; janitor every {cfg.sweep} s; "
                 f"latencies over {cfg.samples} environments of one more team, one keep-alive client")
    lines.append("")
    header = "| environments on the broker | " + " | ".join(
        f"{op} p50 / p99 (ms)" for op in ("create", "GET", "list", "PATCH", "rotate", "DELETE")) + \
        " | " + " | ".join(f"creates/s, {c} client{'s' if c > 1 else ''}" for c in throughput_clients) + \
        " | fill creates/s (16 clients) | janitor listings, mean ms (users / vhosts / permissions) | Warren VmRSS |"
    lines.append(header)
    lines.append("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        cells = [f"{row['level']:,}"]
        for op in ("create", "get", "list", "patch", "rotate", "delete"):
            values = row["lat"][op]
            cells.append(f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}")
        cells += [f"{row['thr'][c]:.1f}" for c in throughput_clients]
        cells.append(f"{row['fill_rate']:.1f}" if row["fill_rate"] else "-")
        cells.append(" / ".join(ms(row["sweep"][s][0]) if s in row["sweep"] else "-"
                                for s in ("list users", "list vhosts", "list permissions")))
        cells.append(f"{row['rss'] / 1024:.1f} MiB")
        lines.append("| " + " | ".join(cells) + " |")
    if problems:
        lines += ["", "Problems seen (each counted, none hidden):", ""] + [f"- {p}" for p in problems[:20]]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`make bench`: Warren's benchmarks, each figure beside a reference measured in the same run.

Started by scripts/bench.sh, which builds warren and bench/hummingbird-reference (release),
starts a private broker and passes their paths here. This driver starts both servers, runs

  1. HTTP:         GET /healthz with wrk at 1, 64, 256 connections, Warren vs Hummingbird; and
                   Warren's authenticated GET /v1/blueprints (bearer token, routing, a JSON body)
                   vs Warren's own /healthz: what the whole API pipeline costs
  2. provisioning: create/delete latency (sequential, one keep-alive client) vs the floor, the
                   same management API calls made directly on one keep-alive connection
  3. throughput:   environments created per second at 1, 16, 64 clients, vs the floor at the
                   same concurrency; Warren's and the broker's CPU time per environment
  4. memory:       Warren's VmRSS idle, with 1,000 keep-alive connections (Hummingbird beside
                   it), and over create/delete cycles

and prints ONE Markdown table (also written to .run/bench/result.md with the machine
description, in BENCHMARKS.md's format). Everything talks to 127.0.0.1 only; every loop is
bounded in count and in time. Standard library only.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

TEAM = "bench"
with open("/proc/loadavg") as _f:
    LOAD_AT_START = " ".join(_f.read().split()[:3])
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and /proc

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kib(pid):
    """VmRSS, and from smaps_rollup Pss (shared pages split among their users) and
    Private_Dirty (the process's own written memory), in KiB."""
    out = {"rss": rss_kib(pid)}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Pss:", "Private_Dirty:"):
                out[parts[0][:-1].lower()] = int(parts[1])
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def read_broker_env(path):
    """The KEY=VALUE assignments scripts/broker.sh writes to DIR/broker.env, as a dict."""
    broker = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                broker[k] = v
    return broker


def wait_http(port, path, deadline_s=60, proc=None):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered {path} on port {port} within {deadline_s} s")


class Server:
    def __init__(self, name, argv, env, port, log_path):
        self.name, self.port = name, port
        self.log_file = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log_file.close()


# ---------------------------------------------------------------- statistics

def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[min(len(ordered), int(rank)) - 1]


def median(values):
    return statistics.median(values)


def ratio(a, b):
    return a / b if b else float("nan")


# ---------------------------------------------------------------- HTTP layer (wrk)

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{text}")
    out["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{pct}"] = float(m.group(1)) * UNIT[m.group(2)] if m else float("nan")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    return out


class Target:
    """What wrk hammers: a server's port, a path, request headers; named for the table."""

    def __init__(self, name, port, path="/healthz", headers=()):
        self.name, self.port, self.path, self.headers = name, port, path, tuple(headers)


def run_wrk(target, connections, seconds):
    threads = 1 if connections == 1 else 2
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for header in target.headers:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{target.port}{target.path}")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}")
    return parse_wrk(done.stdout)


def bench_http(servers, levels, runs, seconds):
    """Interleaves the targets run by run, so drift on the shared machine hits all alike."""
    results = {s.name: {c: [] for c in levels} for s in servers}
    for connections in levels:
        # The diagnostic server (log level warning) only where the target applies.
        level_servers = [s for s in servers if connections >= 64 or s.name != "warren-quiet"]
        for s in level_servers:  # warm-up: allocator, page cache and accept queue settle
            run_wrk(s, connections, 1)
        for r in range(runs):
            order = level_servers if r % 2 == 0 else list(reversed(level_servers))
            for s in order:
                result = run_wrk(s, connections, seconds)
                results[s.name][connections].append(result)
                log(f"http {s.name:<12} c={connections:<3} run {r + 1}: {result['rps']:.0f} req/s, "
                    f"p50 {result['p50']:.3f} ms, p99 {result['p99']:.3f} ms"
                    + (f", {result['errors']} socket errors" if result["errors"] else "")
                    + (f", {result['non2xx']} non-2xx" if result["non2xx"] else ""))
    summary = {}
    for name, by_level in results.items():
        for connections, runs_ in by_level.items():
            if not runs_:
                continue
            summary[(name, connections)] = {
                "rps": median([x["rps"] for x in runs_]),
                "p50": median([x["p50"] for x in runs_]),
                "p99": median([x["p99"] for x in runs_]),
                "errors": sum(x["errors"] + x["non2xx"] for x in runs_),
                "all_rps": [x["rps"] for x in runs_],
            }
    return summary


# ---------------------------------------------------------------- memory: keep-alive connections

def open_keepalive(port, count):
    """Opens `count` connections, sends one GET /healthz on each, reads the answer, keeps them."""
    socks = []
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("server closed a keep-alive connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:80]!r}")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("server closed a keep-alive connection")
            body += chunk
        socks.append(s)
    return socks


def bench_connections(server, count):
    before = rss_kib(server.pid)
    socks = open_keepalive(server.port, count)
    time.sleep(1.0)
    # Every connection must still be open: one more request on the first and last.
    with_conns = rss_kib(server.pid)
    for s in (socks[0], socks[-1]):
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        if not s.recv(4096).startswith(b"HTTP/1.1 200"):
            raise RuntimeError("a kept-alive connection did not answer")
    for s in socks:
        s.close()
    time.sleep(0.5)
    return before, with_conns


# ---------------------------------------------------------------- Warren client

class KeptAlive:
    """One keep-alive HTTP/1.1 connection (http.client) for a benchmark's requests: a JSON body
    when given, and a request sent once more on a new connection when the kept one turns out
    closed before any answer came (the server closed it while idle). Any other failure drops
    the connection, so the next request starts on a new one, and is raised."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes) of one request."""
        headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self._renew()
                if attempt == 2:
                    raise
            except (OSError, http.client.HTTPException):
                self._renew()
                raise

    def _renew(self):
        self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def close(self):
        self.conn.close()


class Warren:
    def __init__(self, port, token):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data

    # 502s answered and retried, by failed step: RabbitMQ 3.10's listings race with concurrent
    # deletes (GET /api/users can answer 500; GET /api/vhosts can hold a `[]` item for a vhost
    # deleted mid-listing), and Warren passes that on. Counted and reported, not hidden.
    retried = {}
    retried_lock = threading.Lock()

    def _retrying(self, method, path, body, expected, what):
        for attempt in range(3):
            status, data = self.call(method, path, body)
            if status == expected:
                return
            if status != 502 or attempt == 2:
                raise RuntimeError(f"warren {what}: {status} {data[:300]!r}")
            try:
                step = json.loads(data).get("step", "?")
            except ValueError:
                step = "?"
            with Warren.retried_lock:
                Warren.retried[step] = Warren.retried.get(step, 0) + 1
            log(f"warren {what}: 502 at step {step!r}, retried: {data[:200]!r}")

    def create(self, name):
        self._retrying("POST", "/v1/environments", {"name": name}, 201, f"create {name}")

    def delete(self, name):
        self._retrying("DELETE", f"/v1/environments/{name}", None, 204, f"delete {name}")

    def close(self):
        self.conn.close()


# ---------------------------------------------------------------- the floor: direct management calls

def q(segment):
    return urllib.parse.quote(segment, safe="")


class Floor:
    """The fewest management API calls that make one environment / remove it, sequentially, on
    ONE keep-alive connection, no Warren: PUT vhost, poll until it runs, Warren's own
    permissions, PUT user, its permissions, PUT exchange, PUT queue, POST binding; DELETE
    user, DELETE vhost. No record, no lock, no quota, no claim, no check for messages: what
    Warren's guarantees add is the difference (see BENCHMARKS.md)."""

    def __init__(self, mgmt_port, user="guest", password="guest", steps=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", mgmt_port, timeout=60)
        # step -> [ms]: where the floor's time goes, call by call (only when given a dict).
        self.steps = steps
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.service_user = user

    def call(self, method, path, body=None, ok=(200, 201, 204), step=None):
        started = time.perf_counter()
        result = self._call(method, path, body, ok)
        if self.steps is not None and step:
            self.steps.setdefault(step, []).append((time.perf_counter() - started) * 1000.0)
        return result

    def _call(self, method, path, body, ok):
        headers = {"Authorization": self.auth}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, "/api/" + path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status not in ok:
            raise RuntimeError(f"floor {method} {path}: {response.status} {data[:300]!r}")
        return response.status, data

    def create(self, name):
        vhost = f"floor.{TEAM}.{name}"
        v = q(vhost)
        user = f"{vhost}.floor"  # known to whichever client deletes it
        password = secrets.token_urlsafe(24)
        salt = os.urandom(4)
        password_hash = base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()
        perms = {"configure": ".*", "write": ".*", "read": ".*"}
        self.call("PUT", f"vhosts/{v}", {"description": "", "tags": ""}, step="PUT vhost")
        for _ in range(3000):  # poll until running, without pausing
            _, data = self.call("GET", f"vhosts/{v}", step="GET vhost (until running)")
            states = json.loads(data).get("cluster_state", {})
            if states and all(s == "running" for s in states.values()):
                break
        else:
            raise RuntimeError(f"vhost {vhost} did not start")
        self.call("PUT", f"permissions/{v}/{q(self.service_user)}", perms, step="PUT permissions (service)")
        self.call("PUT", f"users/{q(user)}", {"password_hash": password_hash,
                                              "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""},
                  step="PUT user")
        self.call("PUT", f"permissions/{v}/{q(user)}", perms, step="PUT permissions (user)")
        self.call("PUT", f"exchanges/{v}/{q(name)}", {"type": "direct", "durable": True, "auto_delete": False,
                                                      "internal": False, "arguments": {}}, step="PUT exchange")
        self.call("PUT", f"queues/{v}/{q(name)}", {"durable": True, "auto_delete": False,
                                                   "arguments": {"x-queue-type": "quorum"}}, step="PUT queue (quorum)")
        self.call("POST", f"bindings/{v}/e/{q(name)}/q/{q(name)}", {"routing_key": name, "arguments": {}},
                  step="POST binding")

    def delete(self, name):
        vhost = f"floor.{TEAM}.{name}"
        v = q(vhost)
        self.call("DELETE", f"users/{q(vhost + '.floor')}", step="DELETE user")
        self.call("DELETE", f"vhosts/{v}", step="DELETE vhost")

    def close(self):
        self.conn.close()


# ---------------------------------------------------------------- provisioning latency

def timed(fn, *args):
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000.0


def broker_call_totals(port):
    """Count and total seconds of each management step Warren has made so far (its /metrics)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    sums, counts = {}, {}
    for line in text.splitlines():
        match = re.match(r'warren_broker_call_duration_seconds_(sum|count)\{step="([^"]+)"\} ([0-9.e+-]+)', line)
        if match:
            kind, step, value = match.groups()
            (sums if kind == "sum" else counts)[step] = float(value)
    return {step: (int(counts[step]), sums.get(step, 0.0)) for step in counts}


def calls_between(before, after, per):
    """Each step's calls per environment, mean ms per call and ms per environment between two
    snapshots of broker_call_totals, the costliest first."""
    rows = []
    for step, (count, total) in after.items():
        c0, t0 = before.get(step, (0, 0.0))
        if count > c0:
            rows.append((step, (count - c0) / per, (total - t0) * 1000 / (count - c0), (total - t0) * 1000 / per))
    return sorted(rows, key=lambda row: -row[3])


def bench_latency(warren, floor_, count, prefix, warren_pid, warren_port):
    """Creates `count` environments through Warren and `count` through the floor, alternating
    who goes first, then deletes them the same way. Sequential, one keep-alive client each.
    Warren's management calls are counted from its /metrics around each half."""
    w_create, f_create, w_delete, f_delete = [], [], [], []
    before_create = broker_call_totals(warren_port)
    w_cpu = 0.0
    for i in range(count):
        name = f"{prefix}{i}"
        pair = [("w", warren.create), ("f", floor_.create)]
        for who, fn in (pair if i % 2 == 0 else reversed(pair)):
            if who == "w":
                c0 = cpu_seconds(warren_pid)
                w_create.append(timed(fn, name))
                w_cpu += cpu_seconds(warren_pid) - c0
            else:
                f_create.append(timed(fn, name))
    after_create = broker_call_totals(warren_port)
    w_cpu_delete = 0.0
    for i in range(count):
        name = f"{prefix}{i}"
        pair = [("w", warren.delete), ("f", floor_.delete)]
        for who, fn in (pair if i % 2 == 0 else reversed(pair)):
            if who == "w":
                c0 = cpu_seconds(warren_pid)
                w_delete.append(timed(fn, name))
                w_cpu_delete += cpu_seconds(warren_pid) - c0
            else:
                f_delete.append(timed(fn, name))
    after_delete = broker_call_totals(warren_port)
    return {"w_create": w_create, "f_create": f_create, "w_delete": w_delete, "f_delete": f_delete,
            "w_cpu_create_ms": w_cpu * 1000 / count, "w_cpu_delete_ms": w_cpu_delete * 1000 / count,
            "w_calls_create": calls_between(before_create, after_create, count),
            "w_calls_delete": calls_between(after_create, after_delete, count)}


# ---------------------------------------------------------------- throughput

def run_parallel(make_client, op, names, clients, deadline_s):
    """Runs op(client, name) for every name with `clients` threads, each with its own
    keep-alive connection. Returns the wall time in seconds."""
    lock = threading.Lock()
    queue = list(reversed(names))
    errors = []
    end = time.monotonic() + deadline_s

    def worker():
        client = make_client()
        try:
            while time.monotonic() < end:
                with lock:
                    if not queue:
                        return
                    name = queue.pop()
                try:
                    op(client, name)
                except Exception as error:  # noqa: BLE001 - reported after the run
                    errors.append(error)
                    return
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} failures, first: {errors[0]}")
    if queue:
        raise RuntimeError(f"{len(queue)} operations left when the {deadline_s} s bound ran out")
    return elapsed


def bench_throughput(make_warren, make_floor, levels, per_level, warren_pid, broker_pid):
    """Per level: Warren creates `per_level` environments, deletes them; then the floor does the
    same, so both start from the same broker state (a new vhost costs more the more vhosts exist)."""
    out = {}
    for clients in levels:
        names = [f"t{clients}x{i}" for i in range(per_level)]
        w0, b0 = cpu_seconds(warren_pid), cpu_seconds(broker_pid)
        w_elapsed = run_parallel(make_warren, lambda c, n: c.create(n), names, clients, 600)
        w_cpu = cpu_seconds(warren_pid) - w0
        b_cpu = cpu_seconds(broker_pid) - b0
        w1 = cpu_seconds(warren_pid)
        wd_elapsed = run_parallel(make_warren, lambda c, n: c.delete(n), names, clients, 600)
        w_cpu_delete = cpu_seconds(warren_pid) - w1
        f0 = cpu_seconds(broker_pid)
        f_elapsed = run_parallel(make_floor, lambda c, n: c.create(n), names, clients, 600)
        fb_cpu = cpu_seconds(broker_pid) - f0
        fd_elapsed = run_parallel(make_floor, lambda c, n: c.delete(n), names, clients, 600)
        out[clients] = {
            "w_rate": per_level / w_elapsed, "f_rate": per_level / f_elapsed,
            "wd_rate": per_level / wd_elapsed, "fd_rate": per_level / fd_elapsed,
            "w_cpu_ms": w_cpu * 1000 / per_level, "w_cpu_delete_ms": w_cpu_delete * 1000 / per_level,
            "broker_cpu_ms": b_cpu * 1000 / per_level, "broker_cpu_floor_ms": fb_cpu * 1000 / per_level,
        }
        log(f"throughput c={clients}: warren {out[clients]['w_rate']:.2f}/s vs floor {out[clients]['f_rate']:.2f}/s "
            f"creates; deletes {out[clients]['wd_rate']:.2f}/s vs {out[clients]['fd_rate']:.2f}/s; warren CPU "
            f"{out[clients]['w_cpu_ms']:.2f} ms/create, broker CPU {out[clients]['broker_cpu_ms']:.0f} ms/create")
    return out


# ---------------------------------------------------------------- memory over create/delete cycles

def bench_cycles(make_warren, total, step, workers, pid, deadline_s):
    samples = [(0, rss_kib(pid))]
    done = 0
    end = time.monotonic() + deadline_s
    while done < total:
        remaining = end - time.monotonic()
        if remaining <= 0:
            log(f"cycles: the {deadline_s} s bound ran out after {done} cycles")
            break
        batch = [f"m{i}" for i in range(done, min(total, done + step))]
        run_parallel(make_warren, lambda c, n: (c.create(n), c.delete(n)), batch, workers, remaining)
        done += len(batch)
        samples.append((done, rss_kib(pid)))
        log(f"cycles: {done} create/delete cycles, warren VmRSS {samples[-1][1] / 1024:.1f} MiB")
    return samples


# ---------------------------------------------------------------- machine and report

def sh(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine(broker_version):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": f"{os.cpu_count()} (nproc {sh(['nproc'])})",
        "cpu": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "swift": sh(["swift", "--version"]).splitlines()[0] if sh(["swift", "--version"]) else "?",
        "rabbitmq": broker_version,
        "wrk": sh(["wrk", "-v"]).splitlines()[0].split(" Copyright")[0] if sh(["wrk", "-v"]) else "?",
        "python": platform.python_version(),
        "load average at the start": LOAD_AT_START,
    }


def fmt_ms(x):
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def fmt_ratio(x):
    return f"{x:.2f}x"


def build_table(cfg, http, lat, thr, mem, cycles):
    rows = []

    def row(section, measure, warren, reference, ratio_text, target, verdict):
        rows.append(f"| {section} | {measure} | {warren} | {reference} | {ratio_text} | {target} | {verdict} |")

    yes = lambda ok: "met" if ok else "**missed**"  # noqa: E731

    for c in cfg.levels:
        w, h = http[("warren", c)], http[("hummingbird", c)]
        r = ratio(w["rps"], h["rps"])
        target = "≥ 1.50x" if c >= 64 else "-"
        verdict = yes(r >= 1.5) if c >= 64 else "-"
        err = f" ({w['errors']} errors)" if w["errors"] else ""
        herr = f" ({h['errors']} errors)" if h["errors"] else ""
        row("HTTP", f"GET /healthz, {c} conn: req/s", f"{w['rps']:,.0f}{err}", f"{h['rps']:,.0f}{herr}",
            fmt_ratio(r), target, verdict)
        row("HTTP", f"{c} conn: p50 / p99 latency", f"{fmt_ms(w['p50'])} / {fmt_ms(w['p99'])}",
            f"{fmt_ms(h['p50'])} / {fmt_ms(h['p99'])}",
            f"{fmt_ratio(ratio(w['p50'], h['p50']))} / {fmt_ratio(ratio(w['p99'], h['p99']))}", "-", "-")
    for c in cfg.levels:
        if ("warren-blueprints", c) not in http:
            continue
        b, w = http[("warren-blueprints", c)], http[("warren", c)]
        r = ratio(b["rps"], w["rps"])
        err = f" ({b['errors']} errors)" if b["errors"] else ""
        row("HTTP", f"GET /v1/blueprints with a bearer token, {c} conn: req/s (p50 / p99)",
            f"{b['rps']:,.0f}{err} ({fmt_ms(b['p50'])} / {fmt_ms(b['p99'])})",
            f"{w['rps']:,.0f} (Warren /healthz)", fmt_ratio(r), "≥ 0.80x", yes(r >= 0.8))
    if ("warren-quiet", cfg.levels[-1]) in http:
        for c in cfg.levels[1:]:
            q_, h = http[("warren-quiet", c)], http[("hummingbird", c)]
            row("HTTP", f"{c} conn: req/s, Warren with WARREN_LOG_LEVEL=warning", f"{q_['rps']:,.0f}",
                f"{h['rps']:,.0f}", fmt_ratio(ratio(q_["rps"], h["rps"])), "(diagnostic)", "-")

    for op in ("create", "delete"):
        w, f = lat[f"w_{op}"], lat[f"f_{op}"]
        for p in (50, 99):
            wp, fp = percentile(w, p), percentile(f, p)
            r = ratio(wp, fp)
            row("Provisioning", f"{op} p{p} ({len(w)} envs, sequential)", fmt_ms(wp), fmt_ms(fp) + " (floor)",
                fmt_ratio(r), "≤ 0.80x (≤ 1.05x)", "met" if r <= 0.8 else ("met ≤ 1.05x only" if r <= 1.05
                                                                        else "**missed**"))
    row("Provisioning", "Warren CPU per create / delete (sequential)",
        f"{lat['w_cpu_create_ms']:.1f} / {lat['w_cpu_delete_ms']:.1f} ms", "-", "-", "-", "-")

    for c, t in thr.items():
        row("Throughput", f"creates/s, {c} client{'s' if c > 1 else ''} ({cfg.per_level} envs)",
            f"{t['w_rate']:.2f}", f"{t['f_rate']:.2f} (floor)", fmt_ratio(ratio(t["w_rate"], t["f_rate"])), "-", "-")
        row("Throughput", f"deletes/s, {c} client{'s' if c > 1 else ''}",
            f"{t['wd_rate']:.2f}", f"{t['fd_rate']:.2f} (floor)", fmt_ratio(ratio(t["wd_rate"], t["fd_rate"])),
            "-", "-")
        row("Throughput", f"CPU per create, {c} client{'s' if c > 1 else ''}: Warren / broker",
            f"{t['w_cpu_ms']:.1f} ms", f"broker {t['broker_cpu_ms']:.0f} ms (floor: {t['broker_cpu_floor_ms']:.0f} ms)",
            "-", "-", "-")

    mib = lambda k: f"{k / 1024:.1f} MiB"  # noqa: E731
    w_idle, h_idle = mem["warren"][0], mem["hummingbird"][0]
    row("Memory", "VmRSS idle after start", mib(w_idle), mib(h_idle), fmt_ratio(ratio(w_idle, h_idle)),
        "< 12 MB", yes(w_idle * 1024 < 12e6))
    wd, hd = mem["idle_detail"]["warren"], mem["idle_detail"]["hummingbird"]
    row("Memory", "idle: Pss / Private_Dirty (smaps_rollup)", f"{mib(wd['pss'])} / {mib(wd['private_dirty'])}",
        f"{mib(hd['pss'])} / {mib(hd['private_dirty'])}",
        f"{fmt_ratio(ratio(wd['pss'], hd['pss']))} / {fmt_ratio(ratio(wd['private_dirty'], hd['private_dirty']))}",
        "-", "-")
    w_before, w_with = mem["warren"][1]
    h_before, h_with = mem["hummingbird"][1]
    w_delta, h_delta = w_with - w_before, h_with - h_before
    row("Memory", f"VmRSS with {cfg.connections:,} keep-alive conns (+ delta)",
        f"{mib(w_with)} (+{mib(w_delta)})", f"{mib(h_with)} (+{mib(h_delta)})", fmt_ratio(ratio(w_delta, h_delta)),
        "+ ≤ 10 MB", yes(w_delta * 1024 <= 10e6))
    series = " → ".join(f"{n}: {mib(k)}" for n, k in cycles)
    growth = cycles[-1][1] - cycles[0][1]
    # Flat: no more than 2 MiB over the run, and the second half grows no more than 0.5 MiB.
    half = next((k for n, k in cycles if n >= cycles[-1][0] // 2), cycles[0][1])
    flat = growth <= 2048 and cycles[-1][1] - half <= 512
    row("Memory", f"VmRSS over {cycles[-1][0]:,} create/delete cycles", series, "-",
        f"+{mib(growth)}", "flat", yes(flat))

    if Warren.retried:
        row("Errors", "Warren 502s retried, by failed step", ", ".join(f"{k}: {v}" for k, v in Warren.retried.items()),
            "-", "-", "none", "**missed**")
    header = ["| section | measure | Warren | reference | ratio | target | verdict |",
              "|---|---|---|---|---|---|---|"]
    return "\n".join(header + rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warren-bin", required=True)
    ap.add_argument("--hummingbird-bin", required=True)
    ap.add_argument("--broker-env", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--levels", default="1,64,256")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--envs", type=int, default=100)
    ap.add_argument("--throughput-levels", default="1,16,64")
    ap.add_argument("--per-level", type=int, default=64)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--cycle-step", type=int, default=500)
    ap.add_argument("--cycle-workers", type=int, default=4)
    ap.add_argument("--cycle-deadline", type=int, default=1200)
    ap.add_argument("--quiet-row", type=int, default=1, help="also measure Warren at WARREN_LOG_LEVEL=warning")
    cfg = ap.parse_args()
    cfg.levels = [int(x) for x in cfg.levels.split(",")]
    cfg.throughput_levels = [int(x) for x in cfg.throughput_levels.split(",")]

    broker = read_broker_env(cfg.broker_env)
    mgmt_port = int(broker["BROKER_MGMT_PORT"])
    broker_pid = int(sh(["pgrep", "-s", broker["BROKER_PID"], "beam.smp"]).split()[0])

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, cfg.connections + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    workdir = tempfile.mkdtemp(prefix="warren-bench-")
    # The authenticated HTTP row lists real blueprints: the repository's example file.
    blueprints_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "blueprints.json")
    token = secrets.token_urlsafe(32)
    tokens_file = os.path.join(workdir, "tokens")
    with open(tokens_file, "w") as f:
        f.write(f"{TEAM} {hashlib.sha256(token.encode()).hexdigest()}\n")

    def warren_env(port, level="info"):
        env = dict(os.environ)
        env.update({
            "WARREN_LISTEN": f"127.0.0.1:{port}", "WARREN_TOKENS_FILE": tokens_file,
            "WARREN_MANAGEMENT_URL": f"http://127.0.0.1:{mgmt_port}", "WARREN_MANAGEMENT_USER": "guest",
            "WARREN_MANAGEMENT_PASSWORD": "guest", "WARREN_AMQP_PORT": broker["BROKER_AMQP_PORT"],
            "WARREN_LOG_LEVEL": level, "WARREN_BLUEPRINTS_FILE": blueprints_file,
            # The latency run holds 100+ environments of one team at once.
            "WARREN_MAX_ENVIRONMENTS_PER_TEAM": "100000",
        })
        return env

    servers = []

    def stop_all(*_):
        for s in servers:
            s.stop()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ok = False
    try:
        wport, hport = free_port(), free_port()
        warren = Server("warren", [cfg.warren_bin], warren_env(wport), wport, os.path.join(workdir, "warren.log"))
        servers.append(warren)
        hb_env = dict(os.environ, HB_LISTEN=f"127.0.0.1:{hport}")
        hb = Server("hummingbird", [cfg.hummingbird_bin], hb_env, hport, os.path.join(workdir, "hummingbird.log"))
        servers.append(hb)
        # Idle RSS: after start-up, before any request but the readiness probe of wait_http.
        wait_http(wport, "/healthz", proc=warren.proc)
        wait_http(hport, "/healthz", proc=hb.proc)
        time.sleep(2.0)
        mem = {"warren": [rss_kib(warren.pid)], "hummingbird": [rss_kib(hb.pid)],
               "idle_detail": {"warren": memory_kib(warren.pid), "hummingbird": memory_kib(hb.pid)}}
        log(f"idle VmRSS: warren {mem['warren'][0] / 1024:.1f} MiB, hummingbird {mem['hummingbird'][0] / 1024:.1f} MiB")

        for s in (warren, hb):
            mem[s.name].append(bench_connections(s, cfg.connections))
            before, with_ = mem[s.name][1]
            log(f"{s.name}: VmRSS {before / 1024:.1f} MiB -> {with_ / 1024:.1f} MiB with {cfg.connections} connections")

        rabbit_version = "?"
        floor_probe = Floor(mgmt_port)
        _, data = floor_probe.call("GET", "overview?disable_stats=true")
        rabbit_version = json.loads(data).get("rabbitmq_version", "?")
        floor_probe.close()

        log(f"HTTP: wrk, {cfg.runs} runs x {cfg.seconds} s per server and level")
        http_servers = [Target("warren", wport), Target("hummingbird", hport),
                        Target("warren-blueprints", wport, "/v1/blueprints", [f"Authorization: Bearer {token}"])]
        quiet = None
        if cfg.quiet_row:
            qport = free_port()
            quiet = Server("warren-quiet", [cfg.warren_bin], warren_env(qport, "warning"), qport,
                           os.path.join(workdir, "warren-quiet.log"))
            servers.append(quiet)
            wait_http(qport, "/healthz", proc=quiet.proc)
            http_servers.append(Target("warren-quiet", qport))
        http = bench_http(http_servers, cfg.levels, cfg.runs, cfg.seconds)
        if quiet is not None:
            quiet.stop()
            servers.remove(quiet)
        hb.stop()
        servers.remove(hb)

        log(f"provisioning latency: {cfg.envs} environments through Warren and through the floor")
        steps = {}
        w_client, f_client = Warren(wport, token), Floor(mgmt_port)
        # Warm-up: first connections, first vhost (code paths, broker caches).
        for i in range(3):
            w_client.create(f"warm{i}")
            f_client.create(f"warm{i}")
            w_client.delete(f"warm{i}")
            f_client.delete(f"warm{i}")
        f_client.steps = steps  # after the warm-up
        lat = bench_latency(w_client, f_client, cfg.envs, "l", warren.pid, wport)
        w_client.close()
        f_client.close()
        for op in ("create", "delete"):
            log(f"{op}: warren p50 {percentile(lat['w_' + op], 50):.1f} p99 {percentile(lat['w_' + op], 99):.1f} ms; "
                f"floor p50 {percentile(lat['f_' + op], 50):.1f} p99 {percentile(lat['f_' + op], 99):.1f} ms")

        log(f"throughput: {cfg.per_level} creates then deletes at {cfg.throughput_levels} clients")
        thr = bench_throughput(lambda: Warren(wport, token), lambda: Floor(mgmt_port), cfg.throughput_levels,
                               cfg.per_level, warren.pid, broker_pid)

        log(f"memory: {cfg.cycles} create/delete cycles with {cfg.cycle_workers} clients")
        cycles = bench_cycles(lambda: Warren(wport, token), cfg.cycles, cfg.cycle_step, cfg.cycle_workers,
                              warren.pid, cfg.cycle_deadline)

        step_text = "\n".join(
            f"- {name}: p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms ({len(values)} calls)"
            for name, values in steps.items())
        log("floor, call by call:\n" + step_text)
        # The janitor sweeps every 30 s (list users, vhosts, permissions, team indexes): a sweep
        # that fell in the window shows as a fraction of a call per environment.
        warren_text = ""
        for op in ("create", "delete"):
            rows = lat[f"w_calls_{op}"]
            warren_text += (f"\nWarren, per {op} ({sum(r[1] for r in rows):.1f} calls, "
                            f"{sum(r[3] for r in rows):.1f} ms of management calls per environment):\n\n")
            warren_text += "\n".join(f"- {step}: {per:.2f} calls, mean {mean:.1f} ms, {total:.1f} ms per {op}"
                                      for step, per, mean, total in rows) + "\n"
        log("warren, step by step:" + warren_text)
        table = build_table(cfg, http, lat, thr, mem, cycles)
        info = machine(rabbit_version)
        machine_text = "\n".join(f"- {k}: {v}" for k, v in info.items())
        notes = (f"wrk -t1 (1 conn) / -t2, {cfg.runs} runs x {cfg.seconds} s per level, medians, servers interleaved; "
                 f"wrk and the servers share the machine's {os.cpu_count()} cores. Warren runs at its default "
                 "WARREN_LOG_LEVEL=info (one JSON log line per request, to a file). The /v1/blueprints rows: "
                 "Warren with examples/blueprints.json, a bearer token on every request, against Warren's own "
                 "/healthz in the same runs. Provisioning: "
                 f"{cfg.envs} environments each way, Warren and floor alternating; percentiles nearest-rank. "
                 "VmRSS counts every resident page of the shared libraries mapped (libswiftCore, Foundation, "
                 "libcurl, OpenSSL...); Pss splits shared pages among the processes using them.")
        os.makedirs(os.path.dirname(cfg.out), exist_ok=True)
        with open(cfg.out, "w") as f:
            f.write(f"### Run of {info['date']}\n\nMachine:\n\n{machine_text}\n\n{notes}\n\n{table}\n\n"
                    f"The floor's management calls, one by one (sequential run):\n\n{step_text}\n"
                    f"\nWarren's management calls by step, from its /metrics around the same sequential run:\n"
                    f"{warren_text}")
        with open(os.path.join(os.path.dirname(cfg.out), "raw.json"), "w") as f:
            json.dump({"http": {f"{k[0]}@{k[1]}": v for k, v in http.items()}, "latency": lat,
                       "throughput": thr, "memory": mem, "cycles": cycles, "floor_steps": steps,
                       "retried": Warren.retried}, f)
        print()
        print(table)
        print()
        print(f"(machine and notes with the table: {cfg.out})")
        ok = True
    finally:
        stop_all()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"servers' logs kept in {workdir}")


if __name__ == "__main__":
    main()

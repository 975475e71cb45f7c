#!/usr/bin/env python3
"""What each KIND of management API call costs a running RabbitMQ node.

What it is for: which management call stands in the way of a faster create/delete: the broker
CPU each kind of call costs. Warren's create and delete are sequences of management API calls
(the lock queue, the claim queue, the vhost, its limits and policies, the user, the topology,
the registry parameter); bench/bench.py says how long the whole sequence takes, this says which
kind of call the broker spends its time and CPU on, so the costliest can be replaced, batched
(one POST /api/definitions instead of many calls) or dropped.

  python3 bench/call_costs.py --broker-env DIR/broker.env [--count N] [--out FILE.md]

For each kind: N calls (default 200; making/deleting vhosts and the per-vhost definitions rows
use N/4, at least 20) made sequentially on ONE keep-alive connection (basic auth guest:guest),
after a short warm-up whose calls are not counted and a 0.5 s pause; wall-clock p50/p99 per
call and the broker's CPU per call: utime+stime of its beam.smp (/proc) summed over the timed
calls, so work the broker finishes after answering is counted with the next call of the same
row (and background work, e.g. other clients of the same node, is noise: the idle rate is
printed beside the table).
Every object lives in vhosts named callcost.* and users named callcost.*, which are made
before the row that needs them (not timed) and removed at the end, also on error or Ctrl-C;
leftovers of an interrupted run are removed at the start. Every call must answer 2xx. Every
row is bounded by a count and a time limit (its calls column says how many were timed).
Differences from the literal call shapes: PUT policy / operator-policy use a new name each
call and PUT global-parameter a changed value each call (so each is a real change, not a
no-op rewrite), and PUT vhost-limit / PUT vhost (existing) / GET vhost go to the N pre-made
claim vhosts in turn; each "same ... as separate calls" row runs before its definitions row (an
import leaves work behind that would otherwise be counted against the separate calls). Standard library only; talks to 127.0.0.1 only.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

PREFIX = "callcost."
ROW_DEADLINE_S = 30.0  # per row, besides the count
SETTLE_S = 0.5  # pause before each row's timed section, so the previous row's late work is not counted
PERMS = {"configure": ".*", "write": ".*", "read": ".*"}


def log(message):
    print(f"[call_costs {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def q(segment):
    return urllib.parse.quote(segment, safe="")


class Api:
    """One keep-alive connection to the management API; every call must answer 2xx."""

    def __init__(self, port):
        self.auth = "Basic " + base64.b64encode(b"guest:guest").decode()
        self.http = B.KeptAlive("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None, ok=None):
        status, data = self.http.request(method, "/api/" + path, body, {"Authorization": self.auth})
        good = (status in ok) if ok else (200 <= status < 300)
        if not good:
            raise RuntimeError(f"{method} /api/{path}: {status} {data[:300]!r}")
        return data

    def json(self, path):
        return json.loads(self.call("GET", path) or b"null")

    def close(self):
        self.http.close()


class Meter:
    """Wall and broker-CPU per repetition, row by row, in the order rows were first measured."""

    def __init__(self, broker_pid):
        self.pid = broker_pid
        self.rows = {}  # name -> {"wall": [ms], "cpu": s}

    def time(self, row, fn):
        c0 = B.cpu_seconds(self.pid)
        t0 = time.perf_counter()
        fn()
        wall = (time.perf_counter() - t0) * 1000.0
        cpu = B.cpu_seconds(self.pid) - c0
        entry = self.rows.setdefault(row, {"wall": [], "cpu": 0.0})
        entry["wall"].append(wall)
        entry["cpu"] += cpu

    def loop(self, row, reps, fn, warm=3):
        """fn(i) for i in range(warm + reps); the first `warm` are not counted. Bounded by
        ROW_DEADLINE_S (timed calls only)."""
        for i in range(warm):
            fn(i)
        time.sleep(SETTLE_S)
        end = time.monotonic() + ROW_DEADLINE_S
        for i in range(warm, warm + reps):
            self.time(row, lambda: fn(i))
            if time.monotonic() > end:
                log(f"{row}: time limit reached after {i - warm + 1} of {reps}")
                break

    def table(self):
        lines = ["| kind | calls | p50 ms | p99 ms | broker CPU ms per call |",
                 "|---|---:|---:|---:|---:|"]
        for row, e in self.rows.items():
            n = len(e["wall"])
            if not n:
                continue
            lines.append(f"| {row} | {n} | {B.percentile(e['wall'], 50):.2f} | {B.percentile(e['wall'], 99):.2f} "
                         f"| {e['cpu'] * 1000 / n:.2f} |")
        return "\n".join(lines)


# ---------------------------------------------------------------- objects

def password_hash(password):
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def make_vhosts(api, names, with_quorum_queue=False):
    """Pre-makes vhosts (untimed), waits until the last one runs, then ~0.5 s."""
    for name in names:
        api.call("PUT", f"vhosts/{q(name)}", {"description": "", "tags": ""})
        if with_quorum_queue:
            api.call("PUT", f"queues/{q(name)}/qq", {"durable": True, "auto_delete": False,
                                                     "arguments": {"x-queue-type": "quorum"}})
    for _ in range(500):
        states = api.json(f"vhosts/{q(names[-1])}").get("cluster_state", {})
        if states and all(s == "running" for s in states.values()):
            break
        time.sleep(0.01)
    time.sleep(0.5)


def cleanup(port):
    """Removes every callcost.* vhost, user and global parameter, on a fresh connection."""
    api = Api(port)
    try:
        for user in api.json("users"):
            if user["name"].startswith(PREFIX):
                api.call("DELETE", f"users/{q(user['name'])}", ok=(204, 404))
        for vhost in api.json("vhosts"):
            if vhost["name"].startswith(PREFIX):
                api.call("DELETE", f"vhosts/{q(vhost['name'])}", ok=(204, 404))
        api.call("DELETE", f"global-parameters/{q(PREFIX + 'x')}", ok=(204, 404))
    finally:
        api.close()


EXCHANGE = {"type": "direct", "durable": True, "auto_delete": False, "internal": False, "arguments": {}}
QUORUM = {"durable": True, "auto_delete": False, "arguments": {"x-queue-type": "quorum"}}
POLICIES = [("p.a", ".*", {"overflow": "reject-publish"}, -1),
            ("p.b", "^q$", {"max-length": 1000}, -2),
            ("p.c", "^q", {"message-ttl": 60000}, -3)]
OP_POLICIES = [("op.a", ".*", {"max-length": 100000, "max-length-bytes": 1048576}, -1),
               ("op.b", "^q$", {"message-ttl": 3600000}, -2),
               ("op.c", "^q", {"expires": 86400000}, -3)]
VHOST_LIMITS = {"max-connections": 7, "max-queues": 9}


def vhost_definitions():
    return {
        "exchanges": [dict(EXCHANGE, name="x")],
        "queues": [dict(QUORUM, name="q")],
        "bindings": [{"source": "x", "destination": "q", "destination_type": "queue",
                      "routing_key": "q", "arguments": {}}],
        "policies": [{"name": n, "pattern": p, "definition": d, "priority": pr, "apply-to": "queues"}
                     for n, p, d, pr in POLICIES],
        "parameters": [{"component": "operator_policy", "name": n,
                        "value": {"pattern": p, "definition": d, "priority": pr, "apply-to": "queues"}}
                       for n, p, d, pr in OP_POLICIES]
        + [{"component": "vhost-limits", "name": "limits", "value": VHOST_LIMITS}],
    }


def vhost_separate_calls(api, vhost):
    v = q(vhost)
    api.call("PUT", f"exchanges/{v}/x", EXCHANGE)
    api.call("PUT", f"queues/{v}/q", QUORUM)
    api.call("POST", f"bindings/{v}/e/x/q/q", {"routing_key": "q", "arguments": {}})
    for n, p, d, pr in POLICIES:
        api.call("PUT", f"policies/{v}/{q(n)}", {"pattern": p, "definition": d, "priority": pr, "apply-to": "queues"})
    for n, p, d, pr in OP_POLICIES:
        api.call("PUT", f"operator-policies/{v}/{q(n)}",
                 {"pattern": p, "definition": d, "priority": pr, "apply-to": "queues"})
    for k, value in VHOST_LIMITS.items():
        api.call("PUT", f"vhost-limits/{v}/{k}", {"value": value})


def check_vhost_content(api, vhost):
    """Once, untimed: both ways must leave the same objects behind."""
    v = q(vhost)
    got = (len(api.json(f"exchanges/{v}/x") or {}) > 0, len(api.json(f"queues/{v}/q") or {}) > 0,
           len(api.json(f"bindings/{v}/e/x/q/q")), len(api.json(f"policies/{v}")),
           len(api.json(f"operator-policies/{v}")), api.json(f"vhost-limits/{v}"))
    limits = got[5][0]["value"] if got[5] else {}
    if got[:5] != (True, True, 1, 3, 3) or limits != VHOST_LIMITS:
        raise RuntimeError(f"vhost {vhost}: unexpected content {got}")


# ---------------------------------------------------------------- the rows

def run(api, meter, n, n_small):
    warm = 3
    pw = password_hash("callcost-" + os.urandom(8).hex())

    # 1. lock pair
    system = PREFIX + "system"
    make_vhosts(api, [system])

    def lock_pair(i):
        path = f"queues/{q(system)}/{q(f'lock.{i}')}"
        api.call("PUT", path, {"durable": True, "auto_delete": False,
                               "arguments": {"x-queue-type": "classic", "x-max-length": random.randint(1, 10 ** 9),
                                             "x-expires": 30000}})
        api.call("DELETE", path)
    meter.loop("lock pair (PUT + DELETE classic queue)", n, lock_pair, warm)

    # 2.-3., 5.-6., 9. claim-like queue, each in its own pre-made vhost
    claims = [f"{PREFIX}claim.{i}" for i in range(warm + n)]
    log(f"making {len(claims)} claim vhosts")
    make_vhosts(api, claims)
    record = json.dumps({"environment": "x" * 520, "team": "callcost", "created": time.time()})[:600]
    meter.loop("PUT queue (classic, claim-like)", n, lambda i: api.call(
        "PUT", f"queues/{q(claims[i])}/claim",
        {"durable": True, "auto_delete": False,
         "arguments": {"x-queue-type": "classic", "x-max-length": 1, "x-warren-record": record}}), warm)
    meter.loop("GET queue", n, lambda i: api.call("GET", f"queues/{q(claims[i])}/claim"), warm)
    description = ("warren environment " + "d" * 700)[:700]
    meter.loop("PUT vhost (existing; description update)", n, lambda i: api.call(
        "PUT", f"vhosts/{q(claims[i])}", {"description": description, "tags": ["warren"]}), warm)
    meter.loop("GET vhost", n, lambda i: api.call("GET", f"vhosts/{q(claims[i])}"), warm)
    meter.loop("PUT vhost-limit", n, lambda i: api.call(
        "PUT", f"vhost-limits/{q(claims[i])}/max-connections", {"value": 100}), warm)

    # 4. new vhost / delete vhost, alternating
    for i in range(warm):
        api.call("PUT", f"vhosts/{q(f'{PREFIX}new.w{i}')}", {"description": "", "tags": ""})
        api.call("DELETE", f"vhosts/{q(f'{PREFIX}new.w{i}')}")
    time.sleep(SETTLE_S)
    end = time.monotonic() + 2 * ROW_DEADLINE_S
    for i in range(n_small):
        v = q(f"{PREFIX}new.{i}")
        meter.time("PUT vhost (new)", lambda: api.call("PUT", f"vhosts/{v}", {"description": "", "tags": ""}))
        meter.time("DELETE vhost", lambda: api.call("DELETE", f"vhosts/{v}"))
        if time.monotonic() > end:
            break

    # 7.-8. policies in vhosts holding one quorum queue
    pol, opol = PREFIX + "policy", PREFIX + "oppolicy"
    make_vhosts(api, [pol, opol], with_quorum_queue=True)
    meter.loop("PUT policy", n, lambda i: api.call(
        "PUT", f"policies/{q(pol)}/{q(f'p.{i}')}",
        {"pattern": ".*", "apply-to": "queues", "definition": {"overflow": "reject-publish"}, "priority": -1}), warm)
    meter.loop("PUT operator-policy", n, lambda i: api.call(
        "PUT", f"operator-policies/{q(opol)}/{q(f'op.{i}')}",
        {"pattern": ".*", "apply-to": "queues", "definition": {"max-length": 100000, "max-length-bytes": 1048576},
         "priority": -1}), warm)

    # 10. users
    users_vhost = PREFIX + "users"
    make_vhosts(api, [users_vhost])
    user = lambda i: q(f"{PREFIX}u.{i}")  # noqa: E731
    meter.loop("PUT user", n, lambda i: api.call(
        "PUT", f"users/{user(i)}",
        {"password_hash": pw, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}), warm)
    meter.loop("PUT permissions", n, lambda i: api.call("PUT", f"permissions/{q(users_vhost)}/{user(i)}", PERMS), warm)
    meter.loop("PUT user-limit", n, lambda i: api.call(
        "PUT", f"user-limits/{user(i)}/max-connections", {"value": 100}), warm)
    meter.loop("DELETE user", n, lambda i: api.call("DELETE", f"users/{user(i)}"), warm)

    # 11. topology in one vhost
    objects = PREFIX + "objects"
    make_vhosts(api, [objects])
    o = q(objects)
    meter.loop("PUT exchange", n, lambda i: api.call("PUT", f"exchanges/{o}/x.{i}", EXCHANGE), warm)
    meter.loop("PUT queue (quorum)", n, lambda i: api.call("PUT", f"queues/{o}/q.{i}", QUORUM), warm)
    meter.loop("POST binding", n, lambda i: api.call(
        "POST", f"bindings/{o}/e/x.{i}/q/q.{i}", {"routing_key": f"q.{i}", "arguments": {}}), warm)

    # 12. global parameter (the value changes each call)
    gp = q(PREFIX + "x")
    meter.loop("PUT global-parameter", n, lambda i: api.call(
        "PUT", f"global-parameters/{gp}", {"name": PREFIX + "x", "value": {"environments": ["a", "b", f"e{i}"]}}), warm)
    meter.loop("GET global-parameter", n, lambda i: api.call("GET", f"global-parameters/{gp}"), warm)

    # 13. per-vhost definitions vs the same content as 11 separate calls, each in a fresh vhost
    defs = [f"{PREFIX}defs.{i}" for i in range(warm + n_small)]
    seps = [f"{PREFIX}sep.{i}" for i in range(warm + n_small)]
    log(f"making {len(defs) + len(seps)} vhosts for the definitions rows")
    make_vhosts(api, defs + seps)
    body = vhost_definitions()
    # the separate calls go first: an import leaves work behind that would land on them
    meter.rows.setdefault("POST /api/definitions/{vhost} (11 objects)", {"wall": [], "cpu": 0.0})
    meter.loop("same content as separate calls (11 calls)", n_small, lambda i: vhost_separate_calls(api, seps[i]), warm)
    meter.loop("POST /api/definitions/{vhost} (11 objects)", n_small,
               lambda i: api.call("POST", f"definitions/{q(defs[i])}", body), warm)
    check_vhost_content(api, defs[warm])
    check_vhost_content(api, seps[warm])

    # 14. global definitions: one user, its limits and permissions vs 4 separate calls
    dvh = PREFIX + "defusers"
    make_vhosts(api, [dvh])

    def user_definitions(i):
        name = f"{PREFIX}d.{i}"
        api.call("POST", "definitions", {
            "users": [{"name": name, "password_hash": pw, "hashing_algorithm": "rabbit_password_hashing_sha256",
                       "tags": [], "limits": {"max-connections": 5, "max-channels": 6}}],
            "permissions": [dict(PERMS, user=name, vhost=dvh)]})

    def user_separate(i):
        u = q(f"{PREFIX}s.{i}")
        api.call("PUT", f"users/{u}", {"password_hash": pw, "hashing_algorithm": "rabbit_password_hashing_sha256",
                                       "tags": ""})
        api.call("PUT", f"permissions/{q(dvh)}/{u}", PERMS)
        api.call("PUT", f"user-limits/{u}/max-connections", {"value": 5})
        api.call("PUT", f"user-limits/{u}/max-channels", {"value": 6})
    meter.rows.setdefault("POST /api/definitions (user + limits + permissions)", {"wall": [], "cpu": 0.0})
    meter.loop("same as separate calls (4 calls)", n, user_separate, warm)
    meter.loop("POST /api/definitions (user + limits + permissions)", n, user_definitions, warm)
    for who in (f"{PREFIX}d.{warm}", f"{PREFIX}s.{warm}"):
        limits = api.json(f"user-limits/{q(who)}")
        perms = api.json(f"permissions/{q(dvh)}/{q(who)}")
        if not limits or limits[0]["value"] != {"max-connections": 5, "max-channels": 6} or not perms:
            raise RuntimeError(f"user {who}: limits {limits} permissions {perms}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker-env", required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    env = B.read_broker_env(args.broker_env)
    port = int(env["BROKER_MGMT_PORT"])
    pid = int(B.sh(["pgrep", "-s", env["BROKER_PID"], "beam.smp"]).split()[0])
    n, n_small = args.count, max(20, args.count // 4)

    cleanup(port)  # leftovers of an interrupted run
    api = Api(port)
    version = json.loads(api.call("GET", "overview?disable_stats=true"))["rabbitmq_version"]
    for _ in range(20):  # warm-up of the connection and the handler
        api.call("GET", "overview?disable_stats=true")
    c0, t0 = B.cpu_seconds(pid), time.monotonic()
    time.sleep(1.0)
    idle = (B.cpu_seconds(pid) - c0) * 1000 / (time.monotonic() - t0)
    meter = Meter(pid)
    started = time.monotonic()
    log(f"RabbitMQ {version} on port {port}, beam.smp {pid}: {n} calls per kind ({n_small} for vhost rows)")
    try:
        run(api, meter, n, n_small)
    finally:
        api.close()
        log("removing callcost.* objects")
        cleanup(port)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    text = (f"Management API call costs, RabbitMQ {version} ({env.get('BROKER_NODENAME', '?')}), "
            f"{os.cpu_count()} CPUs, sequential on one keep-alive connection; broker idle CPU before the run "
            f"{idle:.1f} ms/s, load average {load}, {time.monotonic() - started:.0f} s measured.\n\n"
            + meter.table() + "\n")
    print(text, end="")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

"""A noisy neighbour: one tenant floods the broker with everything its own full credentials
allow, while another tenant on the same node goes about its business.

The suite runs its own private RabbitMQ node (scripts/broker.sh, the release of the session's
broker) with a LOW absolute memory watermark: the node's idle use plus HEADROOM. And its own
warren, with small ceilings (WARREN_CEILING_*), two environments per team and a janitor that
sweeps every two seconds. The ceilings are chosen so that a team's worst case (environments x
bytes per environment, plus its connections) stays well below HEADROOM, while the flood is
sized so that, if a ceiling did NOT hold, it would take the node past its watermark within
seconds (FLOOD_BUDGET_BYTES > HEADROOM): a missing ceiling shows up as a memory alarm, a
blocked publisher, or a refusal that never came.

Tenant A (team-a) floods, with its own environments' credentials: connections past the user's
and the vhost's limits, channels past the user's limit, queues past max_queues, messages past
the queue ceilings (bytes and length) into Warren's queue and into queues it declares itself,
a message past the node's max_message_size, publishes to Warren's claim queue, credential
rotations past the users ceiling (403) and the team's rotations per minute (429), a create
above each ceiling (400) and past the team's quota (403), and a force-delete of an environment
with as many users as it may have.

Tenant B (team-b), meanwhile, in threads: publishes with confirms into its own environment
(every publish must be acked), creates and deletes an environment, and rotates with a
revocation due a few seconds later (the old password must stop working on time).

A monitor polls the node (GET /api/nodes) throughout: no memory or disk alarm.

Timing bounds are generous (a busy CI machine): they bound what must happen, never how fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pika
import pika.exceptions
import pytest
import requests

from warren_support import (MIB, Api, Mgmt, WarrenProcess, amqp_params, assert_problem,
                            parse_env_file, seg, tail, wait_for)

REPO = Path(__file__).resolve().parent.parent.parent
BROKER_SH = REPO / "scripts" / "broker.sh"

CLAIM = "warren.claim"
HEADROOM = 256 * MIB            # watermark = the node's idle memory + this
FLOOD_BUDGET_BYTES = 320 * MIB  # what a flood may send before "never refused" is a failure
MAX_MESSAGE_SIZE = 4 * MIB      # the node's max_message_size
BIG = 1 * MIB                   # the flood's message size
SWEEP_SECONDS = 2
REVOKE_AFTER = 4

CEILINGS = {
    "connections": 6,           # per environment (vhost max-connections)
    "queues": 6,                # per environment (vhost max-queues), the claim queue included
    "environment_bytes": 16 * MIB,
    "queue_length": 500,
    "user_connections": 4,
    "user_channels": 4,
    "users": 5,
    "rotations_per_minute": 6,
}
ENVIRONMENTS_PER_TEAM = 2
# A team's worst case: every environment full, every connection open (generously 2 MiB each).
TEAM_WORST_CASE = ENVIRONMENTS_PER_TEAM * (CEILINGS["environment_bytes"] + CEILINGS["connections"] * 2 * MIB)
assert 2 * TEAM_WORST_CASE < HEADROOM / 2, "the ceilings must keep both teams well below the watermark"
assert FLOOD_BUDGET_BYTES > HEADROOM, "without ceilings the flood must be able to reach the watermark"

AMQP_REFUSED = (pika.exceptions.AMQPConnectionError,)


# --------------------------------------------------------------------------------------------
# the private broker and warren


class PrivateBroker:
    """A node of its own, started by scripts/broker.sh with a memory watermark."""

    def __init__(self, directory: Path, release: str):
        self.dir = directory
        self.release = release
        self.env: dict[str, str] = {}

    def start(self, watermark: int) -> "PrivateBroker":
        env = dict(os.environ, WARREN_BROKER_RELEASE=self.release,
                   BROKER_MEMORY_WATERMARK=str(watermark), BROKER_MAX_MESSAGE_SIZE=str(MAX_MESSAGE_SIZE))
        for var in ("BROKER_DISK_LIMIT", "BROKER_MGMT_TLS_DIR", "BROKER_MGMT_TLS_PORT"):
            env.pop(var, None)
        done = subprocess.run([str(BROKER_SH), "start", str(self.dir)], env=env, capture_output=True,
                              text=True, timeout=180)
        if done.returncode != 0:
            pytest.fail(f"scripts/broker.sh start {self.dir} failed ({done.returncode}):\n"
                        f"{done.stderr[-3000:]}", pytrace=False)
        self.env = parse_env_file(self.dir / "broker.env")
        assert self.env.get("BROKER_MEMORY_WATERMARK") == str(watermark), self.env
        return self

    def stop(self) -> None:
        subprocess.run([str(BROKER_SH), "stop", str(self.dir)], capture_output=True, timeout=60)

    @property
    def url(self) -> str:
        return self.env["WARREN_MANAGEMENT_URL"]

    @property
    def amqp_port(self) -> int:
        return int(self.env["BROKER_AMQP_PORT"])

    def node(self) -> dict:
        resp = requests.get(f"{self.url}/api/nodes", auth=("guest", "guest"), timeout=15)
        assert resp.status_code == 200, resp.text[:300]
        return resp.json()[0]

    def node_stats(self, timeout: float = 60) -> dict:
        """The node's entry once it carries memory figures (the first seconds it has none)."""
        return wait_for(lambda: (lambda n: n if n.get("mem_used") is not None else None)(self.node()),
                        timeout=timeout, interval=0.5, what="the node reports mem_used")


def _idle_memory(url: str) -> int | None:
    try:
        nodes = requests.get(f"{url}/api/nodes", auth=("guest", "guest"), timeout=10).json()
        return int(nodes[0]["mem_used"])
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
        return None


@pytest.fixture(scope="module")
def broker(settings, tmp_path_factory, report):
    release = settings.broker.get("BROKER_RELEASE") or os.environ.get("WARREN_BROKER_RELEASE", "3.10")
    node = PrivateBroker(tmp_path_factory.mktemp("noisy-broker"), release)
    # First guess: the session broker of the same release (it has served other tests, so it
    # is, if anything, above idle); then set the watermark from this node's own idle figure.
    guess = (_idle_memory(settings.management_url) or 200 * MIB) + HEADROOM
    node.start(guess)
    try:
        time.sleep(3)  # let start-up allocations settle
        idle = int(node.node_stats()["mem_used"])
        headroom = int(node.node()["mem_limit"]) - idle
        # Within reach of one flood (else a missing ceiling might show as "never refused" only).
        if not (HEADROOM * 3 // 4 <= headroom <= FLOOD_BUDGET_BYTES):
            node.stop()
            node.start(idle + HEADROOM)
            idle = int(node.node_stats()["mem_used"])
        stats = node.node()
        report("noisy", f"private RabbitMQ {node.env.get('BROKER_VERSION')} ({release}): idle mem_used "
                        f"{idle / MIB:.0f} MiB, watermark {int(stats['mem_limit']) / MIB:.0f} MiB, "
                        f"disk_free_limit {int(stats['disk_free_limit']) / MIB:.0f} MiB")
        assert not stats["mem_alarm"] and not stats["disk_free_alarm"], f"alarm at idle: {stats}"
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def noisy_warren(settings, broker, tokens_file, workdir):
    env = {
        "WARREN_MANAGEMENT_URL": broker.url,
        "WARREN_MANAGEMENT_USER": "guest",
        "WARREN_MANAGEMENT_PASSWORD": "guest",
        "WARREN_AMQP_HOST": "127.0.0.1",
        "WARREN_AMQP_PORT": str(broker.amqp_port),
        "WARREN_TOKENS_FILE": str(tokens_file),
        "WARREN_MAX_ENVIRONMENTS_PER_TEAM": str(ENVIRONMENTS_PER_TEAM),
        "WARREN_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS),
        **{f"WARREN_CEILING_{key.upper()}": str(value) for key, value in CEILINGS.items()},
    }
    proc = WarrenProcess(settings.warren_bin, env, workdir, "noisy").start()
    yield proc
    proc.stop_cleanly()


@pytest.fixture(scope="module")
def pmgmt(broker) -> Mgmt:
    return Mgmt(broker.url)


@pytest.fixture
def apis(noisy_warren, tokens):
    # No OpenAPI check here: this file checks behaviour (a contract lag must not hide it).
    return {team: Api(noisy_warren.url, token) for team, token in tokens.items()}


@pytest.fixture
def names(pmgmt):
    """Fresh environment names; whatever they left on the private broker is removed after."""
    made: list[str] = []

    def make(label: str) -> str:
        name = f"noisy-{label}-{secrets.token_hex(3)}"
        made.append(name)
        return name

    yield make
    for name in made:
        for team in ("team-a", "team-b"):
            pmgmt.purge_environment(f"warren.{team}.{name}")


# --------------------------------------------------------------------------------------------
# AMQP helpers


def params(env: dict, creds: dict | None = None, **overrides):
    c, creds = env["connection"], creds or env["credentials"]
    p = amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"])
    for key, value in overrides.items():
        setattr(p, key, value)
    return p


def connect(env: dict, creds: dict | None = None, **overrides) -> pika.BlockingConnection:
    return pika.BlockingConnection(params(env, creds, **overrides))


def guest_params(broker: PrivateBroker, vhost: str):
    return amqp_params("127.0.0.1", broker.amqp_port, vhost, "guest", "guest")


def depth(broker: PrivateBroker, vhost: str, queue: str) -> int:
    """The queue's message count as the queue itself says (passive declare, as guest): exact
    and immediate, unlike the management API's sampled statistics."""
    conn = pika.BlockingConnection(guest_params(broker, vhost))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def stats_depth(mgmt: Mgmt, vhost: str, queue: str) -> int | None:
    info = mgmt.queue(vhost, queue)
    return None if info is None else info.get("messages")


def close_quietly(*conns) -> None:
    for conn in conns:
        try:
            if conn.is_open:
                conn.close()
        except (pika.exceptions.AMQPError, OSError):
            pass


def flood(channel, exchange: str, routing_key: str, size: int, budget_bytes: int) -> tuple[int, str]:
    """Publishes `size`-byte messages with confirms until the broker refuses one (nack) or
    `budget_bytes` are sent; returns (accepted count, how it ended)."""
    body = b"x" * size
    accepted = 0
    while accepted * size < budget_bytes:
        try:
            channel.basic_publish(exchange, routing_key, body, mandatory=True,
                                  properties=pika.BasicProperties(delivery_mode=2))
        except pika.exceptions.NackError:
            return accepted, "nack"
        except pika.exceptions.UnroutableError:
            return accepted, "unroutable"
        except pika.exceptions.AMQPError as e:
            return accepted, f"{type(e).__name__}: {e!r}"[:300]
        accepted += 1
    return accepted, "never refused"


# --------------------------------------------------------------------------------------------
# background: the node's alarms, and tenant B


class AlarmMonitor(threading.Thread):
    def __init__(self, broker: PrivateBroker):
        super().__init__(daemon=True)
        self.broker = broker
        self.stop_event = threading.Event()
        self.alarms: list[str] = []
        self.errors: list[str] = []
        self.samples = 0
        self.peak = 0
        self.limit = 0

    def run(self):
        while not self.stop_event.is_set():
            try:
                node = self.broker.node()
                if node.get("mem_used") is not None:
                    self.samples += 1
                    self.peak = max(self.peak, int(node["mem_used"]))
                    self.limit = int(node["mem_limit"])
                if node.get("mem_alarm") or node.get("disk_free_alarm"):
                    self.alarms.append(f"mem_alarm={node.get('mem_alarm')} disk_free_alarm="
                                       f"{node.get('disk_free_alarm')} mem_used={node.get('mem_used')}")
            except (requests.RequestException, AssertionError, ValueError) as e:
                self.errors.append(repr(e)[:200])
            self.stop_event.wait(0.5)


class Publisher(threading.Thread):
    """Tenant B's producer: publishes with confirms, its consumer drains, until stopped."""

    def __init__(self, env: dict):
        super().__init__(daemon=True)
        self.env = env
        self.stop_event = threading.Event()
        self.acked = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self.longest_gap = 0.0

    def run(self):
        env = self.env
        producer, consumer = env["role_credentials"]["producer"], env["role_credentials"]["consumer"]
        try:
            pconn = connect(env, producer, blocked_connection_timeout=30)
            cconn = connect(env, consumer)
        except pika.exceptions.AMQPError as e:
            self.failures.append(f"B cannot connect: {e!r}")
            return
        try:
            pch, cch = pconn.channel(), cconn.channel()
            pch.confirm_delivery()
            last = time.monotonic()
            i = 0
            while not self.stop_event.is_set():
                i += 1
                started = time.monotonic()
                try:
                    pch.basic_publish(env["exchange"]["name"], env["routing_key"], f"b-{i}".encode() * 64,
                                      mandatory=True, properties=pika.BasicProperties(delivery_mode=2))
                except pika.exceptions.AMQPError as e:
                    self.failures.append(f"publish {i}: {type(e).__name__}: {e!r}"[:300])
                    return
                now = time.monotonic()
                self.acked += 1
                self.latencies.append(now - started)
                self.longest_gap = max(self.longest_gap, now - last)
                last = now
                if i % 20 == 0:  # drain, so B stays far below its own ceilings
                    while cch.basic_get(env["queue"]["name"], auto_ack=True)[0] is not None:
                        pass
                time.sleep(0.02)
        except pika.exceptions.AMQPError as e:
            self.failures.append(f"consumer: {type(e).__name__}: {e!r}"[:300])
        finally:
            close_quietly(pconn, cconn)


class TenantB(threading.Thread):
    """Tenant B's calls: create and delete an environment, rotate with a revocation due."""

    def __init__(self, api: Api, env: dict, spare_name: str):
        super().__init__(daemon=True)
        self.api, self.env, self.spare_name = api, env, spare_name
        self.calls: list[tuple[str, int, str]] = []
        self.problems: list[str] = []
        self.revoked_after: float | None = None

    def call(self, what: str, resp: requests.Response, expect: tuple[int, ...]) -> requests.Response:
        self.calls.append((what, resp.status_code, resp.text[:300]))
        if resp.status_code not in expect:
            self.problems.append(f"B {what}: {resp.status_code} {resp.text[:300]}")
        return resp

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the test
            self.problems.append(f"B's thread raised {type(e).__name__}: {e!r}"[:500])

    def _run(self):
        api, env = self.api, self.env
        spare = self.call("create", api.create({"name": self.spare_name, "queue": {"type": "classic"}}), (201,))
        if spare.status_code == 201:
            conn = connect(spare.json())
            conn.close()
            self.call("delete", api.delete(self.spare_name), (204, 202))
        self.call("get", api.get(env["id"]), (200,))
        old = env["credentials"]
        rotated = self.call("rotate", api.request(
            "POST", f"/v1/environments/{env['id']}/credentials",
            json_body={"revoke_others_after_seconds": REVOKE_AFTER}), (201,))
        if rotated.status_code != 201:
            return
        at = time.monotonic()
        new = rotated.json()["credentials"]
        # Generous: the delay, two sweeps, and a busy machine's margin.
        deadline = REVOKE_AFTER + 2 * SWEEP_SECONDS + 30
        while True:
            try:
                connect(env, old).close()
                refused = False
            except AMQP_REFUSED:
                refused = True
            if refused:
                self.revoked_after = time.monotonic() - at
                break
            if time.monotonic() - at > deadline:
                self.problems.append(f"B's old password still works {deadline} s after a rotation "
                                     f"that revoked it after {REVOKE_AFTER} s")
                break
            time.sleep(0.5)
        # Not early either: the due time is written in whole seconds (up to 1 s early), and
        # the poll and the login take their time (which only makes this later).
        if self.revoked_after is not None and self.revoked_after < REVOKE_AFTER - 1.5:
            self.problems.append(f"B's old password stopped working {self.revoked_after:.1f} s after a "
                                 f"rotation that revoked it after {REVOKE_AFTER} s")
        try:
            connect(env, new).close()
        except pika.exceptions.AMQPError as e:
            self.problems.append(f"B's new credentials do not work: {e!r}")
        self.call("list", api.list(), (200,))


# --------------------------------------------------------------------------------------------
# tenant A's flood, step by step (each returns what went wrong, empty when all held)


def refusal_of_creates(api: Api, name: str) -> list[str]:
    """Creates asking above each ceiling, or for unlimited: 400 naming the ceiling. One that is
    made anyway is reported and deleted (so the team's quota is not spent on it)."""
    problems = []
    asks = {
        "limits.max_connections": {"max_connections": CEILINGS["connections"] + 1},
        "limits.max_queues": {"max_queues": CEILINGS["queues"] + 1},
        "limits.max_bytes": {"max_bytes": CEILINGS["environment_bytes"] + 1},
    }

    def undo(resp: requests.Response) -> None:
        if resp.status_code == 201:
            api.request("DELETE", f"/v1/environments/{name}?force=true")

    for field, limits in asks.items():
        resp = api.create({"name": name, "limits": limits})
        undo(resp)
        try:
            body = assert_problem(resp, 400, "invalid-field")
            named = [e for e in body.get("errors") or [] if e.get("field") == field]
            if not named or "ceiling" not in named[0].get("reason", ""):
                problems.append(f"create asking {limits}: 400 without naming the ceiling of {field}: {body}")
        except AssertionError as e:
            problems.append(f"create asking {limits}: {e}")
    for field in ("max_connections", "max_queues", "max_bytes"):
        resp = api.create({"name": name, "limits": {field: -1}})
        undo(resp)
        if resp.status_code != 400:
            problems.append(f"create asking {field}=-1 (unlimited): {resp.status_code} {resp.text[:300]}")
    return problems


def expected_limits() -> dict:
    c = CEILINGS
    return {"max_queues": c["queues"], "max_connections": c["connections"], "max_bytes": c["environment_bytes"],
            "max_queue_bytes": c["environment_bytes"] // c["queues"], "max_queue_length": c["queue_length"],
            "max_users": c["users"], "max_user_connections": min(c["user_connections"], c["connections"]),
            "max_user_channels": c["user_channels"]}


def flood_connections(env: dict, log) -> tuple[list[str], list]:
    """The full user up to its connection limit, then the producer up to the vhost's."""
    problems, held = [], []
    limits = env["limits"]

    def open_until_refused(creds, most: int):
        opened, refusal = 0, None
        for _ in range(most):
            try:
                held.append(connect(env, creds))
                opened += 1
            except AMQP_REFUSED as e:
                refusal = e
                break
        return opened, refusal

    full_opened, full_refusal = open_until_refused(env["credentials"], limits["max_user_connections"] + 3)
    log(f"A full user: {full_opened} connections, then {full_refusal!r}"[:300])
    if full_opened != limits["max_user_connections"] or full_refusal is None:
        problems.append(f"the full user opened {full_opened} connections (user limit "
                        f"{limits['max_user_connections']}), refusal: {full_refusal!r}")
    room = limits["max_connections"] - full_opened
    producer = env["role_credentials"]["producer"]
    p_opened, p_refusal = open_until_refused(producer, room + 3)
    log(f"A producer: {p_opened} more connections (vhost limit {limits['max_connections']}), then {p_refusal!r}"[:300])
    if full_opened + p_opened != limits["max_connections"] or p_refusal is None:
        problems.append(f"the vhost took {full_opened + p_opened} connections (limit {limits['max_connections']}), "
                        f"refusal: {p_refusal!r}")
    return problems, held


def flood_channels(env: dict, log) -> list[str]:
    limit = env["limits"]["max_user_channels"]
    conn = connect(env)
    opened, refusal = 0, None
    try:
        for _ in range(limit + 3):
            try:
                conn.channel()
                opened += 1
            except pika.exceptions.AMQPError as e:
                refusal = e
                break
    finally:
        close_quietly(conn)
    log(f"A channels: {opened} opened (user limit {limit}), then {refusal!r}"[:300])
    if opened != limit or refusal is None:
        return [f"the full user opened {opened} channels (limit {limit}), refusal: {refusal!r}"]
    return []


def flood_queues(env: dict, pmgmt: Mgmt, log) -> tuple[list[str], list[str]]:
    """Declares classic queues until refused; returns (problems, the queues declared)."""
    limit = env["limits"]["max_queues"]
    vhost = env["vhost"]
    existing = len(pmgmt.get_json(f"queues/{seg(vhost)}?columns=name") or [])
    conn = connect(env)
    declared, refusal = [], None
    try:
        for i in range(limit + 3):
            ch = conn.channel()
            name = f"own-{i}"
            try:
                ch.queue_declare(name, durable=True, arguments={"x-queue-type": "classic"})
                declared.append(name)
                ch.close()
            except pika.exceptions.ChannelClosedByBroker as e:
                refusal = e
                break
    finally:
        close_quietly(conn)
    total = len(pmgmt.get_json(f"queues/{seg(vhost)}?columns=name") or [])
    log(f"A queues: {existing} by Warren, {len(declared)} declared, then {refusal!r}; {total} on the broker"[:300])
    problems = []
    if refusal is None or total != limit or existing + len(declared) != limit:
        problems.append(f"max_queues {limit}: Warren made {existing}, the tenant {len(declared)}, the broker "
                        f"holds {total}; refusal: {refusal!r}")
    elif refusal.reply_code != 406:
        problems.append(f"the queue past max_queues was refused with {refusal.reply_code}, expected 406")
    return problems, declared


def flood_bytes(env: dict, own_queue: str, length_queue: str, broker: PrivateBroker, log) -> list[str]:
    limits = env["limits"]
    vhost = env["vhost"]
    problems = []
    conn = connect(env, blocked_connection_timeout=30)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        targets = {"Warren's queue": (env["exchange"]["name"], env["routing_key"], env["queue"]["name"]),
                   "the tenant's own queue": ("", own_queue, own_queue)}
        for what, (exchange, key, queue) in targets.items():
            accepted, ended = flood(ch, exchange, key, BIG, FLOOD_BUDGET_BYTES)
            held = depth(broker, vhost, queue)
            log(f"A {BIG // MIB} MiB messages into {what}: {accepted} accepted, then {ended}; depth {held}")
            if ended != "nack":
                problems.append(f"{what}: {accepted} x {BIG} bytes accepted, then {ended} (expected a nack at "
                                f"max_queue_bytes {limits['max_queue_bytes']})")
            elif accepted * BIG > limits["max_queue_bytes"] + BIG:
                problems.append(f"{what}: {accepted * BIG} bytes accepted, over max_queue_bytes "
                                f"{limits['max_queue_bytes']} by more than one message")
            if held != accepted:
                problems.append(f"{what}: {accepted} publishes confirmed, the queue holds {held}")
        accepted, ended = flood(ch, "", length_queue, 64, FLOOD_BUDGET_BYTES)
        held = depth(broker, vhost, length_queue)
        log(f"A 64-byte messages into {length_queue}: {accepted} accepted, then {ended}; depth {held}")
        if ended != "nack" or not (limits["max_queue_length"] <= accepted <= limits["max_queue_length"] + 1):
            problems.append(f"queue length: {accepted} accepted, then {ended} (max_queue_length "
                            f"{limits['max_queue_length']})")
        if held != accepted:
            problems.append(f"queue length: {accepted} publishes confirmed, the queue holds {held}")
    finally:
        close_quietly(conn)

    # A message past the node's max_message_size.
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        before = depth(broker, vhost, length_queue)
        try:
            ch.basic_publish("", length_queue, b"y" * (MAX_MESSAGE_SIZE + MIB))
            outcome = "accepted"
        except pika.exceptions.AMQPError as e:
            outcome = f"{type(e).__name__}: {e!r}"[:300]
        log(f"A message of {(MAX_MESSAGE_SIZE + MIB) // MIB} MiB (node max {MAX_MESSAGE_SIZE // MIB} MiB): {outcome}")
        if outcome == "accepted":
            problems.append("a message above the node's max_message_size was accepted")
        if depth(broker, vhost, length_queue) != before:
            problems.append("a message above max_message_size was stored")
    finally:
        close_quietly(conn)
    return problems


def flood_claim(env: dict, broker: PrivateBroker, pmgmt: Mgmt, control_queue: str, log) -> list[str]:
    """Publishes to warren.claim (default exchange), with and without confirms; nothing may be
    stored. Control: messages published to a queue of the tenant's beside it are counted by the
    management API, so its statistics have caught up when the claim's are read."""
    vhost = env["vhost"]
    problems = []
    outcomes = []
    conn = connect(env)
    try:
        for confirm in (True, False):
            ch = conn.channel()
            if confirm:
                ch.confirm_delivery()
            for i in range(5):
                try:
                    ch.basic_publish("", CLAIM, f"forged-{i}".encode(), mandatory=confirm)
                    outcomes.append("accepted" if confirm else "sent")
                except pika.exceptions.AMQPError as e:
                    outcomes.append(type(e).__name__)
                    break
            if ch.is_open:
                ch.close()
        ch = conn.channel()
        ch.queue_purge(control_queue)
        for i in range(3):
            ch.basic_publish("", control_queue, b"control")
    finally:
        close_quietly(conn)
    log(f"A publishes to {CLAIM}: {outcomes}")
    if "accepted" in outcomes:
        problems.append(f"a publish to {CLAIM} with confirms was acked: {outcomes}")
    held = depth(broker, vhost, CLAIM)
    if held != 0:
        problems.append(f"{CLAIM} holds {held} messages")
    wait_for(lambda: stats_depth(pmgmt, vhost, control_queue) == 3, timeout=60, interval=1,
             what="the management API's statistics show the control queue's 3 messages")
    counted = stats_depth(pmgmt, vhost, CLAIM)
    log(f"{CLAIM}: {held} messages (queue), {counted} (management statistics)")
    if counted != 0:
        problems.append(f"the management API counts {counted} messages in {CLAIM}")
    return problems


def flood_rotations(api: Api, env: dict, other: dict, log) -> list[str]:
    """Rotates in `env` until refused (expected: 403, its users ceiling), then in `other`, revoking
    at once so users never run out, until refused (expected: 429 with Retry-After)."""
    problems = []
    for target, revoke, expected in ((env, None, (403, "quota-exceeded")), (other, 0, (429, "rate-limited"))):
        statuses = []
        refusal = None
        for _ in range(20):
            body = {} if revoke is None else {"revoke_others_after_seconds": revoke}
            resp = api.request("POST", f"/v1/environments/{target['id']}/credentials", json_body=body)
            statuses.append(resp.status_code)
            if resp.status_code != 201:
                refusal = resp
                break
        log(f"A rotations in {target['id']}: {statuses}")
        if refusal is None:
            problems.append(f"20 rotations in {target['id']} were never refused")
            continue
        try:
            assert_problem(refusal, *expected)
        except AssertionError as e:
            problems.append(f"rotations in {target['id']}: {e}")
            continue
        if expected[0] == 429:
            retry = refusal.headers.get("Retry-After", "")
            if not retry.isdigit() or int(retry) < 1:
                problems.append(f"429 without a Retry-After of whole seconds: {retry!r}")
    return problems


# --------------------------------------------------------------------------------------------
# the scenario


def test_a_noisy_tenant_cannot_hurt_its_neighbour(broker, noisy_warren, pmgmt, apis, names, report):
    api_a, api_b = apis["team-a"], apis["team-b"]
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        report("noisy", line)

    def step(what: str, fn, *args):
        """One step of A's flood; an exception is a problem of its own, so the steps after it,
        B's results and the node's alarms are still reported."""
        try:
            return fn(*args)
        except Exception as e:
            problems.append(f"A's {what} step raised {type(e).__name__}: {e!r}"[:500])
            return [] if what not in ("connections", "queues") else None

    monitor = AlarmMonitor(broker)
    monitor.start()
    problems: list[str] = []
    held: list = []
    try:
        # B first, so it is working when A starts.
        env_b = api_b.create_ok({"name": names("b"), "queue": {"type": "classic"},
                                 "roles": ["producer", "consumer"]})
        publisher = Publisher(env_b)
        publisher.start()
        tenant_b = TenantB(api_b, env_b, names("b-spare"))
        tenant_b.start()
        started = time.monotonic()

        # A: creates above every ceiling, then its two environments, then one too many.
        problems += step("creates above the ceilings", refusal_of_creates, api_a, names("a-over"))
        name_a = names("a")
        env_a = api_a.create_ok({"name": name_a, "queue": {"type": "classic"}, "roles": ["producer"]})
        if env_a.get("limits") != expected_limits():
            problems.append(f"limits in force {env_a.get('limits')}, expected {expected_limits()}")
        env_a["limits"] = {**expected_limits(), **(env_a.get("limits") or {})}
        env_a2 = api_a.create_ok({"name": names("a2"), "queue": {"type": "classic"}})
        over = api_a.create({"name": names("a3")})
        try:
            assert_problem(over, 403, "quota-exceeded")
        except AssertionError as e:
            problems.append(f"a third environment of team-a: {e}")

        found, held = step("connections", flood_connections, env_a, log) or ([], [])
        problems += found
        time.sleep(1)  # B works beside A's connections
        close_quietly(*held)
        wait_for(lambda: not [c for c in pmgmt.get_json(f"vhosts/{seg(env_a['vhost'])}/connections") or []],
                 timeout=30, interval=0.5, what="A's connections are gone")
        problems += step("channels", flood_channels, env_a, log)
        found, declared = step("queues", flood_queues, env_a, pmgmt, log) or ([], [])
        problems += found
        if len(declared) >= 3:
            problems += step("bytes", flood_bytes, env_a, declared[0], declared[1], broker, log)
            problems += step("claim", flood_claim, env_a, broker, pmgmt, declared[2], log)
        else:
            problems.append(f"only {len(declared)} own queues: the byte, length and claim floods did not run")
        problems += step("rotations", flood_rotations, api_a, env_a, env_a2, log)

        # Force-delete A's environment with as many users as it may have (and full queues).
        users = pmgmt.users_with_prefix(env_a["vhost"] + ".")
        log(f"A force-deletes {env_a['id']} with {len(users)} users (ceiling {env_a['limits']['max_users']})")
        if len(users) != env_a["limits"]["max_users"]:
            problems.append(f"{env_a['id']} has {len(users)} users before its force-delete, "
                            f"expected the ceiling {env_a['limits']['max_users']}")
        gone = api_a.request("DELETE", f"/v1/environments/{env_a['id']}?force=true")
        if gone.status_code != 204:
            problems.append(f"force-delete: {gone.status_code} {gone.text[:300]}")
        elif pmgmt.vhost(env_a["vhost"]) is not None or pmgmt.users_with_prefix(env_a["vhost"] + "."):
            problems.append(f"force-delete left {env_a['vhost']} or its users on the broker")
        flood_seconds = time.monotonic() - started

        tenant_b.join(120)
        if tenant_b.is_alive():
            problems.append("B's calls did not finish within 120 s of A's flood")
        time.sleep(2)  # B keeps publishing a little after the flood
    finally:
        close_quietly(*held)
        if "publisher" in locals():
            publisher.stop_event.set()
            publisher.join(30)
        monitor.stop_event.set()
        monitor.join(10)

    lat = sorted(publisher.latencies) or [0.0]
    log(f"B: {publisher.acked} publishes, all acked: {not publisher.failures}; confirm latency median "
        f"{lat[len(lat) // 2] * 1000:.1f} ms, max {lat[-1] * 1000:.0f} ms; longest gap between acks "
        f"{publisher.longest_gap:.2f} s; A's flood took {flood_seconds:.1f} s")
    log(f"B: revocation {REVOKE_AFTER} s after the rotation took effect after "
        + (f"{tenant_b.revoked_after:.1f} s" if tenant_b.revoked_after is not None else "never")
        + f"; calls {[(w, s) for w, s, _ in tenant_b.calls]}")
    log(f"node: {monitor.samples} samples, peak mem_used {monitor.peak / MIB:.0f} MiB of a "
        f"{monitor.limit / MIB:.0f} MiB watermark, alarms: {monitor.alarms[:3] or 'none'}")

    problems += publisher.failures
    problems += tenant_b.problems
    if publisher.acked < 20:
        problems.append(f"B's publisher got only {publisher.acked} acks: it did not keep flowing")
    if publisher.longest_gap > 20:
        problems.append(f"B waited {publisher.longest_gap:.1f} s between two acks (bound 20 s)")
    if monitor.alarms:
        problems.append(f"the node raised a resource alarm: {monitor.alarms[:3]}")
    if monitor.samples < 3:
        problems.append(f"the alarm monitor got only {monitor.samples} samples: {monitor.errors[:3]}")
    if not noisy_warren.running:
        problems.append(f"warren died:\n{tail(noisy_warren.log_path)}")
    assert not problems, "\n".join(problems) + "\n\nwhat happened:\n  " + "\n  ".join(lines)
    # Clean up the survivors through Warren (the names fixture purges whatever is left).
    for api, env in ((api_a, env_a2), (api_b, env_b)):
        api.request("DELETE", f"/v1/environments/{env['id']}?force=true")


# --------------------------------------------------------------------------------------------
# an environment made before ceilings existed


def strip_ceilings(pmgmt: Mgmt, vhost: str) -> None:
    """What an environment made before ceilings has: no operator policies, no overflow policy,
    unlimited vhost limits."""
    for policy in pmgmt.get_json(f"operator-policies/{seg(vhost)}") or []:
        pmgmt.delete(f"operator-policies/{seg(vhost)}/{seg(policy['name'])}", missing_ok=False)
    pmgmt.delete(f"policies/{seg(vhost)}/{seg('warren.overflow')}")
    for name in ("max-queues", "max-connections"):
        pmgmt.put_json(f"vhost-limits/{seg(vhost)}/{name}", {"value": -1})


def ceilings_in_place(pmgmt: Mgmt, env: dict) -> list[str]:
    vhost = env["vhost"]
    limits = env["limits"]
    missing = []
    ops = {p["name"]: p for p in pmgmt.get_json(f"operator-policies/{seg(vhost)}") or []}
    ceiling = ops.get("warren.ceiling")
    if ceiling is None:
        missing.append(f"no operator policy warren.ceiling (have {sorted(ops)})")
    elif (ceiling["definition"].get("max-length") != limits["max_queue_length"]
          or ceiling["definition"].get("max-length-bytes") != limits["max_queue_bytes"]):
        missing.append(f"warren.ceiling is {ceiling['definition']}")
    if "warren.own" not in ops:
        missing.append("no operator policy warren.own")
    if pmgmt.get_json(f"policies/{seg(vhost)}/{seg('warren.overflow')}") is None:
        missing.append("no overflow policy warren.overflow")
    found = (pmgmt.get_json(f"vhost-limits/{seg(vhost)}") or [{}])[0].get("value", {})
    if found.get("max-queues") != limits["max_queues"] or found.get("max-connections") != limits["max_connections"]:
        missing.append(f"vhost limits {found}")
    return missing


@contextlib.contextmanager
def janitor_held(warren: WarrenProcess):
    """The warren stopped (SIGSTOP) for the block: its janitor, every SWEEP_SECONDS, would put
    the ceilings back while the block sets an environment up as an earlier Warren left it."""
    os.kill(warren.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(warren.proc.pid, signal.SIGCONT)


def over_the_ceiling(broker: PrivateBroker, pmgmt: Mgmt, api: Api, warren: WarrenProcess, name: str) -> tuple[dict, int]:
    """An environment without ceilings whose queue holds more than the queue ceiling."""
    env = api.create_ok({"name": name, "queue": {"type": "classic"}})
    assert not ceilings_in_place(pmgmt, env), ceilings_in_place(pmgmt, env)
    with janitor_held(warren):
        return env, strip_and_fill(broker, pmgmt, env)


def strip_and_fill(broker: PrivateBroker, pmgmt: Mgmt, env: dict) -> int:
    strip_ceilings(pmgmt, env["vhost"])
    queue = env["queue"]["name"]
    wait_for(lambda: (pmgmt.queue(env["vhost"], queue) or {}).get("operator_policy") in (None, ""),
             timeout=30, interval=0.5, what="the queue has no operator policy")
    count = env["limits"]["max_queue_length"] + 100
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        accepted, ended = flood(ch, env["exchange"]["name"], env["routing_key"], 32, count * 32)
    finally:
        close_quietly(conn)
    assert (accepted, ended) == (count, "never refused"), (
        f"control: without its ceilings the queue should take {count} messages, took {accepted} ({ended})")
    assert depth(broker, env["vhost"], queue) == count
    return count


def assert_ceilings_back_without_loss(broker: PrivateBroker, pmgmt: Mgmt, env: dict, count: int) -> None:
    vhost, queue = env["vhost"], env["queue"]["name"]
    wait_for(lambda: (pmgmt.queue(vhost, queue) or {}).get("operator_policy") == "warren.ceiling",
             timeout=30, interval=0.5, what="the queue shows the operator policy warren.ceiling")
    assert depth(broker, vhost, queue) == count, "messages were dropped when the ceilings came back"
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        accepted, ended = flood(ch, env["exchange"]["name"], env["routing_key"], 32, 32)
    finally:
        close_quietly(conn)
    assert (accepted, ended) == (0, "nack"), f"a queue over its ceiling took a publish: {accepted} {ended}"
    assert depth(broker, vhost, queue) == count, "messages were dropped after the ceilings came back"


def test_reconcile_brings_back_the_ceilings_of_an_older_environment_without_dropping(
        broker, noisy_warren, pmgmt, apis, names):
    api = apis["team-a"]
    env, count = over_the_ceiling(broker, pmgmt, api, noisy_warren, names("old-rec"))
    resp = api.request("POST", f"/v1/environments/{env['id']}/reconcile")
    assert resp.status_code == 200, resp.text[:500]
    missing = ceilings_in_place(pmgmt, env)
    assert not missing, f"after reconcile: {missing}"
    assert_ceilings_back_without_loss(broker, pmgmt, env, count)
    api.request("DELETE", f"/v1/environments/{env['id']}?force=true")


def test_the_janitor_brings_back_the_ceilings_of_an_older_environment_without_dropping(
        broker, noisy_warren, pmgmt, apis, names):
    api = apis["team-a"]
    env, count = over_the_ceiling(broker, pmgmt, api, noisy_warren, names("old-jan"))
    try:
        # Several sweeps, generously.
        deadline = time.monotonic() + 5 * SWEEP_SECONDS + 10
        while ceilings_in_place(pmgmt, env) and time.monotonic() < deadline:
            time.sleep(0.5)
        missing = ceilings_in_place(pmgmt, env)
        assert not missing, f"after {5 * SWEEP_SECONDS + 10} s of janitor sweeps: {missing}"
        assert_ceilings_back_without_loss(broker, pmgmt, env, count)
    finally:
        api.request("DELETE", f"/v1/environments/{env['id']}?force=true")

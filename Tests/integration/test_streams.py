"""Streams (`type: stream`) and super streams, on every release of the matrix.

One environment is shared by the stream tests (a stream `events` with retention, a quorum queue
beside it, producer and consumer credentials, a byte limit that makes each queue's share 1 MiB),
so the file stays short; the tests that must change the broker (the delete guard, the tenant's
own stream, super streams) make their own. What each test checks is in its docstring.

The clients are real ones: pika over AMQP (a prefetch and `x-stream-offset`, as RabbitMQ's docs
say a stream is read over AMQP 0-9-1) and rstream over the stream protocol, at the port the
answer names (`connection.stream`).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import time
from pathlib import Path

import pika
import pytest
from rstream import (AMQPMessage, ConfirmationStatus, Consumer, ConsumerOffsetSpecification, OffsetType, Producer,
                     RouteType, SuperStreamConsumer, SuperStreamProducer, amqp_decoder)

from warren_support import Api, amqp_params, assert_problem, problem_fields, wait_for

SHARE = 1 << 20  # each queue's byte share: limits.max_bytes / limits.max_queues
WAIT = 60  # deadline for what the broker does in the background (retention, statistics)


def broker_version(settings) -> tuple[int, int]:
    major, minor = settings.broker["BROKER_VERSION"].split(".")[:2]
    return int(major), int(minor)


def pika_conn(env: dict, creds: dict) -> pika.BlockingConnection:
    c = env["connection"]
    return pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"]))


def read_amqp(env: dict, creds: dict, stream: str, offset, until) -> list[bytes]:
    """Reads a stream over AMQP from `offset` (x-stream-offset) until `until(bodies)` holds
    (or the deadline, which only a broken stream reaches)."""
    conn = pika_conn(env, creds)
    got: list[bytes] = []
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=100)  # a stream refuses a consumer without a prefetch
        deadline = time.monotonic() + WAIT
        for method, _props, body in ch.consume(stream, arguments={"x-stream-offset": offset}, inactivity_timeout=1):
            if method is not None:
                got.append(body)
                ch.basic_ack(method.delivery_tag)
            if until(got) or time.monotonic() > deadline:
                break
        ch.cancel()
    finally:
        conn.close()
    return got


def stream_client(env: dict, creds: dict, cls=Producer, **kw):
    s = env["connection"]["stream"]
    return cls(s["host"], s["port"], vhost=env["vhost"], username=creds["username"], password=creds["password"], **kw)


async def publish_stream(env: dict, creds: dict, stream: str, bodies: list[bytes]) -> None:
    async with stream_client(env, creds) as producer:
        for body in bodies:
            await producer.send_wait(stream, AMQPMessage(body=body))


async def read_stream(env: dict, creds: dict, stream: str, spec: ConsumerOffsetSpecification, until) -> list[bytes]:
    """Reads a stream over the stream protocol from `spec` until `until(bodies)` holds."""
    got: list[bytes] = []
    done = asyncio.Event()

    async def on_message(msg, _context):
        got.append(bytes(msg.body) if not isinstance(msg.body, bytes) else msg.body)
        if until(got):
            done.set()

    consumer = stream_client(env, creds, Consumer)
    await consumer.start()
    try:
        await consumer.subscribe(stream, on_message, decoder=amqp_decoder, offset_specification=spec)
        try:
            await asyncio.wait_for(done.wait(), WAIT)
        except asyncio.TimeoutError:
            pass
    finally:
        await consumer.close()
    return got


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def stream_env(warren, tokens, mgmt):
    api = Api(warren.url, tokens["team-a"])
    name = f"streams-{os.getpid()}"
    env = api.create_ok({
        "name": name,
        "queues": [{"name": "events", "type": "stream", "max_age_seconds": 86400, "max_length_bytes": SHARE // 2},
                   {"name": "jobs"}],
        "limits": {"max_bytes": 4 * SHARE, "max_queues": 4},
        "roles": ["producer", "consumer"],
    })
    yield env
    api.request("DELETE", f"/v1/environments/{name}?force=true")


def test_the_answer_names_the_stream_its_retention_and_the_stream_port(stream_env, settings):
    """The queue is a stream with the retention asked; the connection names the stream
    protocol's listener (BROKER_STREAM_PORT, from the broker's own listeners) with a
    `rabbitmq-stream://` URI carrying the credentials the create issued."""
    events = next(q for q in stream_env["queues"] if q["name"] == "events")
    assert events["type"] == "stream" and events["max_age_seconds"] == 86400 and events["max_length_bytes"] == SHARE // 2
    stream = stream_env["connection"]["stream"]
    assert stream["port"] == int(settings.broker["BROKER_STREAM_PORT"]), stream
    assert stream["uri"].startswith(f"rabbitmq-stream://{stream_env['credentials']['username']}:"), stream["uri"]
    assert stream["uri"].endswith(f"/{stream_env['vhost']}")


def test_retention_and_segment_cap_are_on_the_broker(stream_env, mgmt):
    """The stream is declared with segments of at most a quarter of the byte share (retention
    acts only on whole segments), and its policy holds max-age and max-length-bytes."""
    vhost = stream_env["vhost"]

    def policy():
        q = mgmt.queue(vhost, "events")
        return q if q and q.get("effective_policy_definition", {}).get("max-age") else None

    q = wait_for(policy, WAIT, what="the stream's policy in the statistics")
    assert q["arguments"]["x-queue-type"] == "stream"
    assert q["arguments"]["x-stream-max-segment-size-bytes"] <= SHARE // 4, q["arguments"]
    d = q["effective_policy_definition"]
    assert d["max-age"] == "86400s" and d["max-length-bytes"] == SHARE // 2, d


def test_pika_publishes_through_the_exchange_and_replays_from_first_and_from_a_timestamp(stream_env):
    """The producer publishes over AMQP through the exchange; the consumer reads the stream over
    AMQP from the first offset (everything, in order) and from a timestamp taken between two
    batches (the second batch, none of the first: the batches are seconds apart, so in chunks
    of their own)."""
    creds = stream_env["role_credentials"]
    exchange = stream_env["exchange"]["name"]
    tag = f"pika-{time.time_ns()}".encode()
    first = [tag + b"-a%d" % i for i in range(5)]
    second = [tag + b"-b%d" % i for i in range(5)]

    def publish(bodies):
        conn = pika_conn(stream_env, creds["producer"])
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            for body in bodies:
                ch.basic_publish(exchange, "events", body, mandatory=True)
        finally:
            conn.close()

    publish(first)
    time.sleep(2)  # the timestamp must fall between the two batches (whole seconds on AMQP)
    between = int(time.time())
    time.sleep(1.5)
    publish(second)

    has_all = lambda got: second[-1] in got  # noqa: E731 (the stream keeps order: all came before)
    mine = [b for b in read_amqp(stream_env, creds["consumer"], "events", "first", has_all) if b.startswith(tag)]
    assert mine == first + second, mine

    # pika sends a datetime as an AMQP timestamp, which x-stream-offset takes.
    since = datetime.datetime.fromtimestamp(between)
    later = [b for b in read_amqp(stream_env, creds["consumer"], "events", since, has_all) if b.startswith(tag)]
    assert later == second, later


def test_rstream_publishes_and_replays_from_first_and_from_a_timestamp(stream_env):
    """The producer publishes over the stream protocol (write on the stream itself); the consumer
    replays from the first offset, and from a timestamp (milliseconds) taken between two
    batches."""
    creds = stream_env["role_credentials"]
    tag = f"rs-{time.time_ns()}".encode()
    first = [tag + b"-a%d" % i for i in range(5)]
    second = [tag + b"-b%d" % i for i in range(5)]
    run(publish_stream(stream_env, creds["producer"], "events", first))
    time.sleep(1)
    between = int(time.time() * 1000)
    time.sleep(1)
    run(publish_stream(stream_env, creds["producer"], "events", second))

    has_all = lambda got: second[-1] in got  # noqa: E731
    got = run(read_stream(stream_env, creds["consumer"], "events", ConsumerOffsetSpecification(OffsetType.FIRST, None), has_all))
    assert [b for b in got if b.startswith(tag)] == first + second
    got = run(read_stream(stream_env, creds["consumer"], "events", ConsumerOffsetSpecification(OffsetType.TIMESTAMP, between), has_all))
    assert [b for b in got if b.startswith(tag)] == second


def test_each_role_is_refused_what_it_may_not_do_on_a_stream(stream_env):
    """The consumer cannot publish to the stream (stream protocol) nor through the exchange
    (AMQP); the producer cannot read the stream over either protocol."""
    creds = stream_env["role_credentials"]
    with pytest.raises(Exception):
        run(publish_stream(stream_env, creds["consumer"], "events", [b"not allowed"]))
    conn = pika_conn(stream_env, creds["consumer"])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.basic_publish(stream_env["exchange"]["name"], "events", b"not allowed")
        assert refused.value.reply_code == 403
    finally:
        if conn.is_open:
            conn.close()
    with pytest.raises(Exception):
        run(read_stream(stream_env, creds["producer"], "events", ConsumerOffsetSpecification(OffsetType.FIRST, None), bool))
    conn = pika_conn(stream_env, creds["producer"])
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=10)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.basic_consume("events", lambda *a: None, arguments={"x-stream-offset": "first"})
            conn.process_data_events(time_limit=5)
        assert refused.value.reply_code == 403
    finally:
        if conn.is_open:
            conn.close()


def stream_bytes(settings, vhost: str, queue: str) -> int:
    """The bytes of a stream's files on the node's disk (a private node of broker.sh)."""
    root = Path(settings.broker["BROKER_DIR"]) / "mnesia"
    # The broker names the directory "{vhost}_{queue}_{n}" with the vhost's dots as "_".
    prefix = f"{re.sub(r'[^A-Za-z0-9_-]', '_', vhost)}_{queue}_"
    dirs = [d for d in root.glob("*/stream/*") if d.name.startswith(prefix)]
    assert len(dirs) == 1, (vhost, queue, list(root.glob("*/stream/*")))
    return sum(f.stat().st_size for f in dirs[0].iterdir() if f.is_file())


def fill(env: dict, creds: dict, queue: str, total: int, declare: dict | None = None) -> None:
    conn = pika_conn(env, creds)
    try:
        ch = conn.channel()
        if declare is not None:
            ch.queue_declare(queue, durable=True, arguments=declare)
        ch.confirm_delivery()
        body = b"x" * 10_000
        for _ in range(total // len(body)):
            ch.basic_publish("", queue, body)
    finally:
        conn.close()


def test_streams_stay_within_the_byte_ceiling_warrens_and_a_tenants_own(stream_env, settings):
    """Four times the queue's byte share written into Warren's stream, and into a stream the
    tenant declares itself with full credentials asking for 1 GB of retention and 500 MB
    segments: each ends up holding at most its share plus one segment (a quarter of the share)
    and the index files. Without Warren's segment cap both held all 4 MiB (measured)."""
    bound = SHARE + SHARE // 4 + 64 * 1024
    full = stream_env["credentials"]
    fill(stream_env, full, "events", 4 * SHARE)
    fill(stream_env, full, "tenant-log", 4 * SHARE, declare={
        "x-queue-type": "stream", "x-max-length-bytes": 1 << 30, "x-stream-max-segment-size-bytes": 500_000_000})
    for queue in ("events", "tenant-log"):
        wait_for(lambda: stream_bytes(settings, stream_env["vhost"], queue) <= bound, WAIT,
                 what=f"{queue} within {bound} bytes (holds {stream_bytes(settings, stream_env['vhost'], queue)})")


def test_a_stream_with_messages_is_not_deleted_without_force(warren, tokens, new_name, mgmt):
    """The delete guard: a stream that holds messages makes DELETE 409 (a stream refuses the
    fetch Warren asks other queues with, so the statistics answer, once they show the message);
    `?force=true` deletes it."""
    api = Api(warren.url, tokens["team-a"])
    name = new_name("sguard")
    env = api.create_ok({"name": name, "queue": {"type": "stream"}})
    conn = pika_conn(env, env["credentials"])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(env["exchange"]["name"], env["routing_key"], b"kept", mandatory=True)
    finally:
        conn.close()
    wait_for(lambda: (mgmt.queue(env["vhost"], name) or {}).get("messages"), WAIT, what="the statistics to show the message")
    assert_problem(api.delete(name), 409, "messages-pending")
    assert api.get_ok(name)["status"] == "ready"
    assert api.request("DELETE", f"/v1/environments/{name}?force=true").status_code == 204


@pytest.mark.parametrize("queue, field", [
    ({"type": "stream", "dead_letter": True}, "queues[0].dead_letter"),
    ({"type": "stream", "message_ttl_ms": 1000}, "queues[0].message_ttl_ms"),
    ({"type": "stream", "max_length": 10}, "queues[0].max_length"),
    ({"type": "stream", "max_priority": 5}, "queues[0].max_priority"),
    ({"type": "stream", "single_active_consumer": True}, "queues[0].single_active_consumer"),
    ({"type": "stream", "delivery_limit": 3}, "queues[0].delivery_limit"),
    ({"type": "quorum", "max_age_seconds": 60}, "queues[0].max_age_seconds"),
    ({"type": "classic", "max_length_bytes": 1000}, "queues[0].max_length_bytes"),
    ({"type": "stream", "max_length_bytes": SHARE + 1}, "queues[0].max_length_bytes"),
    ({"type": "stream", "stream_max_segment_size_bytes": 100}, "queues[0].stream_max_segment_size_bytes"),
])
def test_bad_stream_settings_are_a_400_naming_the_field_and_change_nothing(queue, field, warren, tokens, new_name, broker_unchanged):
    api = Api(warren.url, tokens["team-a"])
    body = {"name": new_name("sbad"), "queues": [{"name": "s", **queue}], "limits": {"max_bytes": 4 * SHARE, "max_queues": 4}}
    problem = assert_problem(api.create(body), 400, "invalid-field")
    assert field in problem_fields(problem), problem
    broker_unchanged()


async def publish_super(env: dict, creds: dict, super_stream: str, keys: list[str]) -> None:
    """Publishes one message per key through rstream's super stream producer (hash routing
    on the key, as RabbitMQ's clients do), and waits until the broker confirmed them all."""
    confirmed: list[int] = []

    async def on_confirm(status: ConfirmationStatus):
        if status.is_confirmed:
            confirmed.append(status.message_id)

    async def key_of(message):
        return message.application_properties["key"]

    async with stream_client(env, creds, SuperStreamProducer, super_stream=super_stream, routing=RouteType.Hash,
                             routing_extractor=key_of) as producer:
        for key in keys:
            await producer.send(AMQPMessage(body=key.encode(), application_properties={"key": key}), on_publish_confirm=on_confirm)
        deadline = time.monotonic() + WAIT
        while len(confirmed) < len(keys) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    assert len(confirmed) == len(keys), f"{len(confirmed)} of {len(keys)} confirmed"


async def read_super(env: dict, creds: dict, super_stream: str, want: int) -> dict[str, str]:
    """Reads every partition of a super stream from the first offset: body -> partition."""
    got: dict[str, str] = {}
    done = asyncio.Event()

    async def on_message(msg, context):
        got[bytes(msg.body).decode()] = context.stream
        if len(got) >= want:
            done.set()

    consumer = stream_client(env, creds, SuperStreamConsumer, super_stream=super_stream)
    await consumer.start()
    try:
        await consumer.subscribe(on_message, decoder=amqp_decoder,
                                 offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST, None))
        try:
            await asyncio.wait_for(done.wait(), WAIT)
        except asyncio.TimeoutError:
            pass
    finally:
        await consumer.close()
    return got


def test_super_streams_are_made_as_rabbitmqs_tools_make_them_and_route_across_partitions(
        warren, tokens, new_name, mgmt, settings):
    """A super stream of three partitions: the exchange (direct, x-super-stream), the streams
    NAME-0..2 and their bindings (routing key and x-stream-partition-order = the index) are
    what `rabbitmq-streams add_super_stream` makes (read back from a 4.3 node). The producer
    role publishes 30 keys with rstream's super stream producer, which spreads them over every
    partition; the consumer role reads all of them back across the partitions; a message
    published over AMQP to the exchange with routing key "2" lands in partition 2. On RabbitMQ
    3.10, which has no super streams, the create is a 400 naming the release, and nothing is made."""
    api = Api(warren.url, tokens["team-a"])
    name = new_name("super")
    body = {"name": name, "queue": {"type": "stream"}, "super_streams": [{"name": "orders", "partitions": 3}],
            "roles": ["producer", "consumer"]}
    if broker_version(settings) < (3, 11):
        resp = api.create(body)
        problem = assert_problem(resp, 400, "invalid-field")
        [error] = [e for e in problem["errors"] if e["field"] == "super_streams"]
        assert "RabbitMQ 3.11 or later" in error["reason"] and "RabbitMQ 3.10" in error["reason"], error
        assert mgmt.vhost(f"warren.team-a.{name}") is None
        return
    env = api.create_ok(body)
    vhost = env["vhost"]
    assert env["super_streams"] == [{"name": "orders", "partitions": 3, "streams": ["orders-0", "orders-1", "orders-2"]}]
    exchange = mgmt.exchange(vhost, "orders")
    assert exchange["type"] == "direct" and exchange["durable"] and exchange["arguments"] == {"x-super-stream": True}, exchange
    for index in range(3):
        q = mgmt.queue(vhost, f"orders-{index}")
        assert q["arguments"]["x-queue-type"] == "stream", q
        [binding] = mgmt.bindings(vhost, "orders", f"orders-{index}")
        assert binding["routing_key"] == str(index) and binding["arguments"] == {"x-stream-partition-order": index}, binding

    creds = env["role_credentials"]
    keys = [f"key-{i}" for i in range(30)]
    run(publish_super(env, creds["producer"], "orders", keys))
    got = run(read_super(env, creds["consumer"], "orders", len(keys)))
    assert set(got) == set(keys), sorted(set(keys) - set(got))
    assert set(got.values()) == {"orders-0", "orders-1", "orders-2"}, got

    conn = pika_conn(env, creds["producer"])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("orders", "2", b"amqp-to-2", mandatory=True)
    finally:
        conn.close()
    assert b"amqp-to-2" in read_amqp(env, creds["consumer"], "orders-2", "first", lambda got: b"amqp-to-2" in got)
    assert api.request("DELETE", f"/v1/environments/{name}?force=true").status_code == 204


@pytest.mark.parametrize("super_streams, field", [
    ([{"name": "orders", "partitions": 0}], "super_streams[0].partitions"),
    ([{"name": "orders", "partitions": 17}], "super_streams[0].partitions"),
    ([{"name": "warren.x", "partitions": 2}], "super_streams[0].name"),
    ([{"name": "s", "partitions": 2}], "super_streams[0].name"),  # the environment's exchange is "s"
    ([{"name": "s", "partitions": 2, "extra": 1}], "super_streams[0].extra"),
])
def test_bad_super_streams_are_a_400_naming_the_field(super_streams, field, warren, tokens, new_name, broker_unchanged):
    api = Api(warren.url, tokens["team-a"])
    body = {"name": new_name("sbad"), "exchange": {"name": "s"}, "queue": {"type": "stream"}, "super_streams": super_streams}
    problem = assert_problem(api.create(body), 400, "invalid-field")
    assert field in problem_fields(problem), problem
    broker_unchanged()

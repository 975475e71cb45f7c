"""`consumer_timeout_ms`, a queue setting that is one entry of Warren's queue-settings table
(Sources/EnvironmentModel/QueueSettings.swift), end to end on a real broker.

How long a delivery may stay unacknowledged before the broker gives up on the consumer: Warren
holds it in the queue's policy (`consumer-timeout`), never as a queue argument, so a PATCH
changes it in place. RabbitMQ 3.10 refuses the policy key ("not recognised policy settings")
and would silently ignore an `x-consumer-timeout` argument: on a release before 3.12 Warren
refuses the field with a 400 naming the release, and makes nothing. 4.0 enforces the key on
both queue types (closing the channel); 4.3 on quorum queues only (cancelling the consumer),
ignoring it on classic ones: so the field needs a quorum queue on every release.
"""

from __future__ import annotations

import time
import uuid

import pika
import pytest

from schemathesis_hooks import OSB_PROVISION, OSB_UPDATE, beyond_schema, osb_beyond_schema
from warren_support import OSB_SERVICE_ID, amqp_params, assert_osb_error, assert_problem, vhost_of

HOUR = 3_600_000


def release(mgmt) -> tuple[int, int]:
    major, minor = mgmt.overview()["rabbitmq_version"].split(".")[:2]
    return int(major), int(minor)


def takes_it(mgmt) -> bool:
    return release(mgmt) >= (3, 12)


def policy_of(mgmt, vhost: str, queue: str, timeout: float = 15.0) -> dict:
    """The queue's effective policy once Warren's policy applies to it (the broker's
    statistics lag a little)."""
    deadline = time.monotonic() + timeout
    while True:
        info = mgmt.queue(vhost, queue)
        effective = info.get("effective_policy_definition") or {}
        if info.get("policy") == f"warren.queue.{queue}" and "consumer-timeout" in effective:
            return info
        assert time.monotonic() < deadline, f"no consumer-timeout on {queue}: {info.get('policy')} {effective}"
        time.sleep(0.25)


def test_a_create_puts_it_in_the_queues_policy_and_a_patch_changes_it_in_place(api_a, new_name, mgmt):
    if not takes_it(mgmt):
        pytest.skip("RabbitMQ before 3.12 has no per-queue consumer timeout (see the refusal test)")
    name = new_name("ctimeout")
    env = api_a.create_ok({"name": name, "queues": [
        {"name": "jobs", "consumer_timeout_ms": 2 * HOUR},
        {"name": "lane", "single_active_consumer": True, "consumer_timeout_ms": HOUR},
        {"name": "plain"},
    ]})
    answered = {q["name"]: q.get("consumer_timeout_ms") for q in env["queues"]}
    assert answered == {"jobs": 2 * HOUR, "lane": HOUR, "plain": None}, env["queues"]
    vhost = vhost_of("team-a", name)
    for queue, value in [("jobs", 2 * HOUR), ("lane", HOUR)]:
        info = policy_of(mgmt, vhost, queue)
        assert info["effective_policy_definition"]["consumer-timeout"] == value, info
        # A policy key, not an argument: a client's plain redeclaration stays equivalent.
        assert "x-consumer-timeout" not in (info.get("arguments") or {}), info["arguments"]
    plain = mgmt.queue(vhost, "plain")
    assert "consumer-timeout" not in (plain.get("effective_policy_definition") or {}), plain

    got = api_a.get(name)
    assert got.status_code == 200, got.text[:300]
    assert {q["name"]: q.get("consumer_timeout_ms") for q in got.json()["queues"]} == answered

    # The queue object states the queue whole: the release's delivery limit is kept as answered.
    jobs = next(q for q in env["queues"] if q["name"] == "jobs")
    changed = {k: v for k, v in jobs.items() if k not in ("durable",)} | {"consumer_timeout_ms": 3 * HOUR}
    resp = api_a.request("PATCH", f"/v1/environments/{name}", json_body={"queues": [changed]})
    assert resp.status_code == 200, resp.text[:500]
    assert next(q for q in resp.json()["queues"] if q["name"] == "jobs")["consumer_timeout_ms"] == 3 * HOUR
    deadline = time.monotonic() + 15
    while policy_of(mgmt, vhost, "jobs")["effective_policy_definition"]["consumer-timeout"] != 3 * HOUR:
        assert time.monotonic() < deadline, "the PATCH did not change the policy in place"
        time.sleep(0.25)


@pytest.mark.parametrize("value", [999, 604_800_001, 0, -1])
def test_out_of_range_is_a_400_and_nothing_is_made(api_a, new_name, mgmt, broker_unchanged, value):
    name = new_name("ctimeout-range")
    resp = api_a.create({"name": name, "queue": {"consumer_timeout_ms": value}})
    problem = assert_problem(resp, 400, "invalid-field")
    assert problem["errors"] == [{"field": "queue.consumer_timeout_ms", "reason": "must be from 1000 to 604800000"}], problem
    assert mgmt.vhost(vhost_of("team-a", name)) is None
    broker_unchanged(f"consumer_timeout_ms {value}")


def test_a_classic_queue_is_a_400(api_a, new_name, mgmt, broker_unchanged):
    """RabbitMQ 4.3 ignores the key on a classic queue (4.0 enforced it): quorum only, everywhere."""
    name = new_name("ctimeout-classic")
    resp = api_a.create({"name": name, "queue": {"type": "classic", "consumer_timeout_ms": HOUR}})
    problem = assert_problem(resp, 400, "invalid-field")
    assert problem["errors"] == [{"field": "queue.consumer_timeout_ms", "reason": "needs a quorum queue"}], problem
    assert mgmt.vhost(vhost_of("team-a", name)) is None
    broker_unchanged("consumer_timeout_ms on a classic queue")


def test_the_broker_gives_up_on_a_consumer_past_it(api_a, new_name, mgmt):
    """The broker enforces it: a job held unacknowledged past 1 s is returned to the queue.
    RabbitMQ 4.3 cancels the consumer at the timeout (the channel stays open); 4.0 closes the
    channel, at its next check (once a minute)."""
    if not takes_it(mgmt):
        pytest.skip("RabbitMQ before 3.12 has no per-queue consumer timeout")
    env = api_a.create_ok({"name": new_name("ctimeout-live"), "queue": {"name": "jobs", "consumer_timeout_ms": 1000}})
    c, creds = env["connection"], env["credentials"]
    conn = pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"]))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(env["exchange"]["name"], env["routing_key"], b"a long job",
                         properties=pika.BasicProperties(delivery_mode=2), mandatory=True)
        ch.basic_qos(prefetch_count=1)
        cancelled, delivered = [], []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame))
        ch.basic_consume("jobs", lambda _c, method, _p, _b: delivered.append(method.delivery_tag), auto_ack=False)
        start = time.monotonic()
        while not cancelled and ch.is_open and time.monotonic() - start < 90:
            conn.process_data_events(time_limit=1)
        assert delivered == [1], delivered
        assert cancelled or not ch.is_open, "the broker kept the consumer past its timeout for 90 s"
    finally:
        if conn.is_open:
            conn.close()
    deadline = time.monotonic() + 15
    while (mgmt.queue(c["vhost"], "jobs") or {}).get("messages_ready") != 1:
        assert time.monotonic() < deadline, "the job did not return to the queue"
        time.sleep(0.25)


def test_the_wrong_type_is_a_400(api_a, new_name, broker_unchanged):
    resp = api_a.create({"name": new_name("ctimeout-type"), "queues": [{"name": "q", "consumer_timeout_ms": "1h"}]})
    problem = assert_problem(resp, 400, "invalid-field")
    assert problem["errors"] == [{"field": "queues[0].consumer_timeout_ms", "reason": "must be a whole number"}], problem
    broker_unchanged()


def test_a_release_without_it_refuses_it_naming_the_release(api_a, new_name, mgmt, broker_unchanged):
    if takes_it(mgmt):
        pytest.skip("this release takes consumer-timeout (see the create test)")
    major, minor = release(mgmt)
    reason = f"needs RabbitMQ 3.12 or later; this broker runs RabbitMQ {major}.{minor}"

    name = new_name("ctimeout-old")
    resp = api_a.create({"name": name, "queue": {"consumer_timeout_ms": HOUR}})
    problem = assert_problem(resp, 400, "invalid-field")
    assert problem["errors"] == [{"field": "queue.consumer_timeout_ms", "reason": reason}], problem
    assert "3.12" in problem["detail"], problem
    # The schemathesis hook takes this 400 for a schema-valid body on this release only.
    assert beyond_schema("POST /v1/environments", problem, broker_major=3)
    assert not beyond_schema("POST /v1/environments", problem, broker_major=4)
    resp = api_a.create({"name": name, "queues": [{"name": "a"}, {"name": "b", "consumer_timeout_ms": HOUR}]})
    problem = assert_problem(resp, 400, "invalid-field")
    assert problem["errors"] == [{"field": "queues[1].consumer_timeout_ms", "reason": reason}], problem
    broker_unchanged("refused creates")

    # A PATCH is refused the same way, and changes nothing.
    env = api_a.create_ok({"name": name})
    vhost = vhost_of("team-a", name)
    resp = api_a.request("PATCH", f"/v1/environments/{name}", json_body={"queues": [{"name": "late", "consumer_timeout_ms": HOUR}]})
    problem = assert_problem(resp, 400, "invalid-field")
    assert problem["errors"] == [{"field": "queues[0].consumer_timeout_ms", "reason": reason}], problem
    assert beyond_schema("PATCH /v1/environments/{id}", problem, broker_major=3)
    assert mgmt.queue(vhost, "late") is None
    assert [q["name"] for q in api_a.get(name).json()["queues"]] == [q["name"] for q in env["queues"]]


def test_a_release_without_it_refuses_it_to_a_platform(osb, mgmt, broker_unchanged):
    if takes_it(mgmt):
        pytest.skip("this release takes consumer-timeout")
    platform = osb("cf-a")
    instance = f"ctimeout-{uuid.uuid4()}"
    parameters = {"queues": [{"name": "jobs", "consumer_timeout_ms": HOUR}]}
    error = assert_osb_error(platform.provision(instance, parameters), 400, "BadRequest")
    assert error["description"].startswith("invalid parameters: parameters.queues[0].consumer_timeout_ms needs RabbitMQ 3.12"), error
    assert osb_beyond_schema(OSB_PROVISION, error, broker_major=3) and not osb_beyond_schema(OSB_PROVISION, error, broker_major=4)
    broker_unchanged("a refused provision")

    assert platform.provision(instance, {"queues": [{"name": "jobs"}]}).status_code == 201
    try:
        before = platform.fetch(instance).json()
        error = assert_osb_error(platform.update(instance, {"service_id": OSB_SERVICE_ID, "parameters": parameters}), 400, "BadRequest")
        assert "consumer_timeout_ms needs RabbitMQ 3.12" in error["description"], error
        assert osb_beyond_schema(OSB_UPDATE, error, broker_major=3), error
        assert platform.fetch(instance).json() == before, "a refused update changed the instance"
    finally:
        assert platform.deprovision(instance).status_code == 200

"""Topologies end to end, with the real broker and pika: several queues and bindings, dead-letter
queues, delivery limits, TTL, priorities, vhost limits, credentials by role, rotation and
revocation, blueprints, changes in place, and DELETE that protects messages."""

import json
import secrets
import time

import pika
import pika.exceptions
import pytest

from warren_support import Api, amqp_params, assert_problem, connection_refusal, seg, vhost_of

LOGIN_REFUSED = (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)


def connect(env: dict, creds: dict) -> pika.BlockingConnection:
    c = env["connection"]
    return pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"]))


def publish(ch, env: dict, key: str, body: bytes, **props) -> None:
    ch.basic_publish(env["exchange"]["name"], key, body, properties=pika.BasicProperties(delivery_mode=2, **props),
                     mandatory=True)


def get(ch, queue: str, timeout: float = 10.0):
    """basic_get until a message arrives (quorum queues and dead-lettering are asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=False)
        if method is not None:
            return method, props, body
        time.sleep(0.05)
    raise AssertionError(f"no message in {queue} within {timeout} s")


def test_several_queues_and_bindings_on_a_topic_exchange(api_a, new_name, mgmt):
    name = new_name("multi")
    env = api_a.create_ok({
        "name": name, "exchange": {"type": "topic"},
        "queues": [{"name": "jobs"}, {"name": "results", "type": "classic"}, {"name": "audit"}],
        "bindings": [{"queue": "jobs", "routing_key": "job.*"}, {"queue": "results", "routing_key": "result.#"},
                     {"queue": "audit", "routing_key": "#"}],
    })
    assert [q["name"] for q in env["queues"]] == ["jobs", "results", "audit"]
    assert env["queue"]["name"] == "jobs" and env["routing_key"] == "job.*"
    vhost = vhost_of("team-a", name)
    assert mgmt.queue(vhost, "results")["arguments"]["x-queue-type"] == "classic"
    conn = connect(env, env["credentials"])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, env, "job.embed", b"j")
        publish(ch, env, "result.embed.ok", b"r")
        assert get(ch, "jobs")[2] == b"j"
        assert get(ch, "results")[2] == b"r"
        assert sorted([get(ch, "audit")[2], get(ch, "audit")[2]]) == [b"j", b"r"]
    finally:
        conn.close()


def test_poison_message_lands_in_the_dead_letter_queue_after_the_delivery_limit(api_a, new_name):
    env = api_a.create_ok({"name": new_name("poison"), "queues": [{"name": "jobs", "delivery_limit": 2, "dead_letter": True}]})
    assert env["queues"][0]["dead_letter_queue"] == "jobs.dlq"
    conn = connect(env, env["credentials"])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, env, "jobs", b"poison")
        deliveries = 0
        for _ in range(10):  # a worker that fails on it every time
            method, _, body = ch.basic_get("jobs", auto_ack=False)
            if method is None:
                time.sleep(0.1)
                continue
            deliveries += 1
            # reject, not nack: from RabbitMQ 4.3 a nack returns the message without counting
            # a failed delivery (rabbitmq-server#15387); a reject counts on every release.
            ch.basic_reject(method.delivery_tag, requeue=True)
            if deliveries > 5:
                break
        method, _, body = get(ch, "jobs.dlq")
        assert body == b"poison"
        assert 2 <= deliveries <= 3, f"delivered {deliveries} times with a delivery limit of 2"
        assert ch.basic_get("jobs", auto_ack=True)[0] is None
    finally:
        conn.close()


def test_an_expired_message_is_dead_lettered(api_a, new_name):
    env = api_a.create_ok({"name": new_name("ttl"), "queues": [{"name": "jobs", "message_ttl_ms": 200, "dead_letter": True}]})
    conn = connect(env, env["credentials"])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, env, "jobs", b"stale")
        assert get(ch, "jobs.dlq")[2] == b"stale"
        assert ch.basic_get("jobs", auto_ack=True)[0] is None
    finally:
        conn.close()


@pytest.mark.parametrize("asked_type", [None, "quorum", "classic"])
def test_higher_priority_messages_come_first_and_the_answer_says_which_queue_type(api_a, new_name, mgmt, settings,
                                                                                  asked_type):
    """Priorities on a quorum queue where the broker has them (RabbitMQ 4.0 on: two levels, 5
    and above first), classic only where it must (3.x); the answer's notes say which."""
    name = new_name("prio")
    lane = {"name": "lane", "max_priority": 10, **({"type": asked_type} if asked_type else {})}
    env = api_a.create_ok({"name": name, "queues": [lane]})
    quorum_priorities = int(settings.broker["BROKER_VERSION"].split(".")[0]) >= 4
    expected = "classic" if asked_type == "classic" or not quorum_priorities else "quorum"
    assert env["queues"][0]["type"] == expected and env["queues"][0]["max_priority"] == 10
    assert any(f"is a {expected} queue" in note for note in env["notes"]), env["notes"]
    arguments = mgmt.queue(vhost_of("team-a", name), "lane")["arguments"]
    assert arguments["x-queue-type"] == expected
    assert arguments.get("x-max-priority") == (10 if expected == "classic" else None)
    # The same body again is the same environment.
    assert api_a.create({"name": name, "queues": [lane]}).status_code == 200
    conn = connect(env, env["credentials"])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(3):
            publish(ch, env, "lane", f"low-{i}".encode(), priority=1)
        publish(ch, env, "lane", b"urgent", priority=9)
        assert get(ch, "lane")[2] == b"urgent"
    finally:
        conn.close()


def test_producer_and_consumer_credentials_have_the_narrowest_permissions(api_a, new_name):
    env = api_a.create_ok({"name": new_name("roles"), "roles": ["producer", "consumer"]})
    producer, consumer = env["role_credentials"]["producer"], env["role_credentials"]["consumer"]
    assert producer["role"] == "producer" and consumer["role"] == "consumer"
    queue = env["queue"]["name"]

    conn = connect(env, producer)
    ch = conn.channel()
    ch.confirm_delivery()
    publish(ch, env, env["routing_key"], b"from producer")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        ch.basic_get(queue, auto_ack=True)
    assert refused.value.reply_code == 403
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        ch.queue_declare("sneaky", durable=True)
    assert refused.value.reply_code == 403
    conn.close()

    conn = connect(env, consumer)
    ch = conn.channel()
    assert get(ch, queue)[2] == b"from producer"
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        publish(ch, env, env["routing_key"], b"from consumer")
    assert refused.value.reply_code == 403
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):  # nor through the default exchange
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"x")
    conn.close()
    roles = api_a.get_ok(env["id"])["user_roles"]
    assert sorted(roles.values()) == ["consumer", "full", "producer"]


def test_rotation_keeps_a_connected_consumer_and_revocation_refuses_the_old_login(api_a, new_name):
    env = api_a.create_ok({"name": new_name("rotate")})
    old = env["credentials"]
    consumer = connect(env, old)
    ch_old = consumer.channel()

    resp = api_a.request("POST", f"/v1/environments/{env['id']}/credentials", json_body={"role": "full"})
    assert resp.status_code == 201, resp.text
    new = resp.json()["credentials"]
    assert new["username"] != old["username"]
    producer = connect(env, new)
    ch_new = producer.channel()
    ch_new.confirm_delivery()
    publish(ch_new, env, env["routing_key"], b"after rotation")
    assert get(ch_old, env["queue"]["name"])[2] == b"after rotation"  # the old session goes on
    producer.close()
    consumer.close()

    assert api_a.request("DELETE", f"/v1/environments/{env['id']}/credentials/{old['username']}").status_code == 204
    assert isinstance(connection_refusal(amqp_params(env["connection"]["host"], env["connection"]["port"], env["vhost"],
                                                     old["username"], old["password"])), LOGIN_REFUSED)
    connect(env, new).close()
    assert api_a.get_ok(env["id"])["users"] == [new["username"]]
    assert_problem(api_a.request("DELETE", f"/v1/environments/{env['id']}/credentials/{old['username']}"), 404, "not-found")


def test_scheduled_revocation_is_carried_out_by_the_janitor(warren_factory, tokens, spec, new_name):
    proc = warren_factory("revoke", WARREN_SWEEP_INTERVAL_SECONDS="1")
    api = Api(proc.url, tokens["team-a"], spec)
    env = api.create_ok({"name": new_name("grace")})
    old = env["credentials"]
    resp = api.request("POST", f"/v1/environments/{env['id']}/credentials", json_body={"revoke_others_after_seconds": 2})
    assert resp.status_code == 201, resp.text
    assert list(resp.json()["revocations"]) == [old["username"]]
    connect(env, old).close()  # still works during the grace period
    # The janitor deletes the user, then clears the record's schedule: two steps, so wait for
    # both (on a loaded machine a GET can fall between them).
    deadline = time.monotonic() + 15
    shown = api.get_ok(env["id"])
    while time.monotonic() < deadline and (old["username"] in shown["users"] or "revocations" in shown):
        time.sleep(0.25)
        shown = api.get_ok(env["id"])
    assert shown["users"] == [resp.json()["credentials"]["username"]]
    assert "revocations" not in shown
    assert isinstance(connection_refusal(amqp_params(env["connection"]["host"], env["connection"]["port"], env["vhost"],
                                                     old["username"], old["password"])), LOGIN_REFUSED)


def test_vhost_limits_are_enforced_by_the_broker(api_a, new_name):
    # One queue of its own plus Warren's claim queue: the limit is reached.
    env = api_a.create_ok({"name": new_name("quota"), "limits": {"max_queues": 2, "max_connections": 1}})
    # As asked, and the operator's ceilings for what was not.
    assert {k: env["limits"][k] for k in ("max_queues", "max_connections")} == {"max_queues": 2, "max_connections": 1}
    assert env["limits"]["max_queue_bytes"] == env["limits"]["max_bytes"] // 2
    conn = connect(env, env["credentials"])
    try:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare("one-too-many", durable=True)
        assert refused.value.reply_code in (403, 406), refused.value
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            connect(env, env["credentials"]).close()
    finally:
        conn.close()
    resp = api_a.create({"name": new_name("quota-low"), "limits": {"max_queues": 1}})
    assert "limits.max_queues" in {e["field"] for e in assert_problem(resp, 400, "invalid-field")["errors"]}


def test_a_blueprint_creates_exactly_what_it_describes(warren_factory, workdir, tokens, spec, new_name, mgmt):
    blueprints = {
        "inference-jobs": {
            "description": "GPU inference: a job queue with retries and a dead-letter queue, results back",
            "exchange": {"type": "direct"},
            "queues": [{"name": "jobs", "delivery_limit": 3, "dead_letter": True}, {"name": "results"}],
            "limits": {"max_queues": 10},
        }
    }
    path = workdir / f"blueprints-{secrets.token_hex(3)}.json"
    path.write_text(json.dumps(blueprints))
    proc = warren_factory("blueprints", WARREN_BLUEPRINTS_FILE=str(path))
    api = Api(proc.url, tokens["team-a"], spec)
    listed = api.request("GET", "/v1/blueprints").json()["items"]
    assert [b["name"] for b in listed] == ["inference-jobs"]

    name = new_name("bp")
    env = api.create_ok({"name": name, "blueprint": "inference-jobs"})
    vhost = vhost_of("team-a", name)
    queues = {q["name"]: q for q in mgmt.get_json(f"queues/{vhost}")}
    assert set(queues) == {"jobs", "jobs.dlq", "results", "warren.claim"}
    # The settings a policy can hold are in Warren's policy for the queue, not its arguments.
    assert queues["jobs"]["arguments"] == {"x-queue-type": "quorum"}
    policy = mgmt.get_json(f"policies/{seg(vhost)}/{seg('warren.queue.jobs')}")
    assert policy["definition"]["delivery-limit"] == 3
    assert policy["definition"]["dead-letter-exchange"] == f"{name}.dlx"
    exchanges = {x["name"] for x in mgmt.get_json(f"exchanges/{vhost}") if not x["name"].startswith("amq.") and x["name"]}
    assert exchanges == {name, f"{name}.dlx"}
    assert mgmt.get_json(f"vhost-limits/{vhost}")[0]["value"] == {"max-queues": 10, "max-connections": env["limits"]["max_connections"]}
    keys = {(b["destination"], b["routing_key"]) for b in mgmt.get_json(f"bindings/{vhost}") if b["source"]}
    assert keys == {("jobs", "jobs"), ("results", "results"), ("jobs.dlq", "jobs")}
    assert env["queues"][0]["delivery_limit"] == 3
    resp = api.create({"name": new_name("bp-mixed"), "blueprint": "inference-jobs", "queue": {"type": "classic"}})
    assert_problem(resp, 400, "invalid-field")
    assert_problem(api.create({"name": new_name("bp-none"), "blueprint": "nope"}), 400, "invalid-field")


def test_queues_are_added_in_place_and_changes_to_a_queue_are_refused(api_a, new_name, mgmt):
    env = api_a.create_ok({"name": new_name("grow"), "roles": ["consumer"]})
    vhost = env["vhost"]
    resp = api_a.request("PATCH", f"/v1/environments/{env['id']}", json_body={
        "queues": [{"name": "results", "type": "classic"}], "bindings": [{"queue": "results", "routing_key": "results"}]})
    assert resp.status_code == 200, resp.text
    assert [q["name"] for q in resp.json()["queues"]] == [env["queue"]["name"], "results"]
    assert mgmt.queue(vhost, "results")["durable"] is True
    # The consumer credentials now reach the new queue too.
    producer = connect(env, env["credentials"])
    ch = producer.channel()
    ch.confirm_delivery()
    publish(ch, env, "results", b"r")
    producer.close()
    consumer = connect(env, env["role_credentials"]["consumer"])
    assert get(consumer.channel(), "results")[2] == b"r"
    consumer.close()

    resp = api_a.request("PATCH", f"/v1/environments/{env['id']}", json_body={"queues": [{"name": env["queue"]["name"], "type": "classic"}]})
    body = assert_problem(resp, 409, "conflict")
    assert "in place" in body["detail"]
    assert mgmt.queue(vhost, env["queue"]["name"])["arguments"]["x-queue-type"] == "quorum"


def test_delete_with_messages_needs_force(api_a, new_name, mgmt):
    env = api_a.create_ok({"name": new_name("full")})
    conn = connect(env, env["credentials"])
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(3):
        publish(ch, env, env["routing_key"], f"m{i}".encode())
    conn.close()
    # The management API counts messages from statistics emitted every few seconds.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (mgmt.queue(env["vhost"], env["queue"]["name"]).get("messages") or 0) < 3:
        time.sleep(0.25)
    body = assert_problem(api_a.delete(env["id"]), 409, "messages-pending")
    assert "3 messages" in body["detail"]
    assert mgmt.vhost(env["vhost"]) is not None
    assert api_a.request("DELETE", f"/v1/environments/{env['id']}?force=true").status_code == 204
    assert mgmt.vhost(env["vhost"]) is None


def test_headers_exchange_binds_by_headers(api_a, new_name):
    env = api_a.create_ok({
        "name": new_name("hdr"), "exchange": {"type": "headers"},
        "queues": [{"name": "gpu"}, {"name": "cpu"}],
        "bindings": [{"queue": "gpu", "arguments": {"x-match": "all", "device": "gpu"}},
                     {"queue": "cpu", "arguments": {"x-match": "any", "device": "cpu"}}],
    })
    conn = connect(env, env["credentials"])
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, env, "", b"on gpu", headers={"device": "gpu"})
        assert get(ch, "gpu")[2] == b"on gpu"
        assert ch.basic_get("cpu", auto_ack=True)[0] is None
    finally:
        conn.close()
    resp = api_a.create({"name": new_name("hdr-bad"), "exchange": {"type": "headers"}, "queues": [{"name": "q"}],
                         "bindings": [{"queue": "q", "arguments": {"x-match": "most"}}]})
    assert "bindings[0].arguments" in {e["field"] for e in assert_problem(resp, 400, "invalid-field")["errors"]}

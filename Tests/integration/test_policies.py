"""Mutable queue settings, end to end with the real broker and pika: delivery limit,
dead-lettering, TTL, max-length and overflow live in one Warren policy per queue, so a PATCH
changes them in place (messages kept), clients may redeclare queues with plain arguments,
tenants cannot touch policies, and queues of earlier environments (settings as arguments) keep
working, with a clear 409 for a change their arguments would override."""

import time

import pika
import requests

from warren_support import HTTP_TIMEOUT, amqp_params, assert_problem, seg

POLICY_KEYS = {"delivery-limit", "dead-letter-exchange", "dead-letter-routing-key", "message-ttl", "max-length", "overflow"}


def connect(env: dict, creds: dict | None = None) -> pika.BlockingConnection:
    c, creds = env["connection"], creds or env["credentials"]
    return pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"]))


def publish(ch, env: dict, key: str, body: bytes) -> None:
    ch.basic_publish(env["exchange"]["name"], key, body, properties=pika.BasicProperties(delivery_mode=2), mandatory=True)


def drain(ch, queue: str, count: int, timeout: float = 15.0) -> list[bytes]:
    """Acknowledges and returns `count` messages from the queue (fails if fewer arrive)."""
    bodies, deadline = [], time.monotonic() + timeout
    while len(bodies) < count and time.monotonic() < deadline:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.05)
        else:
            bodies.append(body)
    assert len(bodies) == count, f"{len(bodies)} of {count} messages from {queue}"
    return bodies


def fail_until_dead_lettered(ch, queue: str, timeout: float = 15.0) -> int:
    """A worker that fails the queue's one message every time (reject, requeue: from RabbitMQ 4.3
    a nack with requeue no longer counts towards the delivery limit) until the queue stays
    empty for half a second; returns how often it was delivered."""
    deliveries, empty, deadline = 0, 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, _, _ = ch.basic_get(queue, auto_ack=False)
        if method is not None:
            deliveries, empty = deliveries + 1, 0
            ch.basic_reject(method.delivery_tag, requeue=True)
            continue
        empty += 1
        if deliveries and empty >= 10:
            return deliveries
        time.sleep(0.05)
    raise AssertionError(f"{queue}: still there after {deliveries} deliveries")


def effective_policy(mgmt, vhost: str, queue: str, want: dict, timeout: float = 15.0) -> dict:
    """The queue as the management API shows it, once Warren's policy with `want` applies."""
    deadline = time.monotonic() + timeout
    while True:
        info = mgmt.queue(vhost, queue)
        effective = info.get("effective_policy_definition") or {}
        if info.get("policy") == f"warren.queue.{queue}" and all(effective.get(k) == v for k, v in want.items()):
            return info
        assert time.monotonic() < deadline, f"policy on {queue}: {info.get('policy')} {effective}"
        time.sleep(0.25)


def patch(api, env: dict, queues: list[dict]):
    return api.request("PATCH", f"/v1/environments/{env['id']}", json_body={"queues": queues})


def test_settings_are_a_policy_and_clients_redeclare_with_plain_arguments(api_a, new_name, mgmt):
    name = new_name("pol")
    jobs = {"name": "jobs.v1", "delivery_limit": 5, "dead_letter": True, "message_ttl_ms": 60000,
            "max_length": 1000, "overflow": "reject-publish"}
    # Classic first: this vhost's default queue type is then classic, so a client may declare
    # the classic queue with no arguments at all.
    env = api_a.create_ok({"name": name, "queues": [{"name": "results", "type": "classic", "message_ttl_ms": 5000}, jobs,
                                                    {"name": "lane", "type": "classic", "max_priority": 5}]})
    vhost = env["vhost"]
    assert mgmt.queue(vhost, "jobs.v1")["arguments"] == {"x-queue-type": "quorum"}
    assert mgmt.queue(vhost, "results")["arguments"] == {"x-queue-type": "classic"}
    assert mgmt.queue(vhost, "lane")["arguments"] == {"x-queue-type": "classic", "x-max-priority": 5}
    policy = mgmt.get_json(f"policies/{seg(vhost)}/{seg('warren.queue.jobs.v1')}")
    assert policy["pattern"] == r"^jobs\.v1$" and policy["apply-to"] == "queues"
    assert policy["definition"] == {"delivery-limit": 5, "dead-letter-exchange": f"{name}.dlx",
                                    "dead-letter-routing-key": "jobs.v1", "message-ttl": 60000, "max-length": 1000,
                                    "overflow": "reject-publish"}
    effective_policy(mgmt, vhost, "jobs.v1", policy["definition"])
    effective_policy(mgmt, vhost, "results", {"message-ttl": 5000})
    # Queues without such settings (the dead-letter queue, "lane") have no policy of their own:
    # the vhost's overflow policy (priority -1, below every queue's) applies to them. Below it,
    # the streams' segment cap (a stream skips the overflow policy: it takes no `overflow`).
    assert {p["name"] for p in mgmt.get_json(f"policies/{seg(vhost)}")} == {
        "warren.queue.jobs.v1", "warren.queue.results", "warren.overflow", "warren.streams"}
    assert mgmt.get_json(f"policies/{seg(vhost)}/warren.overflow")["priority"] == -1
    assert mgmt.get_json(f"policies/{seg(vhost)}/warren.streams")["priority"] == -2

    conn = connect(env)
    try:
        ch = conn.channel()
        ch.queue_declare("jobs.v1", durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_declare("results", durable=True)
        ch.queue_declare("lane", durable=True, arguments={"x-max-priority": 5})
    finally:
        conn.close()


def test_a_poison_job_with_a_delivery_limit_ends_in_the_dead_letter_queue(api_a, new_name, mgmt):
    env = api_a.create_ok({"name": new_name("poison-pol"), "queues": [{"name": "jobs", "delivery_limit": 2, "dead_letter": True}]})
    effective_policy(mgmt, env["vhost"], "jobs", {"delivery-limit": 2})
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, env, "jobs", b"poison")
        deliveries = fail_until_dead_lettered(ch, "jobs")
        assert 2 <= deliveries <= 3, f"delivered {deliveries} times with a delivery limit of 2"
        # Never dropped: it is in the dead-letter queue.
        assert drain(ch, "jobs.dlq", 1) == [b"poison"]
    finally:
        conn.close()


def test_a_patch_changes_ttl_and_delivery_limit_in_place_and_keeps_the_messages(api_a, new_name, mgmt):
    env = api_a.create_ok({"name": new_name("inplace"), "queues": [{"name": "jobs", "delivery_limit": 10, "dead_letter": True},
                                                                    {"name": "results", "type": "classic"}]})
    vhost, n = env["vhost"], 25
    conn = connect(env)
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(n):
        publish(ch, env, "jobs", f"job-{i}".encode())
        publish(ch, env, "results", f"result-{i}".encode())
    conn.close()

    resp = patch(api_a, env, [{"name": "jobs", "delivery_limit": 1, "dead_letter": True, "message_ttl_ms": 600000},
                              {"name": "results", "type": "classic", "dead_letter": True, "max_length": 1000}])
    assert resp.status_code == 200, resp.text
    queues = {q["name"]: q for q in resp.json()["queues"]}
    assert queues["jobs"]["delivery_limit"] == 1 and queues["jobs"]["message_ttl_ms"] == 600000
    assert queues["results"]["dead_letter_queue"] == "results.dlq"
    effective_policy(mgmt, vhost, "jobs", {"delivery-limit": 1, "message-ttl": 600000})
    effective_policy(mgmt, vhost, "results", {"dead-letter-exchange": f"{env['exchange']['name']}.dlx", "max-length": 1000})
    # Dead-lettering turned on made its queue, exchange and binding, as a create does.
    assert mgmt.queue(vhost, "results.dlq") is not None
    assert mgmt.bindings(vhost, f"{env['exchange']['name']}.dlx", "results.dlq")

    conn = connect(env)
    try:
        ch = conn.channel()
        assert drain(ch, "jobs", n) == [f"job-{i}".encode() for i in range(n)]
        assert drain(ch, "results", n) == [f"result-{i}".encode() for i in range(n)]
        # The new delivery limit applies: a job nacked once more than it allows is dead-lettered.
        ch.confirm_delivery()
        publish(ch, env, "jobs", b"poison")
        assert fail_until_dead_lettered(ch, "jobs") <= 2
        assert drain(ch, "jobs.dlq", 1) == [b"poison"]
    finally:
        conn.close()

    # Every setting removed: the policy goes; a fixed setting still cannot change.
    resp = patch(api_a, env, [{"name": "results", "type": "classic"}])
    assert resp.status_code == 200, resp.text
    assert mgmt.call("GET", f"policies/{seg(vhost)}/{seg('warren.queue.results')}").status_code == 404
    body = assert_problem(patch(api_a, env, [{"name": "results", "type": "classic", "single_active_consumer": True}]), 409, "conflict")
    assert "in place" in body["detail"]


def test_tenants_cannot_reach_the_management_api_and_so_not_the_policies(api_a, new_name, mgmt, settings):
    env = api_a.create_ok({"name": new_name("notag"), "queues": [{"name": "jobs", "type": "classic", "message_ttl_ms": 1000}],
                           "roles": ["producer", "consumer"]})
    vhost = env["vhost"]
    policy = f"policies/{seg(vhost)}/{seg('warren.queue.jobs')}"
    for creds in [env["credentials"], *env["role_credentials"].values()]:
        assert mgmt.user(creds["username"])["tags"] in ("", [])
        auth = (creds["username"], creds["password"])
        url = f"{settings.management_url}/api/{policy}"
        assert requests.get(url, auth=auth, timeout=HTTP_TIMEOUT).status_code == 401
        assert requests.put(url, auth=auth, timeout=HTTP_TIMEOUT,
                            json={"pattern": ".*", "definition": {"message-ttl": 1}, "apply-to": "queues"}).status_code == 401
        assert requests.delete(url, auth=auth, timeout=HTTP_TIMEOUT).status_code == 401
    # A queue's policy says reject-publish itself: it wins over the vhost's overflow policy.
    assert mgmt.get_json(policy)["definition"] == {"message-ttl": 1000, "overflow": "reject-publish"}


def make_earlier(mgmt, env: dict, queue: str, arguments: dict) -> None:
    """Turns an environment's queue into one an earlier Warren made: settings as arguments,
    no policy."""
    vhost = env["vhost"]
    mgmt.delete(f"policies/{seg(vhost)}/{seg('warren.queue.' + queue)}")
    mgmt.delete(f"queues/{seg(vhost)}/{seg(queue)}")
    mgmt.put_json(f"queues/{seg(vhost)}/{seg(queue)}", {"durable": True, "arguments": arguments})
    mgmt.call("POST", f"bindings/{seg(vhost)}/e/{seg(env['exchange']['name'])}/q/{seg(queue)}",
              json={"routing_key": queue, "arguments": {}}).raise_for_status()


def test_an_earlier_environment_keeps_working_and_refuses_changes_its_arguments_hold(api_a, new_name, mgmt):
    name = new_name("earlier")
    jobs = {"name": "jobs", "delivery_limit": 3, "dead_letter": True, "message_ttl_ms": 60000}
    env = api_a.create_ok({"name": name, "queues": [jobs]})
    vhost = env["vhost"]
    make_earlier(mgmt, env, "jobs", {"x-queue-type": "quorum", "x-delivery-limit": 3, "x-dead-letter-exchange": f"{name}.dlx",
                                     "x-dead-letter-routing-key": "jobs", "x-message-ttl": 60000})
    conn = connect(env)
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(3):
        publish(ch, env, "jobs", f"old-{i}".encode())
    conn.close()

    # It is complete, and a repeated create and a reconcile go around its arguments.
    assert api_a.get_ok(env["id"])["status"] == "ready"
    api_a.create_ok({"name": name, "queues": [jobs]}, expect=200)
    resp = api_a.request("POST", f"/v1/environments/{env['id']}/reconcile")
    assert resp.status_code == 200, resp.text

    # A change of a setting its arguments hold would not take: 409, naming the fields.
    resp = patch(api_a, env, [{**jobs, "message_ttl_ms": 1000, "delivery_limit": 5}])
    body = assert_problem(resp, 409, "conflict")
    assert {e["field"] for e in body["errors"]} == {"queues[jobs].message_ttl_ms", "queues[jobs].delivery_limit"}
    assert "queue arguments" in body["detail"]
    assert mgmt.queue(vhost, "jobs")["arguments"]["x-message-ttl"] == 60000
    assert api_a.get_ok(env["id"])["queues"][0]["message_ttl_ms"] == 60000

    # A setting it does not hold changes through the policy; a new queue gets a policy.
    resp = patch(api_a, env, [{**jobs, "max_length": 100}, {"name": "fresh", "message_ttl_ms": 5000}])
    assert resp.status_code == 200, resp.text
    effective_policy(mgmt, vhost, "jobs", {"max-length": 100})
    effective_policy(mgmt, vhost, "fresh", {"message-ttl": 5000})
    assert mgmt.queue(vhost, "fresh")["arguments"] == {"x-queue-type": "quorum"}

    conn = connect(env)
    try:
        assert drain(conn.channel(), "jobs", 3) == [b"old-0", b"old-1", b"old-2"]
    finally:
        conn.close()

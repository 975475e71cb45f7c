"""Adoption is exact: a queue or exchange a tenant declared (with the credentials a create
returned) before a PATCH names it is taken as Warren's only when it is exactly what Warren would
make. Otherwise the PATCH answers 409 naming the queue field and the differing properties, and
the tenant's object and the environment's record stay as they were.

Before this, type, single-active-consumer and priority were all that was compared: a transient,
auto-delete, expiring or length-limited queue was adopted (GET then said durable while the broker
said not; a 10-byte limit dropped every message), and a dead-letter queue or exchange of another
type made the PATCH answer 502."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from warren_support import amqp_params, assert_problem, problem_fields

CLASSIC = {"x-queue-type": "classic"}

# (label, queue_declare keywords, what the 409's detail must name)
DIFFERING = [
    ("transient", dict(durable=False, arguments=CLASSIC), "durable false"),
    ("auto-delete", dict(durable=True, auto_delete=True, arguments=CLASSIC), "auto_delete true"),
    ("expiring", dict(durable=True, arguments={**CLASSIC, "x-expires": 600_000}), "x-expires 600000"),
    ("length-limited", dict(durable=True, arguments={**CLASSIC, "x-max-length-bytes": 10}), "x-max-length-bytes 10"),
]


def connect(env: dict) -> pika.BlockingConnection:
    c = env["connection"]
    creds = env["credentials"]
    return pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"]))


def patch(api, env: dict, body: dict):
    return api.request("PATCH", f"/v1/environments/{env['id']}", json_body=body)


def queue_names(api, env: dict) -> list[str]:
    return [q["name"] for q in api.get_ok(env["id"])["queues"]]


def queue_state(mgmt, vhost: str, name: str) -> tuple:
    q = mgmt.queue(vhost, name)
    return q["durable"], q["auto_delete"], q.get("exclusive"), q.get("type"), q["arguments"]


@pytest.mark.parametrize("label,declare,named", DIFFERING, ids=[d[0] for d in DIFFERING])
def test_a_queue_the_tenant_made_otherwise_is_a_conflict_that_changes_nothing(api_a, new_name, mgmt, label, declare, named):
    env = api_a.create_ok({"name": new_name("adopt")})
    vhost = env["vhost"]
    before = queue_names(api_a, env)
    conn = connect(env)
    try:
        ch = conn.channel()
        try:
            ch.queue_declare("jobs", **declare)
        except pika.exceptions.ChannelClosedByBroker as e:
            # Releases that refuse transient non-exclusive queues (the deprecated feature
            # `transient_nonexcl_queues` denied) never let the tenant make one: then there is
            # nothing to adopt, and the PATCH makes the queue as Warren makes it.
            assert label == "transient" and e.reply_code == 406, e
            resp = patch(api_a, env, {"queues": [{"name": "jobs", "type": "classic"}]})
            assert resp.status_code == 200, resp.text
            assert mgmt.queue(vhost, "jobs")["durable"] is True
            return
        made = queue_state(mgmt, vhost, "jobs")
        resp = patch(api_a, env, {"queues": [{"name": "jobs", "type": "classic"}]})
        body = assert_problem(resp, 409, "conflict")
        assert problem_fields(body) == {"queues[jobs]"}, body
        assert f"queue jobs exists with {named} where Warren makes" in body["detail"], body["detail"]
        assert queue_state(mgmt, vhost, "jobs") == made
        assert queue_names(api_a, env) == before
        assert mgmt.get_json(f"policies/{vhost}") == []  or all(
            p["name"] != "warren.queue.jobs" for p in mgmt.get_json(f"policies/{vhost}"))
    finally:
        conn.close()


def test_a_queue_the_tenant_made_exactly_as_warren_would_is_adopted(api_a, new_name, mgmt):
    env = api_a.create_ok({"name": new_name("adopt")})
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.queue_declare("jobs", durable=True, arguments=CLASSIC)
        ch.confirm_delivery()
        ch.basic_publish("", "jobs", b"kept", properties=pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()
    resp = patch(api_a, env, {"queues": [{"name": "jobs", "type": "classic"}]})
    assert resp.status_code == 200, resp.text
    assert "jobs" in [q["name"] for q in resp.json()["queues"]]
    q = mgmt.queue(env["vhost"], "jobs")
    assert q["durable"] is True and q["auto_delete"] is False
    # Adopted, not made anew: the tenant's message is still there.
    conn = connect(env)
    try:
        method, _props, got = conn.channel().basic_get("jobs", auto_ack=True)
        assert method is not None and got == b"kept"
    finally:
        conn.close()


def test_a_dead_letter_queue_of_another_type_is_a_conflict_not_a_502(api_a, new_name, mgmt):
    env = api_a.create_ok({"name": new_name("adopt")})
    vhost = env["vhost"]
    before = queue_names(api_a, env)
    conn = connect(env)
    try:
        conn.channel().queue_declare("jobs.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        made = queue_state(mgmt, vhost, "jobs.dlq")
        resp = patch(api_a, env, {"queues": [{"name": "jobs", "type": "classic", "dead_letter": True}]})
        body = assert_problem(resp, 409, "conflict")
        assert problem_fields(body) == {"queues[jobs].dead_letter"}, body
        assert "queue jobs.dlq" in body["detail"] and "type quorum where Warren makes type classic" in body["detail"], body
        assert queue_state(mgmt, vhost, "jobs.dlq") == made
        assert queue_names(api_a, env) == before
    finally:
        conn.close()


def test_a_dead_letter_exchange_of_another_type_is_a_conflict_not_a_502(api_a, new_name, mgmt):
    env = api_a.create_ok({"name": new_name("adopt")})
    vhost = env["vhost"]
    dlx = f"{env['exchange']['name']}.dlx"
    before = queue_names(api_a, env)
    conn = connect(env)
    try:
        conn.channel().exchange_declare(dlx, "topic", durable=True)
        resp = patch(api_a, env, {"queues": [{"name": "jobs", "type": "classic", "dead_letter": True}]})
        body = assert_problem(resp, 409, "conflict")
        assert problem_fields(body) == {"queues[jobs].dead_letter"}, body
        assert f"exchange {dlx}" in body["detail"] and "type topic where Warren makes type direct" in body["detail"], body
        assert mgmt.exchange(vhost, dlx)["type"] == "topic"
        assert queue_names(api_a, env) == before
    finally:
        conn.close()

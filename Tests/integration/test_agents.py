"""Agent roles, against a real broker of each release, with pika and the credentials Warren issued.

A crew on a topic exchange: `planner` publishes `plans.*` and reads `results`; `worker`
publishes `results.#` and reads `plans`; `auditor` only reads `results.dlq`. A repeated create issues each
agent fresh credentials, as it does for every role. The broker itself enforces each: a publish outside an agent's patterns closes its channel (403 ACCESS_REFUSED),
inside them it is confirmed and delivered; an agent reading a queue it was not given is
refused; none may declare, bind, or use the default exchange.

Rotation and revocation work per agent: a rotation of `worker` that revokes the others at once
ends the old worker's logins and nobody else's. Bad input (publish patterns on a direct
exchange, a queue the environment lacks, three `#` words, a built-in role's name, more users
than the ceiling, an unknown agent's rotation) is a 400 naming the field, and changes nothing.
"""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from schemathesis_hooks import beyond_schema
from warren_support import (amqp_params, assert_problem, connection_refusal, problem_fields, seg,
                            vhost_of)


def crew_body(name: str) -> dict:
    return {
        "name": name,
        "exchange": {"name": "crew", "type": "topic"},
        "queues": [{"name": "plans"}, {"name": "results", "dead_letter": True}],
        "bindings": [{"queue": "plans", "routing_key": "plans.#"}, {"queue": "results", "routing_key": "results.#"}],
        "agents": [
            {"name": "planner", "publish": ["plans.*"], "consume": ["results"]},
            {"name": "worker", "publish": ["results.#"], "consume": ["plans"]},
            {"name": "auditor", "consume": ["results.dlq"]},
        ],
    }


def connect(created: dict, credentials: dict) -> pika.BlockingConnection:
    conn = created["connection"]
    return pika.BlockingConnection(amqp_params(conn["host"], conn["port"], conn["vhost"],
                                               credentials["username"], credentials["password"]))


def refused(action) -> pika.exceptions.ChannelClosedByBroker:
    """Runs action(channel) on a fresh channel and expects the broker to close it with 403."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        action()
    assert closed.value.reply_code == 403, closed.value
    return closed.value


def publish_refused(conn: pika.BlockingConnection, exchange: str, key: str) -> None:
    ch = conn.channel()
    ch.confirm_delivery()
    refused(lambda: ch.basic_publish(exchange=exchange, routing_key=key, body=b"x", mandatory=True))


def get_refused(conn: pika.BlockingConnection, queue: str) -> None:
    ch = conn.channel()
    refused(lambda: ch.basic_get(queue=queue, auto_ack=True))


@pytest.fixture
def crew(client, new_name):
    """A crew of team-a's, made for one test (removed after it)."""
    api = client("team-a")
    name = new_name("crew")
    return api, name, api.create_ok(crew_body(name))


def test_a_create_issues_each_agent_its_credentials_and_get_shows_the_agents(crew, mgmt):
    api, name, created = crew
    roles = created["role_credentials"]
    assert set(roles) == {"planner", "worker", "auditor"}, roles
    assert all(roles[agent]["role"] == agent for agent in roles)
    assert len({c["username"] for c in roles.values()} | {created["credentials"]["username"]}) == 4
    assert [agent["name"] for agent in created["agents"]] == ["planner", "worker", "auditor"]

    shown = api.get_ok(name)
    assert shown["agents"] == created["agents"]
    assert {shown["user_roles"][c["username"]] for c in roles.values()} == {"planner", "worker", "auditor"}
    # The broker holds the routing keys as topic permissions on the crew exchange.
    vhost = vhost_of("team-a", name)
    topic = mgmt.get_json(f"topic-permissions/{seg(vhost)}/{seg(roles['planner']['username'])}")
    assert [(t["exchange"], t["read"]) for t in topic] == [("crew", "^$")], topic
    # The broker answers 404 for a user with no topic permissions at all.
    assert mgmt.get_json(f"topic-permissions/{seg(vhost)}/{seg(roles['auditor']['username'])}") in (None, [])


def test_the_broker_lets_each_agent_publish_only_its_keys(crew):
    _, _, created = crew
    roles = created["role_credentials"]
    planner = connect(created, roles["planner"])
    worker = connect(created, roles["worker"])
    try:
        # Inside its patterns: confirmed, routed, and read by the worker, whose queue it is.
        assert publish_and_get_split(planner, worker, "plans.step1", "plans", b"plan") == b"plan"
        # Outside: a word too many for `*`, a word too few, another agent's keys, anything else,
        # and the default exchange.
        for key in ["plans.step1.extra", "plans", "results.step1", "other"]:
            publish_refused(planner, "crew", key)
        publish_refused(planner, "", "plans")
        publish_refused(worker, "crew", "plans.step2")
    finally:
        planner.close()
        worker.close()


def test_the_broker_lets_each_agent_read_only_its_queues_and_configure_nothing(crew):
    _, _, created = crew
    roles = created["role_credentials"]
    planner = connect(created, roles["planner"])
    worker = connect(created, roles["worker"])
    auditor = connect(created, roles["auditor"])
    try:
        # The worker's result reaches the planner's queue; the planner reads it.
        assert publish_and_get_split(worker, planner, "results.step1.done", "results", b"done") == b"done"
        get_refused(planner, "plans")
        get_refused(worker, "results")
        get_refused(auditor, "results")
        ch = auditor.channel()
        method, _props, _body = ch.basic_get(queue="results.dlq", auto_ack=True)  # allowed, empty
        assert method is None
        ch.close()
        publish_refused(auditor, "crew", "results.x")
        for conn in (planner, worker, auditor):
            ch = conn.channel()
            refused(lambda: ch.queue_declare(queue="mine", durable=True))
            ch = conn.channel()
            refused(lambda: ch.queue_bind(queue="plans", exchange="crew", routing_key="#"))
    finally:
        for conn in (planner, worker, auditor):
            conn.close()


def publish_and_get_split(publisher: pika.BlockingConnection, reader: pika.BlockingConnection, key: str, queue: str,
                          body: bytes) -> bytes | None:
    """Publishes (confirmed, mandatory) with one agent and reads the queue with another."""
    ch = publisher.channel()
    ch.confirm_delivery()
    ch.basic_publish(exchange="crew", routing_key=key, body=body, mandatory=True)
    ch.close()
    rch = reader.channel()
    try:
        for _ in range(200):
            method, _props, got = rch.basic_get(queue=queue, auto_ack=True)
            if method is not None:
                return got
            reader.sleep(0.05)
        return None
    finally:
        rch.close()


def test_rotation_and_revocation_are_per_agent(client, new_name):
    api = client("team-a")
    name = new_name("crew")
    created = api.create_ok(crew_body(name))
    roles = created["role_credentials"]
    resp = api.request("POST", f"/v1/environments/{name}/credentials",
                       json_body={"role": "worker", "revoke_others_after_seconds": 0})
    assert resp.status_code == 201, resp.text
    issued = resp.json()
    assert issued["credentials"]["role"] == "worker"
    old = roles["worker"]
    connection_refusal(amqp_params(created["connection"]["host"], created["connection"]["port"],
                                   created["connection"]["vhost"], old["username"], old["password"]))
    # The new worker has the worker's keys, not more; the planner kept its login.
    worker = connect(created, issued["credentials"])
    planner = connect(created, roles["planner"])
    try:
        assert publish_and_get_split(worker, planner, "results.a", "results", b"r") == b"r"
        publish_refused(worker, "crew", "plans.a")
    finally:
        worker.close()
        planner.close()
    shown = api.get_ok(name)
    assert shown["user_roles"][issued["credentials"]["username"]] == "worker"
    assert roles["worker"]["username"] not in shown["users"]
    assert roles["planner"]["username"] in shown["users"]

    # Revoking one agent's user ends its logins and nobody else's.
    auditor = roles["auditor"]
    resp = api.request("DELETE", f"/v1/environments/{name}/credentials/{auditor['username']}")
    assert resp.status_code == 204, resp.text
    connection_refusal(amqp_params(created["connection"]["host"], created["connection"]["port"],
                                   created["connection"]["vhost"], auditor["username"], auditor["password"]))
    connect(created, roles["planner"]).close()

    # An agent the environment does not have, or a name no role can have: 400 naming `role`.
    for role in ["stranger", "Not A Role"]:
        resp = api.request("POST", f"/v1/environments/{name}/credentials", json_body={"role": role})
        problem = assert_problem(resp, 400, "invalid-field")
        assert problem_fields(problem) == {"role"}, problem
        # A name of a role's form is schema-valid: which agents exist is beyond the schema.
        assert beyond_schema("POST /v1/environments/{id}/credentials", problem) is (role == "stranger"), problem
    assert set(api.get_ok(name)["users"]) == set(shown["users"]) - {auditor["username"]}


def test_a_repeated_create_is_the_same_crew_and_another_crew_is_a_conflict(client, new_name):
    api = client("team-a")
    name = new_name("crew")
    first = api.create_ok(crew_body(name))
    # A repeated create issues fresh credentials, as for any environment: one set per agent too.
    again = api.create(crew_body(name))
    assert again.status_code == 200, again.text
    fresh = again.json()["role_credentials"]
    assert {role: c["role"] for role, c in fresh.items()} == {"planner": "planner", "worker": "worker", "auditor": "auditor"}
    assert not {c["username"] for c in fresh.values()} & {c["username"] for c in first["role_credentials"].values()}
    changed = crew_body(name)
    changed["agents"][0]["publish"] = ["plans.#"]
    problem = assert_problem(api.create(changed), 409, "conflict")
    assert "agents" in problem.get("fields", []) or "agents" in problem["detail"], problem


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b["exchange"].update(type="direct"), "agents[0].publish"),
    (lambda b: b["agents"][0].update(consume=["nowhere"]), "agents[0].consume[0]"),
    (lambda b: b["agents"][0].update(publish=["#.a.#.b.#"]), "agents[0].publish[0]"),
    (lambda b: b["agents"][0].update(publish=["plans*"]), "agents[0].publish[0]"),
    (lambda b: b["agents"][0].update(name="producer"), "agents[0].name"),
    (lambda b: b["agents"].append({"name": "idle"}), "agents[3]"),
    (lambda b: b["agents"][2].update(publish=[]), "agents[2].publish"),
    (lambda b: b["agents"].append(dict(b["agents"][0])), "agents[3].name"),
    (lambda b: b.update(roles=["producer", "consumer"], agents=[{"name": f"a{i}", "consume": ["plans"]} for i in range(14)]),
     "agents"),
])
def test_a_crew_it_cannot_make_is_a_400_that_changes_nothing(client, new_name, mgmt, broker_unchanged, mutate, field):
    api = client("team-a")
    name = new_name("crew")
    body = crew_body(name)
    mutate(body)
    problem = assert_problem(api.create(body), 400, "invalid-field")
    assert field in problem_fields(problem), problem
    assert mgmt.vhost(vhost_of("team-a", name)) is None
    broker_unchanged("a refused crew")


def test_the_single_queue_form_checks_its_agents_too(client, new_name, mgmt, broker_unchanged):
    """Problems of fields the single-queue form derives are left unsaid; an agent is never
    derived, so its problems are said (and nothing is recorded that a later read would find
    invalid)."""
    api = client("team-a")
    name = new_name("solo")
    for agents, field in [([{"name": "reader", "consume": ["nowhere"]}], "agents[0].consume[0]"),
                          ([{"name": "x", "consume": [name]}, {"name": "x", "consume": [name]}], "agents[1].name")]:
        problem = assert_problem(api.create({"name": name, "agents": agents}), 400, "invalid-field")
        assert field in problem_fields(problem), problem
    assert mgmt.vhost(vhost_of("team-a", name)) is None
    broker_unchanged("refused single-queue crews")
    reader = api.create_ok({"name": name, "agents": [{"name": "reader", "consume": [name]}]})
    assert set(reader["role_credentials"]) == {"reader"}

"""What autoscalers read, for tenants who have no management access (docs/keda.md):
GET /v1/environments/{id}/queues (each queue's ready and unacknowledged messages, consumers and
rates) and GET /v1/environments/{id}/keda (a KEDA ScaledObject and TriggerAuthentication).

The figures are the broker's statistics, which lag by its statistics interval (5 s by default;
RabbitMQ 3.10 shows a new quorum queue's counts only after about 10 s). So every check of a
figure polls until the figures are the ones the test made, within a bound (BOUND) that says
what must happen, never how fast; what is made is exact: N messages published with publisher
confirms (the broker holds them when basic_publish returns), M of them held unacknowledged by a
consumer whose prefetch is M.

The KEDA manifests are checked for what KEDA needs of them, read back as YAML too (a ScaledObject
is usually kept as YAML), and the read KEDA's AMQP mode makes is made: the Secret's URI with the
consumer role's credentials, and a passive declaration of the queue, whose answer counts its
ready messages.
"""

from __future__ import annotations

import urllib.parse

import pika
import pytest
import yaml

from warren_support import amqp_params, amqp_params_from_uri, assert_problem, problem_fields, wait_for

PUBLISHED = 12  # N: published to the queue with confirms
HELD = 4  # M: delivered to a consumer whose prefetch is M, and never acknowledged
TENANT_OWN = 3  # published to a queue the tenant declared itself
# How long the statistics may take to show what was made (the interval is 5 s; a new quorum
# queue on 3.10 takes about 10 s; a busy machine more).
BOUND = 60


def connect(env: dict, credentials: dict | None = None) -> pika.BlockingConnection:
    c = env["connection"]
    creds = credentials or env["credentials"]
    return pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"]))


def publish(ch, exchange: str, routing_key: str, count: int, label: str = "job") -> None:
    """Publishes with confirms (the channel is in confirm mode) and mandatory: each is held by
    the broker, in a queue, when this returns."""
    for i in range(count):
        ch.basic_publish(exchange, routing_key, f"{label} {i}".encode(),
                         properties=pika.BasicProperties(delivery_mode=2), mandatory=True)


def queue_depths(api, name: str) -> dict[str, dict]:
    """GET .../queues (checked against openapi.yaml by `api`), by queue name; the list is sorted
    by name and every entry's `messages` is ready plus unacknowledged."""
    resp = api.request("GET", f"/v1/environments/{name}/queues")
    assert resp.status_code == 200, resp.text[:500]
    queues = resp.json()["queues"]
    names = [q["name"] for q in queues]
    assert names == sorted(names), names
    for q in queues:
        assert q["messages"] == q["messages_ready"] + q["messages_unacknowledged"], q
        assert q["publish_rate"] >= 0 and q["deliver_rate"] >= 0, q
    return {q["name"]: q for q in queues}


def figures(depths: dict[str, dict]) -> dict[str, tuple[int, int, int]]:
    return {name: (q["messages_ready"], q["messages_unacknowledged"], q["consumers"]) for name, q in depths.items()}


def test_depths_count_ready_unacknowledged_and_consumers(api_a, new_name, mgmt):
    name = new_name("depth")
    env = api_a.create_ok({"name": name, "queues": [{"name": "jobs", "dead_letter": True},
                                                    {"name": "results", "type": "classic"}]})
    # Warren's claim queue is in the vhost, and must never be listed.
    assert mgmt.queue(env["vhost"], "warren.claim") is not None
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("tenant-own", durable=True)  # a queue the tenant declared itself
        publish(ch, env["exchange"]["name"], "jobs", PUBLISHED)
        publish(ch, "", "tenant-own", TENANT_OWN, label="own")
        held = []
        worker = conn.channel()
        worker.basic_qos(prefetch_count=HELD)
        worker.basic_consume("jobs", lambda _ch, method, _props, _body: held.append(method.delivery_tag), auto_ack=False)
        wait_for(lambda: conn.process_data_events(time_limit=0.1) or len(held) == HELD, 30,
                 what=f"the consumer to be handed its {HELD} messages")

        expected = {"jobs": (PUBLISHED - HELD, HELD, 1), "jobs.dlq": (0, 0, 0), "results": (0, 0, 0),
                    "tenant-own": (TENANT_OWN, 0, 0)}
        seen: list[dict] = []

        def matches() -> bool:
            conn.process_data_events(time_limit=0)  # the consumer's connection stays served
            seen.append(queue_depths(api_a, name))
            return figures(seen[-1]) == expected

        try:
            wait_for(matches, BOUND, interval=0.5, what="the queue figures")
        except AssertionError:
            raise AssertionError(f"the figures never became {expected}; the last seen: {figures(seen[-1])}")
        assert len(held) == HELD, "the prefetch bounds what the consumer holds"
        # From the first answer on, the claim queue was never among the queues.
        assert all("warren.claim" not in depths for depths in seen)
        assert all(set(depths) == set(expected) for depths in seen), [sorted(d) for d in seen]
    finally:
        conn.close()
    # The consumer gone, its messages are ready again.
    wait_for(lambda: figures(queue_depths(api_a, name))["jobs"] == (PUBLISHED, 0, 0), BOUND, interval=0.5,
             what="the held messages to be ready again once the consumer's connection closed")


def test_rates_follow_a_stream(api_a, new_name):
    """publish_rate and deliver_rate are each the queue's own: messages go one at a time through
    `stream` (published and consumed) and into `backlog` (published, consumed by nobody) until
    the rates show, and `backlog` never shows a delivery."""
    name = new_name("rates")
    env = api_a.create_ok({"name": name, "queues": [{"name": "stream", "type": "classic"}, {"name": "backlog"}]})
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        consumed = []
        reader = conn.channel()
        reader.basic_consume("stream", lambda _ch, _m, _p, body: consumed.append(body), auto_ack=True)
        seen: list[dict] = []

        def flowing() -> bool:
            publish(ch, env["exchange"]["name"], "stream", 1, label="tick")
            publish(ch, env["exchange"]["name"], "backlog", 1, label="kept")
            conn.process_data_events(time_limit=0.2)
            seen.append(queue_depths(api_a, name))
            stream, backlog = seen[-1]["stream"], seen[-1]["backlog"]
            return stream["publish_rate"] > 0 and stream["deliver_rate"] > 0 and backlog["publish_rate"] > 0

        try:
            wait_for(flowing, BOUND, interval=0.3, what="the rates of queues with messages going in")
        except AssertionError:
            raise AssertionError(f"the rates never showed; the last figures: {seen[-1]}")
        assert consumed, "the consumer received the stream"
        delivered = [d["backlog"]["deliver_rate"] for d in seen]
        assert set(delivered) == {0}, f"a queue nobody consumes from showed deliveries: {delivered}"
    finally:
        conn.close()


def test_only_the_team_sees_its_queues(api_a, api_b, anon, new_name):
    name = new_name("depthteam")
    api_a.create_ok({"name": name})
    assert queue_depths(api_a, name)
    for path in (f"/v1/environments/{name}/queues", f"/v1/environments/{name}/keda?queue={name}"):
        assert_problem(api_b.request("GET", path), 404, "not-found")  # another team's: as if absent
        assert_problem(anon.request("GET", path), 401, "unauthorized")
    unknown = new_name("depthnone")
    assert_problem(api_a.request("GET", f"/v1/environments/{unknown}/queues"), 404, "not-found")
    assert_problem(api_a.request("GET", f"/v1/environments/{unknown}/keda?queue=jobs"), 404, "not-found")
    # An id that could not name an environment is not found either, and reaches no broker.
    assert_problem(api_a.request("GET", "/v1/environments/Not_A_Name/queues"), 404, "not-found")


# --------------------------------------------------------------------------------------------
# KEDA


def keda(api, name: str, query: str = ""):
    return api.request("GET", f"/v1/environments/{name}/keda?{query}")


def check_manifests(body: dict, *, deployment: str, secret: str, queue: str, vhost: str, target: int,
                    min_replicas: int, max_replicas: int) -> None:
    """What KEDA requires of the two manifests, and that they name each other."""
    so, ta = body["scaled_object"], body["trigger_authentication"]
    assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject", so
    assert so["metadata"]["name"] == deployment
    spec = so["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (min_replicas, max_replicas), spec
    assert len(spec["triggers"]) == 1, spec["triggers"]
    trigger = spec["triggers"][0]
    assert trigger["type"] == "rabbitmq"
    # KEDA's trigger metadata is a map of strings.
    assert trigger["metadata"] == {"protocol": "amqp", "mode": "QueueLength", "value": str(target),
                                   "queueName": queue, "vhostName": vhost}, trigger["metadata"]
    assert trigger["authenticationRef"]["name"] == ta["metadata"]["name"]
    assert ta["apiVersion"] == "keda.sh/v1alpha1" and ta["kind"] == "TriggerAuthentication", ta
    assert ta["spec"] == {"secretTargetRef": [{"parameter": "host", "name": secret, "key": "host"}]}, ta["spec"]
    assert body["secret"]["name"] == secret and body["secret"]["key"] == "host", body["secret"]


def secret_uri(template: str, credentials: dict) -> str:
    """The URI the team puts in the Secret: the template with the credentials, percent-encoded."""
    return (template.replace("{username}", urllib.parse.quote(credentials["username"], safe=""))
            .replace("{password}", urllib.parse.quote(credentials["password"], safe="")))


def test_keda_manifests_are_what_keda_reads(api_a, new_name):
    name = new_name("keda")
    env = api_a.create_ok({"name": name, "queues": [{"name": "jobs", "dead_letter": True}], "roles": ["consumer"]})
    consumer = env["role_credentials"]["consumer"]
    resp = keda(api_a, name, "queue=jobs&deployment=gpu-worker&target=5&min_replicas=1&max_replicas=8&secret=scoring.amqp")
    assert resp.status_code == 200, resp.text[:500]
    body = resp.json()
    check_manifests(body, deployment="gpu-worker", secret="scoring.amqp", queue="jobs", vhost=env["vhost"],
                    target=5, min_replicas=1, max_replicas=8)
    for credentials in (env["credentials"], consumer):
        assert credentials["password"] not in resp.text and credentials["username"] not in resp.text, (
            "the answer holds credentials")

    # As YAML, which is how a ScaledObject is usually kept: the same document, strings stay strings.
    manifests = [body["scaled_object"], body["trigger_authentication"]]
    documents = list(yaml.safe_load_all(yaml.safe_dump_all(manifests, sort_keys=False)))
    assert documents == manifests
    assert isinstance(documents[0]["spec"]["triggers"][0]["metadata"]["value"], str)

    # KEDA's AMQP mode: a connection with the Secret's URI, a passive declaration of the queue.
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        publish(ch, env["exchange"]["name"], "jobs", PUBLISHED)
    finally:
        conn.close()
    uri = secret_uri(body["secret"]["uri_template"], consumer)
    trigger = body["scaled_object"]["spec"]["triggers"][0]["metadata"]
    assert urllib.parse.unquote(urllib.parse.urlsplit(uri).path[1:]) == trigger["vhostName"]
    reader = pika.BlockingConnection(amqp_params_from_uri(uri))
    try:
        declared = reader.channel().queue_declare(trigger["queueName"], passive=True)
        assert declared.method.message_count == PUBLISHED, declared.method
    finally:
        reader.close()
    # Warren's own figure of the same queue comes to the same count.
    wait_for(lambda: queue_depths(api_a, name)["jobs"]["messages_ready"] == PUBLISHED, BOUND, interval=0.5,
             what="the queue's ready messages in GET .../queues")


def test_keda_defaults_tenant_queues_and_unknown_queues(api_a, new_name, env_with_trailing_dash):
    name, env = env_with_trailing_dash
    base = name.rstrip("-")
    conn = connect(env)
    try:
        conn.channel().queue_declare("tenant own+1", durable=True)  # any name the broker takes
    finally:
        conn.close()

    body = keda(api_a, name, f"queue={urllib.parse.quote(name)}").json()
    check_manifests(body, deployment=base, secret=f"{base}-rabbitmq", queue=name, vhost=env["vhost"],
                    target=10, min_replicas=0, max_replicas=10)
    # max_replicas follows a min_replicas above its default.
    body = keda(api_a, name, f"queue={name}&min_replicas=20").json()
    assert (body["scaled_object"]["spec"]["minReplicaCount"], body["scaled_object"]["spec"]["maxReplicaCount"]) == (20, 20)
    # A queue the tenant declared: `+` is a space, `%2B` a plus.
    for query in ("queue=tenant+own%2B1", "queue=tenant%20own%2B1"):
        resp = keda(api_a, name, query)
        assert resp.status_code == 200, (query, resp.text[:300])
        assert resp.json()["scaled_object"]["spec"]["triggers"][0]["metadata"]["queueName"] == "tenant own+1"
    # A queue the environment does not have is not found, named; Warren's own is never offered.
    for queue in ("nope", "warren.claim", "tenant own 1"):
        problem = assert_problem(keda(api_a, name, f"queue={urllib.parse.quote(queue)}"), 404, "not-found")
        assert queue in problem["detail"], problem


@pytest.fixture
def env_with_trailing_dash(api_a, new_name):
    """An environment whose name ends with '-', which no Kubernetes name may."""
    name = new_name("kedadef") + "-"
    new_name.names.append(name)  # removed afterwards with the others
    return name, api_a.create_ok({"name": name})


# (query, the parameter the 400 names)
BAD_QUERIES = [
    ("", "queue"),
    ("queue=", "queue"),
    ("queue=jobs&queue=jobs", "queue"),
    ("queue=jobs&target=0", "target"),
    ("queue=jobs&target=ten", "target"),
    ("queue=jobs&target=1000001", "target"),
    ("queue=jobs&target=%ZZ", "target"),
    ("queue=jobs&min_replicas=-1", "min_replicas"),
    ("queue=jobs&max_replicas=0", "max_replicas"),
    ("queue=jobs&min_replicas=3&max_replicas=2", "max_replicas"),
    ("queue=jobs&deployment=Gpu_Worker", "deployment"),
    ("queue=jobs&deployment=gpu-", "deployment"),
    ("queue=jobs&deployment=" + "a" * 64, "deployment"),
    ("queue=jobs&secret=a..b", "secret"),
    ("queue=jobs&secret=" + "a" * 254, "secret"),
]


def test_keda_bad_parameters_are_400_naming_each(api_a, new_name, mgmt):
    name = new_name("kedabad")
    api_a.create_ok({"name": name, "queues": [{"name": "jobs"}]})
    before = mgmt.snapshot()
    for query, field in BAD_QUERIES:
        problem = assert_problem(keda(api_a, name, query), 400, "invalid-field")
        assert problem_fields(problem) == {field}, (query, problem["errors"])
    # Several at once are all named.
    problem = assert_problem(keda(api_a, name, "target=0&deployment=X&min_replicas=9&max_replicas=1"), 400, "invalid-field")
    assert problem_fields(problem) == {"queue", "target", "deployment", "max_replicas"}, problem["errors"]
    assert mgmt.snapshot() == before, "a refused request changed the broker"
    # Parameters Warren does not know are ignored, as everywhere in the API.
    assert keda(api_a, name, "queue=jobs&namespace=x").status_code == 200

"""Credentials as Kubernetes Secrets in the servicebinding.io layout (docs/api.md, "Kubernetes
Secrets"): `?secret=kubernetes` (and `secret_namespace`) on a create (synchronous, asynchronous,
repeated, with roles) and a rotation, and `parameters.secret` on an Open Service Broker bind.

Every Secret answered is checked three ways, none of them Warren's own code: against
Kubernetes' rules for a Secret (its shape, a DNS-1123 subdomain name, label keys and values,
data keys), against servicebinding.io's well-known entries (type, provider, host, port,
username, password, uri), and by the `kubernetes` client's own `V1Secret` model, which must read
it back with nothing lost. Then its `uri` is used with pika: the producer's publishes, the
consumer's consumes, the full set does both. The password is in that answer only (GET shows no
Secret); a bad parameter is a 400 naming it that changes nothing on the broker; and without the
parameter an answer has exactly the keys it had before.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import pika
import pika.exceptions
import pytest
from kubernetes.client import ApiClient

from warren_support import amqp_params_from_uri, assert_osb_error, assert_problem, problem_fields, wait_for

# Kubernetes' own validation (k8s.io/apimachinery/pkg/util/validation).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# servicebinding.io core spec 1.0.0, "Well-known Secret Entries": `type` is required, the
# others are what a RabbitMQ binding carries (Warren serves no TLS entries: `certificates`,
# `private-key` stay out).
SERVICEBINDING_REQUIRED = {"type", "provider", "host", "port", "username", "password", "uri"}
SECRET_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "type", "stringData"],
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "Secret"},
        "type": {"const": "servicebinding.io/rabbitmq"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "labels"],
            "properties": {
                "name": {"type": "string", "maxLength": 253},
                "namespace": {"type": "string", "maxLength": 63},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
            },
        },
        "stringData": {
            "type": "object",
            "required": sorted(SERVICEBINDING_REQUIRED | {"vhost"}),
            "additionalProperties": {"type": "string"},
            "properties": {"type": {"const": "rabbitmq"}, "provider": {"const": "warren"},
                           "port": {"pattern": "^[0-9]+$"}},
        },
    },
}


def validate_secret(secret: dict, *, namespace: str | None = None) -> dict:
    """Asserts that Kubernetes and a servicebinding.io workload would take `secret`; returns its
    stringData."""
    import jsonschema
    jsonschema.validate(secret, SECRET_SCHEMA)
    meta = secret["metadata"]
    assert DNS1123_SUBDOMAIN.fullmatch(meta["name"]) and len(meta["name"]) <= 253, meta["name"]
    assert meta.get("namespace") == namespace, meta
    if namespace is not None:
        assert DNS1123_LABEL.fullmatch(meta["namespace"]) and len(meta["namespace"]) <= 63
    for key, value in meta["labels"].items():
        prefix, _, name = key.rpartition("/")
        assert not prefix or (DNS1123_SUBDOMAIN.fullmatch(prefix) and len(prefix) <= 253), key
        assert QUALIFIED_NAME.fullmatch(name) and len(name) <= 63, key
        assert LABEL_VALUE.fullmatch(value) and len(value) <= 63, (key, value)
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "warren"
    data = secret["stringData"]
    for key in data:
        assert SECRET_KEY.fullmatch(key) and len(key) <= 253, key
    assert len(json.dumps(data).encode()) < 1024 * 1024  # a Secret's limit
    # The uri says what the entries say.
    uri = urllib.parse.urlsplit(data["uri"])
    assert uri.scheme == "amqp"
    assert (uri.hostname, uri.port) == (data["host"].strip("[]").lower(), int(data["port"]))
    assert urllib.parse.unquote(uri.username) == data["username"]
    assert urllib.parse.unquote(uri.password) == data["password"]
    assert urllib.parse.unquote(uri.path[1:]) == data["vhost"]
    # The kubernetes client's model reads it, and writes back exactly what it read: every key
    # is one Kubernetes knows, spelled as it spells it.
    client = ApiClient()
    model = client._ApiClient__deserialize(secret, "V1Secret")
    assert model.kind == "Secret" and model.string_data == data and model.metadata.name == meta["name"]
    assert client.sanitize_for_serialization(model) == secret
    return data


def k8s_query(namespace: str | None = None) -> str:
    return "?secret=kubernetes" + (f"&secret_namespace={namespace}" if namespace else "")


def connect(uri: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(amqp_params_from_uri(uri))


def publish(uri: str, exchange: str, routing_key: str, body: bytes) -> None:
    conn = connect(uri)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, routing_key, body, properties=pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        conn.close()


def consume(uri: str, queue: str) -> bytes:
    conn = connect(uri)
    try:
        ch = conn.channel()

        def got():
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            return body if method is not None else None
        return wait_for(got, timeout=20, what=f"a message in {queue}")
    finally:
        conn.close()


def test_create_with_roles_renders_one_secret_per_set_and_each_uri_works(api_a, new_name):
    name = new_name("k8s")
    resp = api_a.request("POST", "/v1/environments" + k8s_query("payments"),
                         json_body={"name": name, "roles": ["producer", "consumer"]})
    assert resp.status_code == 201, resp.text[:1000]
    assert resp.headers.get("Cache-Control") == "no-store"
    env = resp.json()
    secrets = env["kubernetes_secrets"]
    assert [s["metadata"]["labels"]["warren/role"] for s in secrets] == ["full", "producer", "consumer"]
    data = {s["metadata"]["labels"]["warren/role"]: validate_secret(s, namespace="payments") for s in secrets}
    assert len({s["metadata"]["name"] for s in secrets}) == 3
    assert all(s["metadata"]["labels"]["warren/environment"] == name for s in secrets)
    # The same sets as the answer's own fields, and where they connect.
    assert data["full"]["password"] == env["credentials"]["password"]
    assert data["full"]["uri"] == env["connection"]["uri"]
    for role in ("producer", "consumer"):
        assert data[role]["username"] == env["role_credentials"][role]["username"]
        assert data[role]["password"] == env["role_credentials"][role]["password"]
    assert {d["host"] for d in data.values()} == {env["connection"]["host"]}
    assert {d["vhost"] for d in data.values()} == {env["vhost"]}

    exchange, key, queue = env["exchange"]["name"], env["routing_key"], env["queue"]["name"]
    publish(data["producer"]["uri"], exchange, key, b"from the producer's Secret")
    assert consume(data["consumer"]["uri"], queue) == b"from the producer's Secret"
    publish(data["full"]["uri"], exchange, key, b"from the full Secret")
    assert consume(data["full"]["uri"], queue) == b"from the full Secret"

    # Nothing afterwards shows a Secret, nor any password.
    got = api_a.request("GET", f"/v1/environments/{name}")
    assert got.status_code == 200
    assert "kubernetes_secrets" not in got.json()
    for d in data.values():
        assert d["password"] not in got.text


def test_each_agent_gets_a_secret_of_its_own_and_its_uri_is_held_to_its_keys(api_a, new_name):
    """Agents' sets are rendered like any other: one Secret each, named after the agent, whose
    uri connects and is held by the broker to the agent's routing keys."""
    name = new_name("k8s-crew")
    body = {"name": name, "exchange": {"name": "crew", "type": "topic"}, "queues": [{"name": "plans"}],
            "bindings": [{"queue": "plans", "routing_key": "plans.#"}],
            "agents": [{"name": "planner", "publish": ["plans.*"]}, {"name": "worker", "consume": ["plans"]}]}
    resp = api_a.request("POST", "/v1/environments" + k8s_query(), json_body=body)
    assert resp.status_code == 201, resp.text[:1000]
    secrets = resp.json()["kubernetes_secrets"]
    assert [s["metadata"]["labels"]["warren/role"] for s in secrets] == ["full", "planner", "worker"]
    data = {s["metadata"]["labels"]["warren/role"]: validate_secret(s) for s in secrets}
    assert [s["metadata"]["name"] for s in secrets][1:] == [f"{name}-planner", f"{name}-worker"]
    publish(data["planner"]["uri"], "crew", "plans.one", b"a plan")
    assert consume(data["worker"]["uri"], "plans") == b"a plan"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        publish(data["planner"]["uri"], "crew", "results.one", b"not the planner's key")


def test_rotation_renders_the_new_set_under_the_same_name(api_a, new_name, mgmt):
    name = new_name("k8s-rot")
    first = api_a.request("POST", "/v1/environments" + k8s_query(), json_body={"name": name})
    assert first.status_code == 201, first.text[:500]
    old = first.json()["kubernetes_secrets"][0]
    resp = api_a.request("POST", f"/v1/environments/{name}/credentials" + k8s_query("team-x"),
                         json_body={"revoke_others_after_seconds": 0})
    assert resp.status_code == 201, resp.text[:500]
    issued = resp.json()
    [secret] = issued["kubernetes_secrets"]
    data = validate_secret(secret, namespace="team-x")
    # Applying it replaces the Secret workloads read: same name, the new set.
    assert secret["metadata"]["name"] == old["metadata"]["name"]
    assert data["username"] == issued["credentials"]["username"] != old["stringData"]["username"]
    assert data["uri"] == issued["connection"]["uri"]
    env = first.json()
    publish(data["uri"], env["exchange"]["name"], env["routing_key"], b"rotated")
    assert consume(data["uri"], env["queue"]["name"]) == b"rotated"


def test_an_asynchronous_and_a_repeated_create_carry_their_sets(api_a, new_name):
    name = new_name("k8s-async")
    resp = api_a.request("POST", "/v1/environments" + k8s_query(), json_body={"name": name},
                         headers={"Prefer": "respond-async"})
    assert resp.status_code == 202, resp.text[:500]
    [secret] = resp.json()["kubernetes_secrets"]
    data = validate_secret(secret)
    wait_for(lambda: api_a.get_ok(name)["status"] == "ready", timeout=60, what=f"{name} ready")
    publish(data["uri"], name, name, b"async")
    assert consume(data["uri"], name) == b"async"
    # A repeated create issues a fresh set (the API's 200): its Secret is that set's.
    again = api_a.request("POST", "/v1/environments" + k8s_query(), json_body={"name": name})
    assert again.status_code == 200, again.text[:500]
    [fresh] = again.json()["kubernetes_secrets"]
    fresh_data = validate_secret(fresh)
    assert fresh_data["username"] == again.json()["credentials"]["username"] != data["username"]
    assert consume_nothing_but_connects(fresh_data["uri"])


def consume_nothing_but_connects(uri: str) -> bool:
    conn = connect(uri)
    conn.close()
    return True


@pytest.mark.parametrize("query, field", [
    ("?secret=kubernetes&secret_namespace=Payments", "secret_namespace"),
    ("?secret=kubernetes&secret_namespace=-payments", "secret_namespace"),
    ("?secret=kubernetes&secret_namespace=" + "a" * 64, "secret_namespace"),
    ("?secret=kubernetes&secret_namespace=a.b", "secret_namespace"),
    ("?secret_namespace=", "secret_namespace"),
    ("?secret=yaml", "secret"),
    ("?secret=kubernetes&secret=kubernetes", "secret"),
])
def test_a_bad_parameter_is_a_400_that_changes_nothing(api_a, new_name, broker_unchanged, mgmt, query, field):
    name = new_name("k8s-bad")
    resp = api_a.request("POST", "/v1/environments" + query, json_body={"name": name, "roles": ["consumer"]})
    body = assert_problem(resp, 400, "invalid-field")
    assert problem_fields(body) == {field}, body
    broker_unchanged(f"POST {query}")
    assert api_a.get(name).status_code == 404


def test_a_bad_parameter_of_a_rotation_makes_no_user(api_a, new_name, mgmt):
    name = new_name("k8s-badrot")
    env = api_a.create_ok({"name": name})
    users = mgmt.users_with_prefix(env["vhost"] + ".")
    resp = api_a.request("POST", f"/v1/environments/{name}/credentials?secret=kubernetes&secret_namespace=No_Such",
                         json_body={"revoke_others_after_seconds": 0})
    body = assert_problem(resp, 400, "invalid-field")
    assert problem_fields(body) == {"secret_namespace"}
    assert mgmt.users_with_prefix(env["vhost"] + ".") == users
    # The old set still logs in: the refused rotation revoked nothing.
    connect(env["connection"]["uri"]).close()


def test_without_the_parameter_the_answers_keep_their_keys(api_a, new_name, report):
    plain_name, k8s_name = new_name("k8s-plain"), new_name("k8s-with")
    plain = api_a.request("POST", "/v1/environments", json_body={"name": plain_name, "roles": ["consumer"]})
    with_secret = api_a.request("POST", "/v1/environments" + k8s_query(), json_body={"name": k8s_name, "roles": ["consumer"]})
    assert plain.status_code == with_secret.status_code == 201
    assert "kubernetes" not in plain.text
    assert set(with_secret.json()) - set(plain.json()) == {"kubernetes_secrets"}
    assert set(plain.json()) - set(with_secret.json()) == set()
    report("kubernetes-secret", f"a create with one role answers {len(plain.content)} bytes, "
           f"{len(with_secret.content)} with its 2 Secrets")
    rotated = api_a.request("POST", f"/v1/environments/{plain_name}/credentials", json_body={})
    assert rotated.status_code == 201
    assert set(rotated.json()) == {"credentials", "connection", "revocations"}
    assert "kubernetes" not in rotated.text


# --- Open Service Broker: bind parameters ------------------------------------------------------

@pytest.fixture
def osb_instance(osb, mgmt):
    import uuid
    from warren_support import osb_environment_name, vhost_of
    platform = osb("cf-a")
    instance = str(uuid.uuid4())
    assert platform.provision(instance, {}).status_code == 201
    yield platform, instance
    mgmt.purge_environment(vhost_of("team-a", osb_environment_name(instance)))


def test_an_osb_bind_carries_the_secret_in_its_credentials(osb_instance):
    platform, instance = osb_instance
    resp = platform.bind(instance, "app-1", {"role": "consumer", "secret": "kubernetes", "secret_namespace": "cf-apps"})
    assert resp.status_code == 201, resp.text[:500]
    credentials = resp.json()["credentials"]
    [secret] = credentials["kubernetes_secrets"]
    data = validate_secret(secret, namespace="cf-apps")
    assert (data["username"], data["password"], data["uri"]) == (credentials["username"], credentials["password"], credentials["uri"])
    assert secret["metadata"]["labels"]["warren/role"] == "consumer"
    assert secret["metadata"]["name"].endswith("-app-1")
    producer = platform.bind(instance, "app-2", {"role": "producer", "secret": "kubernetes"})
    assert producer.status_code == 201, producer.text[:500]
    [producer_secret] = producer.json()["credentials"]["kubernetes_secrets"]
    pdata = validate_secret(producer_secret)
    assert producer_secret["metadata"]["name"] != secret["metadata"]["name"]
    c = credentials
    publish(pdata["uri"], c["exchange"], c["routing_key"], b"bound")
    assert consume(data["uri"], c["queues"][0]) == b"bound"
    # A repeated bind answers the same set; without the parameter, no Secret.
    again = platform.bind(instance, "app-1", {"role": "consumer", "secret": "kubernetes", "secret_namespace": "cf-apps"})
    assert again.status_code == 200 and again.json()["credentials"]["kubernetes_secrets"] == [secret]
    plain = platform.bind(instance, "app-1", {"role": "consumer"})
    assert plain.status_code == 200 and "kubernetes_secrets" not in plain.json()["credentials"]
    fetched = platform.fetch_binding(instance, "app-1")
    assert fetched.status_code == 200 and "kubernetes" not in fetched.text


def test_an_osb_bind_with_a_bad_namespace_makes_no_user(osb_instance, mgmt):
    from warren_support import osb_environment_name, vhost_of
    platform, instance = osb_instance
    vhost = vhost_of("team-a", osb_environment_name(instance))
    users = mgmt.users_with_prefix(vhost + ".")
    resp = platform.bind(instance, "app-bad", {"secret": "kubernetes", "secret_namespace": "Not Valid"})
    assert_osb_error(resp, 400)
    assert "parameters.secret_namespace" in resp.json()["description"]
    resp = platform.bind(instance, "app-bad", {"secret": "helm"})
    assert_osb_error(resp, 400)
    assert "parameters.secret" in resp.json()["description"]
    assert mgmt.users_with_prefix(vhost + ".") == users

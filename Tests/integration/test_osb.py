"""The Open Service Broker API v2.17 under /v2, end to end against a real
broker, as a platform (Cloud Foundry's cloud controller) talks to it.

- The whole conversation: catalog, asynchronous provision polled to `succeeded`, bind, publish
  and consume with the binding's credentials, rotate the binding (the predecessor works until
  its own unbind), unbind (the broker then refuses the old login), update, plan change,
  deprovision polled to 410, and 410 after.
- Every refusal: 412 for the API version, 401, 409 for the same id with other attributes, 422
  AsyncRequired, identical requests answered 200, bad parameters 400 with an OSB error body,
  and none of them changes anything on the broker.
- An attacker's view: a platform of team B never reaches team A's instance by its id, a second
  platform of the same team neither, an instance id that maps to a /v1 environment's name does
  not take it over, and a forged platform field in a record is never acted on.
- Orphan mitigation (fault proxy): a provision that fails at any step, or times out at the
  platform, followed by the platform's DELETE, leaves nothing on the broker.
"""

from __future__ import annotations

import json
import time
import uuid

import pika
import pika.exceptions
import pytest
import requests

import cases
from conftest import OSB_BLUEPRINTS
from schemathesis_hooks import OSB_BEYOND_SCHEMA, OSB_BIND, OSB_PROVISION, OSB_UPDATE, osb_beyond_schema
from test_validation import BEYOND_CREATE, BEYOND_PATCH
from warren_support import (OSB_DEFAULT_PLAN_ID, OSB_SERVICE_ID, amqp_params, amqp_params_from_uri,
                            assert_osb_error, connection_refusal, env_record, env_trace, invariant_violations,
                            osb_environment_name, publish_and_get, seg, vhost_of, wait_for)

LOGIN_REFUSED = (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)
# Short timeouts, so a hung call fails within a test's patience, and a provision whose failure
# could not even be recorded is answered (503) within the create deadline plus 10 s; no janitor
# rounds mid-test, nor usage rounds (the proxy fails the k-th call, whoever makes it).
FAULT_WARREN = {"WARREN_MANAGEMENT_TIMEOUT_MS": "1500", "WARREN_SWEEP_INTERVAL_SECONDS": "3600",
                "WARREN_USAGE_INTERVAL_SECONDS": "86400", "WARREN_CREATE_DEADLINE_SECONDS": "3"}


class Instances:
    """Hands out fresh instance ids and removes whatever their environments left on the broker."""

    def __init__(self, mgmt):
        self.mgmt = mgmt
        self.made: list[str] = []

    def __call__(self) -> str:
        instance_id = str(uuid.uuid4())
        self.made.append(instance_id)
        return instance_id

    def vhost(self, instance_id: str, team: str = "team-a") -> str:
        return vhost_of(team, osb_environment_name(instance_id))

    def cleanup(self) -> None:
        for instance_id in self.made:
            for team in ("team-a", "team-b"):
                self.mgmt.purge_environment(self.vhost(instance_id, team))


@pytest.fixture
def instances(mgmt):
    made = Instances(mgmt)
    yield made
    made.cleanup()


def plan_ids(catalog: dict) -> dict[str, str]:
    return {plan["name"]: plan["id"] for plan in catalog["services"][0]["plans"]}


def connect(credentials: dict) -> pika.BlockingConnection:
    return pika.BlockingConnection(amqp_params_from_uri(credentials["uri"]))


def login_params(credentials: dict):
    return amqp_params(credentials["host"], credentials["port"], credentials["vhost"],
                       credentials["username"], credentials["password"])


def round_trip(credentials: dict, body: bytes) -> bytes:
    conn = connect(credentials)
    try:
        return publish_and_get(conn, credentials["exchange"], credentials["routing_key"], credentials["queues"][0], body)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# The conversation


def test_catalog_offers_one_bindable_rotatable_service_with_stable_ids(osb, spec):
    resp = osb("cf-a").catalog()
    assert resp.status_code == 200, resp.text
    services = resp.json()["services"]
    assert len(services) == 1
    service = services[0]
    assert service["name"] == "rabbitmq-environment" and service["id"] == OSB_SERVICE_ID
    assert service["bindable"] is True and service["instances_retrievable"] is True
    plans = plan_ids(resp.json())
    assert set(plans) == {"default"} | set(OSB_BLUEPRINTS), plans
    assert plans["default"] == OSB_DEFAULT_PLAN_ID
    assert len(set(plans.values())) == len(plans)
    for plan in service["plans"]:
        assert plan["binding_rotatable"] is True and plan["bindable"] is True, plan
        assert plan["plan_updateable"] is True, plan
    # The ids openapi.yaml states are the catalog's.
    assert spec.doc["components"]["schemas"]["OSBServiceId"]["enum"] == [OSB_SERVICE_ID]


def test_a_platform_conversation_from_catalog_to_deprovision(osb, instances, mgmt, client, spec):
    platform = osb("cf-a")
    jobs_plan = plan_ids(platform.catalog().json())["jobs"]
    instance = instances()
    vhost = instances.vhost(instance)

    # Provision, asynchronously, and poll as the cloud controller does.
    resp = platform.provision(instance, {"routing_key": "orders"}, accepts_incomplete=True)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"operation": "provision"}
    done = platform.poll(instance, operation="provision")
    assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
    record = env_record(mgmt.vhost(vhost))
    assert record["platform"]["instance_id"] == instance and record["platform"]["platform"] == "cf-a", record
    assert json.loads(record["platform"]["context"])["organization_guid"] == "org-1"
    assert mgmt.users_with_prefix(vhost + ".") == set(), "provision makes no credentials: bindings do"

    fetched = platform.fetch(instance)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["plan_id"] == OSB_DEFAULT_PLAN_ID and fetched.json()["service_id"] == OSB_SERVICE_ID
    assert fetched.json()["parameters"]["bindings"][0]["routing_key"] == "orders"

    # The same provision again: 200, nothing new.
    again = platform.provision(instance, {"routing_key": "orders"}, accepts_incomplete=True)
    assert again.status_code == 200, again.text

    # Bind; the same bind again answers the same credentials.
    first = platform.bind(instance, "binding-1")
    assert first.status_code == 201, first.text
    creds = first.json()["credentials"]
    assert first.headers.get("Cache-Control") == "no-store"
    for key in ("uri", "host", "port", "vhost", "username", "password", "exchange", "queues", "routing_key"):
        assert key in creds, f"credentials lack {key}: {sorted(creds)}"
    assert creds["vhost"] == vhost and creds["routing_key"] == "orders" and creds["role"] == "full"
    repeated = platform.bind(instance, "binding-1")
    assert repeated.status_code == 200 and repeated.json()["credentials"] == creds, repeated.text
    assert round_trip(creds, b"first") == b"first"
    got = platform.fetch_binding(instance, "binding-1")
    assert got.status_code == 200 and got.json()["credentials"] == creds, got.text
    assert platform.binding_last_operation(instance, "binding-1").json()["state"] == "succeeded"

    # Rotate: a new set; the predecessor keeps working until its own unbind.
    rotated = platform.bind(instance, "binding-2", predecessor="binding-1")
    assert rotated.status_code == 201, rotated.text
    fresh = rotated.json()["credentials"]
    assert fresh["username"] != creds["username"] and fresh["password"] != creds["password"]
    assert fresh["role"] == creds["role"]
    assert round_trip(fresh, b"rotated") == b"rotated"
    assert round_trip(creds, b"still") == b"still", "the predecessor stopped working before its unbind"

    # Unbind the predecessor: the broker refuses its login; the successor goes on.
    gone = platform.unbind(instance, "binding-1")
    assert gone.status_code == 200 and gone.json() == {}, gone.text
    assert isinstance(connection_refusal(login_params(creds)), LOGIN_REFUSED)
    assert round_trip(fresh, b"after") == b"after"
    assert platform.unbind(instance, "binding-1").status_code == 410
    assert platform.fetch_binding(instance, "binding-1").status_code == 404
    # Bindings are synchronous: no asynchronous unbind for a 410 to end, so a binding not there is 404.
    assert_osb_error(platform.binding_last_operation(instance, "binding-1"), 404)

    # Update: a queue added in place; then the plan changed to a blueprint that only adds.
    update = platform.update(instance, {"service_id": OSB_SERVICE_ID,
                                        "parameters": {"queues": [{"name": "audit"}],
                                                       "bindings": [{"queue": "audit", "routing_key": "orders"}]}})
    assert update.status_code == 200, update.text
    assert mgmt.queue(vhost, "audit") is not None
    change = platform.update(instance, {"service_id": OSB_SERVICE_ID, "plan_id": jobs_plan})
    assert change.status_code == 200, change.text
    assert mgmt.queue(vhost, "work") is not None and mgmt.queue(vhost, "retry") is not None
    assert platform.fetch(instance).json()["plan_id"] == jobs_plan
    assert round_trip(fresh, b"grown") == b"grown", "an update cut the binding off"

    # The team sees it in /v1 too, with its platform instance.
    listed = [item for item in client("team-a").list_ok() if item["id"] == osb_environment_name(instance)]
    assert listed and listed[0]["platform"] == {"instance_id": instance, "platform": "cf-a", "plan_id": jobs_plan}, listed

    # Deprovision, asynchronously, polled with the 202's operation until gone (410).
    resp = platform.deprovision(instance, accepts_incomplete=True, plan_id=jobs_plan)
    assert resp.status_code == 202 and resp.json() == {"operation": "deprovision"}, resp.text
    final = platform.poll(instance, operation="deprovision")
    assert final.status_code == 410, final.text
    assert env_trace(mgmt, vhost) == []
    assert isinstance(connection_refusal(login_params(fresh)), (*LOGIN_REFUSED, pika.exceptions.AMQPConnectionError))
    assert platform.deprovision(instance).status_code == 410
    assert platform.fetch(instance).status_code == 404


def test_synchronous_provision_identical_200_conflicts_409(osb, instances, mgmt):
    platform = osb("cf-a")
    instance = instances()
    vhost = instances.vhost(instance)
    resp = platform.provision(instance, {"queue": {"type": "classic"}})
    assert resp.status_code == 201 and resp.json() == {}, resp.text
    assert invariant_violations(mgmt, prefix=vhost) == ["vhost %s: no user {vhost}.{8hex} with permissions on it" % vhost]
    assert platform.last_operation(instance).json()["state"] == "succeeded"

    assert platform.provision(instance, {"queue": {"type": "classic"}}).status_code == 200
    other = platform.provision(instance, {"queue": {"type": "quorum"}})
    assert_osb_error(other, 409)
    jobs = plan_ids(platform.catalog().json())["jobs"]
    assert_osb_error(platform.provision(instance, plan_id=jobs), 409)

    # A binding id used again with another role.
    assert platform.bind(instance, "b", {"role": "producer"}).status_code == 201
    assert_osb_error(platform.bind(instance, "b", {"role": "consumer"}), 409)
    assert platform.bind(instance, "b", {"role": "producer"}).status_code == 200
    # A rotation takes the predecessor's role; another one is refused; a missing one is 422.
    rotated = platform.bind(instance, "b2", predecessor="b")
    assert rotated.status_code == 201 and rotated.json()["credentials"]["role"] == "producer", rotated.text
    assert_osb_error(platform.bind(instance, "b3", {"role": "full"}, predecessor="b"), 400)
    assert_osb_error(platform.bind(instance, "b4", predecessor="never-bound"), 422)
    assert not mgmt.users_with_prefix(vhost + ".") - {
        platform.fetch_binding(instance, b).json()["credentials"]["username"] for b in ("b", "b2")}

    resp = platform.deprovision(instance)
    assert resp.status_code == 200 and resp.json() == {}, resp.text
    assert env_trace(mgmt, vhost) == []
    assert platform.deprovision(instance).status_code == 410
    # 410 is for the end of an asynchronous deprovision only; this one was synchronous.
    assert_osb_error(platform.last_operation(instance), 404)


def test_plan_change_that_cannot_grow_in_place_and_bad_updates_are_refused(osb, instances, mgmt):
    platform = osb("cf-a")
    instance = instances()
    vhost = instances.vhost(instance)
    assert platform.provision(instance, {}).status_code == 201
    name = osb_environment_name(instance)
    before = env_record(mgmt.vhost(vhost))
    # The queue exists as a quorum queue: it cannot become classic in place.
    assert_osb_error(platform.update(instance, {"service_id": OSB_SERVICE_ID,
                                                "parameters": {"queues": [{"name": name, "type": "classic"}]}}), 422)
    assert_osb_error(platform.update(instance, {"service_id": OSB_SERVICE_ID, "parameters": {"queues": "x"}}), 400)
    assert_osb_error(platform.update(instance, {"service_id": OSB_SERVICE_ID, "plan_id": "nope"}), 400)
    assert_osb_error(platform.update(instance, {"plan_id": OSB_DEFAULT_PLAN_ID}), 400)
    assert env_record(mgmt.vhost(vhost)) == before, "a refused update changed the record"
    # Nothing to change: 200.
    assert platform.update(instance, {"service_id": OSB_SERVICE_ID, "parameters": {}}).status_code == 200
    assert platform.deprovision(instance).status_code == 200


# --------------------------------------------------------------------------------------------
# Refusals that change nothing


def test_version_header_and_authentication(osb, osb_warren, instances, broker_unchanged, osb_credentials):
    platform = osb("cf-a")
    instance = instances()
    for version in (None, "2.12", "1.0", "3.0", "two"):
        resp = platform.provision(instance, {}, version=version)
        assert_osb_error(resp, 412, "PreconditionFailed")
    for auth in (None, (osb_credentials["cf-a"][0], "wrong"), ("nobody", "nothing")):
        resp = platform.provision(instance, {}, auth=auth)
        assert_osb_error(resp, 401, "Unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
    # A team's bearer token is not a platform's credentials.
    bearer = platform.request("GET", "/v2/catalog", auth=None, headers={"Authorization": "Bearer whatever"})
    assert_osb_error(bearer, 401)
    # 401 comes before 412: whoever is not a platform learns nothing.
    assert_osb_error(platform.catalog(auth=None, version=None), 401)
    # The originating identity is logged, decoded; it is never trusted for anything.
    identity = "cloudfoundry eyJ1c2VyX2lkIjogIjY4M2VhNzQ4In0="
    assert platform.catalog(headers={"X-Broker-API-Originating-Identity": identity}).status_code == 200
    wait_for(lambda: '683ea748' in osb_warren.log_path.read_text(), timeout=5, what="the identity is logged")
    broker_unchanged("refused requests")


def test_without_a_platforms_file_v2_answers_401(client, warren, osb_credentials, spec):
    from warren_support import OSBClient
    user, password = osb_credentials["cf-a"]
    platform = OSBClient(warren.url, user, password, spec)
    for resp in (platform.catalog(), platform.provision(str(uuid.uuid4()), {}), platform.last_operation("x")):
        assert_osb_error(resp, 401)


@pytest.mark.parametrize("parameters,mentions", [
    ({"queue": {"type": "fancy"}}, "parameters.queue.type"),
    ({"name": "mine"}, "parameters.name"),
    ({"roles": ["producer"]}, "parameters.roles"),
    ({"agents": [{"name": "planner", "consume": ["q"]}]}, "parameters.agents"),
    ({"blueprint": "jobs"}, "parameters.blueprint"),
    ({"limits": {"max_queues": 0}}, "parameters.limits.max_queues"),
    ({"exchange": {"type": "direct", "name": "amq.mine"}}, "parameters.exchange.name"),
    ({"surprise": True}, "parameters.surprise"),
], ids=["queue-type", "name", "roles", "agents", "blueprint", "limits", "exchange-name", "unknown"])
def test_bad_parameters_are_400_and_make_nothing(osb, instances, broker_unchanged, parameters, mentions):
    body = assert_osb_error(osb("cf-a").provision(instances(), parameters, accepts_incomplete=True), 400, "BadRequest")
    assert mentions in body["description"], body
    broker_unchanged(f"provision with {parameters}")


def test_malformed_requests_are_400_and_make_nothing(osb, instances, broker_unchanged):
    platform = osb("cf-a")
    instance = instances()
    jobs = plan_ids(platform.catalog().json())["jobs"]
    cases = [
        platform.provision(instance, body={"plan_id": OSB_DEFAULT_PLAN_ID}),
        platform.provision(instance, body={"service_id": "another", "plan_id": OSB_DEFAULT_PLAN_ID}),
        platform.provision(instance, body={"service_id": OSB_SERVICE_ID, "plan_id": "unknown"}),
        platform.provision(instance, body={"service_id": OSB_SERVICE_ID, "plan_id": OSB_DEFAULT_PLAN_ID, "context": "x"}),
        platform.provision(instance, {"queues": [{"name": "q"}]}, plan_id=jobs),
        platform.request("PUT", platform.instance_path(instance), data=b"{not json",
                         headers={"Content-Type": "application/json"}),
        platform.request("PUT", platform.instance_path(instance), query={"accepts_incomplete": "maybe"},
                         json_body={"service_id": OSB_SERVICE_ID, "plan_id": OSB_DEFAULT_PLAN_ID}),
        platform.request("PUT", platform.instance_path("x" * 256),
                         json_body={"service_id": OSB_SERVICE_ID, "plan_id": OSB_DEFAULT_PLAN_ID}),
        platform.request("DELETE", platform.instance_path(instance)),
        platform.request("DELETE", platform.instance_path(instance), query={"service_id": OSB_SERVICE_ID}),
    ]
    for resp in cases:
        assert_osb_error(resp, 400, "BadRequest")
    # Bindings of an instance that does not exist, or with bad parameters.
    assert_osb_error(platform.bind(instance, "b"), 404)
    broker_unchanged("malformed requests")


def test_bad_binding_parameters_are_400(osb, instances, mgmt):
    platform = osb("cf-a")
    instance = instances()
    assert platform.provision(instance, {}).status_code == 201
    users = mgmt.users_with_prefix(instances.vhost(instance) + ".")
    for parameters in ({"role": "admin"}, {"role": 1}, {"password": "mine"}):
        assert_osb_error(platform.bind(instance, "b", parameters), 400)
    assert_osb_error(platform.bind(instance, "b", predecessor="b"), 400)
    assert mgmt.users_with_prefix(instances.vhost(instance) + ".") == users
    assert platform.deprovision(instance).status_code == 200


# --------------------------------------------------------------------------------------------
# An attacker's view


def test_another_teams_platform_never_reaches_the_instance(osb, instances, mgmt):
    a, b = osb("cf-a"), osb("cf-b")
    instance = instances()
    vhost = instances.vhost(instance)
    assert a.provision(instance, {}).status_code == 201
    creds = a.bind(instance, "a-binding").json()["credentials"]
    before = (env_record(mgmt.vhost(vhost)), mgmt.users_with_prefix(vhost + "."))

    assert_osb_error(b.fetch(instance), 404)
    assert_osb_error(b.fetch_binding(instance, "a-binding"), 404)
    assert_osb_error(b.bind(instance, "b-binding"), 404)
    assert_osb_error(b.last_operation(instance), 404)
    assert b.unbind(instance, "a-binding").status_code == 410
    assert b.deprovision(instance).status_code == 410
    assert_osb_error(b.update(instance, {"service_id": OSB_SERVICE_ID, "parameters": {"queues": [{"name": "x"}]}}), 404)
    assert (env_record(mgmt.vhost(vhost)), mgmt.users_with_prefix(vhost + ".")) == before
    # The same id from team B's platform is team B's own instance, somewhere else entirely.
    assert b.provision(instance, {}).status_code == 201
    other = instances.vhost(instance, "team-b")
    assert other != vhost and mgmt.vhost(other) is not None
    assert b.deprovision(instance).status_code == 200
    assert mgmt.vhost(vhost) is not None and round_trip(creds, b"untouched") == b"untouched"
    assert a.deprovision(instance).status_code == 200


def test_another_platform_of_the_same_team_cannot_act_on_it(osb, instances, mgmt):
    a, a2 = osb("cf-a"), osb("cf-a2")
    instance = instances()
    vhost = instances.vhost(instance)
    assert a.provision(instance, {}).status_code == 201
    before = env_record(mgmt.vhost(vhost))
    assert_osb_error(a2.provision(instance, {}), 409)
    assert_osb_error(a2.fetch(instance), 404)
    assert_osb_error(a2.bind(instance, "x"), 404)
    assert a2.deprovision(instance).status_code == 410
    assert_osb_error(a2.last_operation(instance), 404)
    assert env_record(mgmt.vhost(vhost)) == before and mgmt.users_with_prefix(vhost + ".") == set()
    assert a.deprovision(instance).status_code == 200


def test_an_instance_id_never_takes_over_a_v1_environment(osb, instances, client, mgmt):
    platform = osb("cf-a")
    instance = instances()
    name = osb_environment_name(instance)
    made = client("team-a").create_ok({"name": name})
    vhost = made["vhost"]
    before = env_record(mgmt.vhost(vhost))
    assert_osb_error(platform.provision(instance, {}), 409)
    assert_osb_error(platform.provision(instance, {}, accepts_incomplete=True), 409)
    assert_osb_error(platform.fetch(instance), 404)
    assert_osb_error(platform.bind(instance, "steal"), 404)
    assert platform.deprovision(instance).status_code == 410
    assert_osb_error(platform.last_operation(instance), 404)
    assert env_record(mgmt.vhost(vhost)) == before
    assert mgmt.users_with_prefix(vhost + ".") == {made["credentials"]["username"]}
    assert client("team-a").delete(name).status_code == 204


def test_a_forged_platform_field_is_never_acted_on(osb, instances, mgmt):
    """Someone with the broker's administrator rights rewrites an instance's record to name
    another instance id, or another platform: the real id no longer reaches it, and the id the
    record names does not either (it maps to another environment name)."""
    platform = osb("cf-a")
    instance, forged_id = instances(), instances()
    vhost = instances.vhost(instance)
    assert platform.provision(instance, {}).status_code == 201
    info = mgmt.vhost(vhost)
    for forged in ({"instance_id": forged_id}, {"platform": "cf-a2"}):
        record = env_record(info)
        record["platform"].update(forged)
        mgmt.put_json(f"vhosts/{seg(vhost)}", {"description": json.dumps(record), "tags": "warren"})
        assert_osb_error(platform.fetch(instance), 404)
        assert_osb_error(platform.bind(instance, "b"), 404)
        assert platform.deprovision(instance).status_code == 410
        assert_osb_error(platform.provision(instance, {}), 409)
        assert platform.deprovision(forged_id).status_code == 410
        assert mgmt.vhost(vhost) is not None and mgmt.users_with_prefix(vhost + ".") == set()
        # The platform the record now names: its own instance id, a seal that does not hold.
        # Not acted on, and never "gone" either (a platform would forget the instance): an
        # error the platform sees.
        other = osb("cf-a2")
        expected = 500 if "platform" in forged else 404
        assert_osb_error(other.bind(instance, "b"), expected)
        if "platform" in forged:
            assert_osb_error(other.deprovision(instance), 500, "InstanceNotVerifiable")
        else:
            assert other.deprovision(instance).status_code == 410
    mgmt.put_json(f"vhosts/{seg(vhost)}", {"description": info["description"], "tags": "warren"})
    assert platform.deprovision(instance).status_code == 200


# --------------------------------------------------------------------------------------------
# Asynchronous operations in flight, and orphan mitigation


@pytest.fixture
def proxied_osb(proxy, warren_factory, osb_env, osb):
    """cf-a's client of a warren with /v2 whose every management call goes through the proxy."""
    proc = warren_factory("osb-faults", WARREN_MANAGEMENT_URL=proxy.url, **osb_env, **FAULT_WARREN)
    client = osb("cf-a", proc)
    warm = str(uuid.uuid4())
    assert client.provision(warm, {}).status_code == 201
    assert client.deprovision(warm).status_code == 200
    proxy.wait_quiet(0.2)
    return client


def is_exchange_declaration(method: str, path: str) -> bool:
    return method == "PUT" and path.startswith("/api/exchanges/")


def test_async_provision_in_flight_then_failed_then_deprovisioned(proxy, proxied_osb, instances, mgmt):
    platform = proxied_osb
    instance = instances()
    vhost = instances.vhost(instance)
    # The background work's exchange declaration hangs until the management timeout (1.5 s).
    proxy.arm(1, "hang", match=is_exchange_declaration)
    resp = platform.provision(instance, {}, accepts_incomplete=True)
    assert resp.status_code == 202, resp.text
    # While it runs: only polling can answer a repeated provision (422 AsyncRequired without
    # accepts_incomplete), the instance is not fetchable, and cannot be bound yet.
    state = platform.last_operation(instance).json()
    assert state["state"] == "in progress", state
    assert_osb_error(platform.provision(instance, {}), 422, "AsyncRequired")
    assert platform.provision(instance, {}, accepts_incomplete=True).status_code == 202
    assert_osb_error(platform.provision(instance, {"routing_key": "other"}, accepts_incomplete=True), 409)
    assert_osb_error(platform.fetch(instance), 404)
    assert_osb_error(platform.bind(instance, "early"), 422, "ConcurrencyError")
    final = platform.poll(instance)
    assert proxy.disarm() is not None, "the hang never fired"
    assert final.status_code == 200 and final.json()["state"] == "failed", final.text
    assert final.json()["description"], final.text
    assert mgmt.vhost(vhost) is not None, "a failed asynchronous provision keeps its vhost until the DELETE"
    # Orphan mitigation: the platform's DELETE leaves nothing.
    resp = platform.deprovision(instance, accepts_incomplete=True)
    assert resp.status_code == 202, resp.text
    assert platform.poll(instance, operation="deprovision").status_code == 410
    assert env_trace(mgmt, vhost) == []


def test_failed_synchronous_provision_then_delete_leaves_nothing(proxy, proxied_osb, instances, mgmt, report):
    platform = proxied_osb
    # The calls of one fault-free provision, to fail each in turn.
    dry = instances()
    mark = proxy.mark()
    assert platform.provision(dry, {}).status_code == 201
    calls = len(proxy.since(mark))
    assert platform.deprovision(dry).status_code == 200
    failed = 0
    for k in range(1, calls + 1):
        instance = instances()
        proxy.arm(k, "http500")
        resp = platform.provision(instance, {}, timeout=30)
        fired = proxy.disarm()
        if fired is None:
            continue
        if resp.status_code >= 300:
            failed += 1
            assert_osb_error(resp, resp.status_code)
            assert resp.status_code in (502, 503), resp.text
        cleanup = platform.deprovision(instance)
        assert cleanup.status_code in (200, 410), f"call {k} {fired}: the DELETE answered {cleanup.status_code}"
        assert env_trace(mgmt, instances.vhost(instance)) == [], f"call {k} {fired}: left on the broker"
    report("osb", f"orphan mitigation: {failed} provisions failed at one of {calls} calls, "
                  f"each followed by a DELETE: 0 left on the broker")
    assert failed >= calls // 2, f"only {failed} of {calls} faults failed the provision"


def test_timed_out_synchronous_provision_then_delete_leaves_nothing(proxy, proxied_osb, instances, mgmt):
    platform = proxied_osb
    instance = instances()
    proxy.arm(1, "hang", match=is_exchange_declaration)
    with pytest.raises(requests.exceptions.ReadTimeout):
        platform.provision(instance, {}, timeout=0.5, check_spec=False)
    # The platform gives up and sends the DELETE of orphan mitigation at once, while Warren's
    # create still waits for the broker.
    resp = platform.deprovision(instance)
    assert resp.status_code in (200, 410), resp.text
    proxy.disarm()
    wait_for(lambda: env_trace(mgmt, instances.vhost(instance)) == [], timeout=15,
             what="nothing of the timed-out provision is left")
    time.sleep(2)  # the create's own failure comes later: it must not bring anything back
    assert env_trace(mgmt, instances.vhost(instance)) == []
    assert_osb_error(platform.last_operation(instance), 404)


def test_a_second_warren_with_the_same_secret_answers_the_same_credentials(osb, osb_env, warren_factory, instances):
    instance = instances()
    assert osb("cf-a").provision(instance, {}).status_code == 201
    first = osb("cf-a").bind(instance, "shared").json()["credentials"]
    other = warren_factory("osb-twin", **osb_env)
    again = osb("cf-a", other).bind(instance, "shared")
    assert again.status_code == 200 and again.json()["credentials"] == first, again.text
    assert osb("cf-a", other).deprovision(instance).status_code == 200


# --------------------------------------------------------------------------------------------
# Rules beyond the schema: what test_osb_schemathesis.py's positive_data_acceptance takes a 400
# for (schemathesis_hooks.OSB_BEYOND_SCHEMA). Each: a body openapi.yaml takes, refused with 400
# BadRequest naming exactly that rule. Fails when the schema learns to state the rule (drop it
# from OSB_BEYOND_SCHEMA then) or when Warren stops refusing it.

# A version-5 UUID (the form of every plan id) that is no plan's.
NO_PLAN_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "warren:no-such-plan"))
# (id, parameters, field named, index in OSB_BEYOND_SCHEMA[OSB_PROVISION]): /v1's create cases
# (test_validation.BEYOND_CREATE) but the blueprint's, as a provision's parameters.
# Super streams (rule 5) are no provision parameter; the stream share (6) is the provision's 6th.
_PROVISION_RULE = {1: 2, 2: 3, 3: 4, 4: 5, 6: 6}
BEYOND_PROVISION = [("unknown-plan", None, "plan_id", 0), ("context-over-4096-bytes", None, "context", 1)] + [
    (case_id, {k: v for k, v in body.items() if k != "name"}, "parameters." + field, _PROVISION_RULE[rule])
    # Agents are not a provision's parameters either (credentials come from bindings).
    for case_id, body, field, rule in BEYOND_CREATE if rule in _PROVISION_RULE and "agents" not in body]


def _osb_400_names_only(resp, operation: str, rule: int, field: str) -> None:
    body = assert_osb_error(resp, 400, "BadRequest")
    assert osb_beyond_schema(operation, body, only=rule), (
        f"{body['description']!r} is not only the rule {OSB_BEYOND_SCHEMA[operation][rule][:3]}")
    assert field in body["description"], body
    assert osb_beyond_schema(operation, body)  # what the schemathesis hook takes


@pytest.mark.parametrize("case_id,parameters,field,rule", BEYOND_PROVISION, ids=[c[0] for c in BEYOND_PROVISION])
def test_provision_rules_beyond_the_schema(osb, instances, spec, broker_unchanged, case_id, parameters, field, rule):
    instance = instances()
    body = {"service_id": OSB_SERVICE_ID, "plan_id": OSB_DEFAULT_PLAN_ID, "organization_guid": "org-1", "space_guid": "space-1"}
    if case_id == "unknown-plan":
        body["plan_id"] = NO_PLAN_ID
    elif case_id == "context-over-4096-bytes":
        body["context"] = {"platform": "cloudfoundry", "note": "x" * 4096}
    else:
        body["parameters"] = cases.fill(parameters, osb_environment_name(instance))
    spec.check_component("OSBProvisionRequest", body)
    _osb_400_names_only(osb("cf-a").provision(instance, body=body), OSB_PROVISION, rule, field)
    broker_unchanged(f"provision refused for {case_id}")


# (id, provision parameters, update parameters, field named, index in OSB_BEYOND_SCHEMA[OSB_UPDATE]):
# /v1's PATCH cases (test_validation.BEYOND_PATCH), judged on the instance as it will be.
BEYOND_UPDATE = [("unknown-plan", {}, None, "plan_id", 0)] + [
    (case_id, made, body, field, rule + 1) for case_id, made, body, field, rule in BEYOND_PATCH]


@pytest.mark.parametrize("case_id,made,parameters,field,rule", BEYOND_UPDATE, ids=[c[0] for c in BEYOND_UPDATE])
def test_update_rules_beyond_the_schema(osb, instances, spec, mgmt, case_id, made, parameters, field, rule):
    platform = osb("cf-a")
    instance = instances()
    name = osb_environment_name(instance)
    assert platform.provision(instance, cases.fill(made, name)).status_code == 201
    before = platform.fetch(instance).json()
    body = {"service_id": OSB_SERVICE_ID}
    if parameters is None:
        body["plan_id"] = NO_PLAN_ID
    else:
        body["parameters"] = cases.fill(parameters, name)
    spec.check_component("OSBUpdateRequest", body)
    _osb_400_names_only(platform.update(instance, body), OSB_UPDATE, rule, field)
    assert platform.fetch(instance).json() == before, "a refused update changed the instance"
    assert platform.deprovision(instance).status_code == 200


def test_bind_rules_beyond_the_schema(osb, instances, spec, mgmt):
    platform = osb("cf-a")
    instance = instances()
    assert platform.provision(instance, {}).status_code == 201
    assert platform.bind(instance, "b1").status_code == 201
    users = mgmt.users_with_prefix(instances.vhost(instance) + ".")
    itself = {"service_id": OSB_SERVICE_ID, "plan_id": OSB_DEFAULT_PLAN_ID, "predecessor_binding_id": "b2"}
    spec.check_component("OSBBindRequest", itself)
    _osb_400_names_only(platform.request("PUT", platform.binding_path(instance, "b2"), json_body=itself),
                        OSB_BIND, 0, "predecessor_binding_id")
    other_role = dict(itself, predecessor_binding_id="b1", parameters={"role": "producer"})
    spec.check_component("OSBBindRequest", other_role)
    _osb_400_names_only(platform.request("PUT", platform.binding_path(instance, "b2"), json_body=other_role),
                        OSB_BIND, 1, "parameters.role")
    another_plan = {"service_id": OSB_SERVICE_ID, "plan_id": plan_ids(platform.catalog().json())["jobs"]}
    spec.check_component("OSBBindRequest", another_plan)
    _osb_400_names_only(platform.request("PUT", platform.binding_path(instance, "b3"), json_body=another_plan),
                        OSB_BIND, 2, "plan_id")
    for nothing in ({}, {"service_id": OSB_SERVICE_ID}, {"plan_id": OSB_DEFAULT_PLAN_ID}):
        spec.check_component("OSBBindRequest", nothing)
        _osb_400_names_only(platform.request("PUT", platform.binding_path(instance, "b3"), json_body=nothing),
                            OSB_BIND, 3, "_id is required")
    assert mgmt.users_with_prefix(instances.vhost(instance) + ".") == users, "a refused bind made a user"
    assert platform.deprovision(instance).status_code == 200


def test_every_osb_rule_beyond_the_schema_is_pinned():
    """OSB_BEYOND_SCHEMA lists no rule without a case above that shows it (BEFORE_RABBITMQ_4's
    by test_validation's release test, in the form /v1 reports it)."""
    assert {c[3] for c in BEYOND_PROVISION} == set(range(len(OSB_BEYOND_SCHEMA[OSB_PROVISION])))
    assert {c[4] for c in BEYOND_UPDATE} == set(range(len(OSB_BEYOND_SCHEMA[OSB_UPDATE])))
    assert len(OSB_BEYOND_SCHEMA[OSB_BIND]) == 4  # each shown by test_bind_rules_beyond_the_schema
    assert set(OSB_BEYOND_SCHEMA) == {OSB_PROVISION, OSB_UPDATE, OSB_BIND}


def test_osb_beyond_the_schema_takes_no_other_400():
    """The schemathesis hook's matcher: an OSB 400 is taken only when it names listed rules alone."""
    ok = {"error": "BadRequest",
          "description": "invalid parameters: parameters.bindings[3].queue must name one of the environment's queues"}
    assert osb_beyond_schema(OSB_PROVISION, ok)
    assert not osb_beyond_schema(OSB_UPDATE, ok)  # an update's parameters are judged on the instance
    assert not osb_beyond_schema(OSB_PROVISION, dict(ok, error="Conflict"))
    assert not osb_beyond_schema(OSB_PROVISION, {"description": ok["description"]})
    assert not osb_beyond_schema(OSB_PROVISION, dict(ok, description=ok["description"] + "; parameters.queue.type must be x"))
    assert not osb_beyond_schema(OSB_PROVISION, dict(ok, description="invalid parameters: parameters.queue.type must be x"))
    assert not osb_beyond_schema(OSB_PROVISION, dict(ok, description="the instance id must be 1 to 255 bytes of UTF-8"))
    delivery = ("invalid parameters: parameters.queues[0].delivery_limit needs a quorum queue; before RabbitMQ 4.0 "
                "a queue with max_priority is made classic")
    assert osb_beyond_schema(OSB_PROVISION, dict(ok, description=delivery), 3)
    assert not osb_beyond_schema(OSB_PROVISION, dict(ok, description=delivery), 4)
    assert not osb_beyond_schema(OSB_BIND, ok)

"""/v2 held to the letter of OSB v2.17, end to end against a real broker.

- Provision requires `organization_guid` and `space_guid` (deprecated for `context`, still
  required non-empty strings): 400 without them, or with "", and nothing made on the broker.
- last_operation: 404 for an instance or a binding that was never there; 410 only at the end of
  an asynchronous deprovision, which the platform polls with the 202's `operation`.
- Ids are whatever a platform sends, percent-encoded: spaces, an encoded "/", non-ASCII. Such
  instances and bindings go the whole way (provision, bind, publish and consume with the
  binding's credentials, unbind, deprovision) and leave nothing on the broker.
- A rotation whose body holds `predecessor_binding_id` alone gives a new, working login with the
  predecessor's role.
- A bind must name its instance's plan: another plan is 400 for a new binding, 409 for one that
  exists.
"""

from __future__ import annotations

import uuid

import pika.exceptions
import pytest

from test_osb import LOGIN_REFUSED, Instances, login_params, plan_ids, round_trip
from warren_support import (OSB_DEFAULT_PLAN_ID, OSB_SERVICE_ID, assert_osb_error, connection_refusal, env_record,
                            env_trace)


@pytest.fixture
def instances(mgmt):
    made = Instances(mgmt)
    yield made
    made.cleanup()


def provision_body(**fields) -> dict:
    body = {"service_id": OSB_SERVICE_ID, "plan_id": OSB_DEFAULT_PLAN_ID, "organization_guid": "org-1",
            "space_guid": "space-1", "context": {"platform": "cloudfoundry"}}
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


# --------------------------------------------------------------------------------------------
# organization_guid and space_guid


@pytest.mark.parametrize("fields", [
    {"organization_guid": None}, {"space_guid": None}, {"organization_guid": None, "space_guid": None},
    {"organization_guid": ""}, {"space_guid": ""}, {"organization_guid": 7}, {"space_guid": {"guid": "s"}},
], ids=["no-org", "no-space", "neither", "empty-org", "empty-space", "number-org", "object-space"])
def test_provision_without_organization_or_space_is_400_and_makes_nothing(osb, instances, broker_unchanged, fields):
    platform = osb("cf-a")
    instance = instances()
    for accepts_incomplete in (None, True):
        resp = platform.provision(instance, body=provision_body(**fields), accepts_incomplete=accepts_incomplete)
        body = assert_osb_error(resp, 400, "BadRequest")
        named = [f for f in ("organization_guid", "space_guid") if f in fields]
        assert all(f in body["description"] for f in named), body
    broker_unchanged(f"provision with {fields}")
    assert_osb_error(platform.fetch(instance), 404)


# --------------------------------------------------------------------------------------------
# last_operation: 404 for what was never there, 410 after an asynchronous deprovision


def test_last_operation_of_an_instance_never_there_is_404(osb, broker_unchanged):
    platform = osb("cf-a")
    never = str(uuid.uuid4())
    for operation in (None, "provision"):
        assert_osb_error(platform.last_operation(never, operation), 404, "NotFound")
    assert_osb_error(platform.binding_last_operation(never, "b"), 404, "NotFound")
    # The hints, when given, are non-empty strings.
    for hint in ("operation", "service_id", "plan_id"):
        assert_osb_error(platform.request("GET", platform.instance_path(never) + "/last_operation", query={hint: ""}), 400)
        assert_osb_error(platform.request("GET", platform.binding_path(never, "b") + "/last_operation", query={hint: ""}), 400)
    broker_unchanged("last_operation of instances never there")


def test_last_operation_of_a_binding_never_there_is_404(osb, instances):
    platform = osb("cf-a")
    instance = instances()
    assert platform.provision(instance, {}).status_code == 201
    assert_osb_error(platform.binding_last_operation(instance, "never-bound"), 404, "NotFound")
    assert platform.bind(instance, "b").status_code == 201
    assert platform.binding_last_operation(instance, "b").json()["state"] == "succeeded"
    # Unbinding is synchronous: the binding is then simply not there.
    assert platform.unbind(instance, "b").status_code == 200
    assert_osb_error(platform.binding_last_operation(instance, "b"), 404, "NotFound")
    assert platform.deprovision(instance).status_code == 200


def test_last_operation_is_410_only_after_an_asynchronous_deprovision(osb, instances, mgmt):
    platform = osb("cf-a")
    instance = instances()
    vhost = instances.vhost(instance)
    made = platform.provision(instance, {}, accepts_incomplete=True)
    assert made.status_code == 202 and made.json() == {"operation": "provision"}, made.text
    assert platform.poll(instance, operation="provision").json()["state"] == "succeeded"
    gone = platform.deprovision(instance, accepts_incomplete=True)
    assert gone.status_code == 202 and gone.json() == {"operation": "deprovision"}, gone.text
    final = platform.poll(instance, operation=gone.json()["operation"])
    assert final.status_code == 410 and final.json() == {}, final.text
    assert env_trace(mgmt, vhost) == []
    # Polled as for a provision, or with no operation: the instance is simply not there.
    assert_osb_error(platform.last_operation(instance, "provision"), 404)
    assert_osb_error(platform.last_operation(instance), 404)


# --------------------------------------------------------------------------------------------
# Ids of any characters


ODD_IDS = [("with spaces in it", "binding with spaces"), ("a/b/../c", "bind/ing/1"), ("tab\tnul\x00line\n", "esc\x1b[31m"),
           ("\u00fcn\u00efc\u00f8d\u00e9 id/1", "\u00fcn\u00efc\u00f8d\u00e9 binding/1"),
           ("\u65e5\u672c\u8a9e \U0001F407 %41+?#&=", "\u00e9" * 120)]


@pytest.mark.parametrize("instance,binding", ODD_IDS, ids=["spaces", "slashes", "control-characters", "non-ascii", "reserved-and-long"])
def test_ids_of_any_characters_go_the_whole_way(osb, instances, mgmt, instance, binding):
    platform = osb("cf-a")
    instances.made.append(instance)
    vhost = instances.vhost(instance)
    assert "/" not in vhost.split(".", 2)[2], "the id's slash reached the environment name"
    made = platform.provision(instance, {"routing_key": "orders"}, accepts_incomplete=True)
    assert made.status_code == 202, made.text
    assert platform.poll(instance, operation="provision").json()["state"] == "succeeded"
    assert env_record(mgmt.vhost(vhost))["platform"]["instance_id"] == instance
    fetched = platform.fetch(instance)
    assert fetched.status_code == 200 and fetched.json()["plan_id"] == OSB_DEFAULT_PLAN_ID, fetched.text

    bound = platform.bind(instance, binding, {"role": "full"})
    assert bound.status_code == 201, bound.text
    creds = bound.json()["credentials"]
    assert creds["vhost"] == vhost
    assert round_trip(creds, "h\u00e9llo".encode()) == "h\u00e9llo".encode()
    assert platform.bind(instance, binding, {"role": "full"}).json()["credentials"] == creds
    assert platform.fetch_binding(instance, binding).json()["credentials"] == creds
    assert platform.binding_last_operation(instance, binding).json()["state"] == "succeeded"
    # A binding id that differs only by its encoded slash (or by a letter) is another binding.
    assert_osb_error(platform.fetch_binding(instance, binding.replace("/", "") if "/" in binding else binding + "2"), 404)

    assert platform.unbind(instance, binding).status_code == 200
    assert isinstance(connection_refusal(login_params(creds)), LOGIN_REFUSED)
    gone = platform.deprovision(instance, accepts_incomplete=True)
    assert gone.status_code == 202, gone.text
    assert platform.poll(instance, operation="deprovision").status_code == 410
    assert env_trace(mgmt, vhost) == []


@pytest.mark.parametrize("instance", ["", "x" * 256, "\u00e9" * 128],
                         ids=["empty", "256-bytes", "256-bytes-of-two-byte-letters"])
def test_ids_that_cannot_be_a_name_are_refused(osb, broker_unchanged, instance):
    platform = osb("cf-a")
    resp = platform.provision(instance, {}, check_spec=False)
    if instance == "":
        # "/v2/service_instances/" is no instance's path: no route takes it.
        assert resp.status_code in (404, 405), resp.text
    else:
        body = assert_osb_error(resp, 400, "BadRequest")
        assert "instance id" in body["description"], body
        assert_osb_error(platform.bind("fine", instance, check_spec=False), 400, "BadRequest")
    broker_unchanged(f"provision of {instance!r}")


# --------------------------------------------------------------------------------------------
# Rotation and plans


def publish(credentials: dict, body: bytes) -> None:
    conn = pika.BlockingConnection(login_params(credentials))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(credentials["exchange"], credentials["routing_key"], body, mandatory=True)
    finally:
        conn.close()


def get(credentials: dict) -> bytes | None:
    conn = pika.BlockingConnection(login_params(credentials))
    try:
        _, _, body = conn.channel().basic_get(credentials["queues"][0], auto_ack=True)
        return body
    finally:
        if conn.is_open:
            conn.close()


def test_a_rotation_with_only_the_predecessor_gives_a_working_login_with_its_role(osb, instances, mgmt):
    platform = osb("cf-a")
    instance = instances()
    assert platform.provision(instance, {}).status_code == 201
    first = platform.bind(instance, "app-1", {"role": "producer"})
    assert first.status_code == 201, first.text
    old = first.json()["credentials"]
    body = {"predecessor_binding_id": "app-1"}
    platform.spec.check_component("OSBBindRequest", body)
    rotated = platform.request("PUT", platform.binding_path(instance, "app-1-rotated"), json_body=body)
    assert rotated.status_code == 201, rotated.text
    fresh = rotated.json()["credentials"]
    assert fresh["role"] == "producer" and fresh["username"] != old["username"], fresh
    # A producer's login, as the predecessor's: it publishes (a full binding reads the message
    # back) and may not consume.
    reader = platform.bind(instance, "reader").json()["credentials"]
    publish(fresh, b"rotated")
    assert get(reader) == b"rotated"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        get(fresh)
    assert refused.value.reply_code == 403, refused.value
    # The same rotation again: the same binding.
    again = platform.request("PUT", platform.binding_path(instance, "app-1-rotated"), json_body=body)
    assert again.status_code == 200 and again.json()["credentials"] == fresh, again.text
    # A rotation of a predecessor that is not there: 422, as with service_id and plan_id.
    assert_osb_error(platform.request("PUT", platform.binding_path(instance, "app-2"),
                                      json_body={"predecessor_binding_id": "never"}), 422)
    assert platform.unbind(instance, "app-1").status_code == 200
    assert isinstance(connection_refusal(login_params(old)), LOGIN_REFUSED)
    publish(fresh, b"after the predecessor's unbind")
    assert get(reader) == b"after the predecessor's unbind"
    assert platform.deprovision(instance).status_code == 200


def test_bind_with_another_plan_is_400_and_a_repeated_one_409(osb, instances, mgmt):
    platform = osb("cf-a")
    instance = instances()
    assert platform.provision(instance, {}).status_code == 201
    jobs = plan_ids(platform.catalog().json())["jobs"]
    users = mgmt.users_with_prefix(instances.vhost(instance) + ".")
    path = platform.binding_path(instance, "b")
    assert_osb_error(platform.request("PUT", path, json_body={"service_id": OSB_SERVICE_ID, "plan_id": jobs}), 400, "BadRequest")
    assert_osb_error(platform.request("PUT", path, json_body={"service_id": OSB_SERVICE_ID, "plan_id": "no-such-plan"},
                                      check_spec=False), 400, "BadRequest")
    assert_osb_error(platform.request("PUT", path, json_body={"service_id": "another", "plan_id": OSB_DEFAULT_PLAN_ID},
                                      check_spec=False), 400, "BadRequest")
    assert mgmt.users_with_prefix(instances.vhost(instance) + ".") == users, "a refused bind made a user"
    assert platform.bind(instance, "b").status_code == 201
    assert_osb_error(platform.request("PUT", path, json_body={"service_id": OSB_SERVICE_ID, "plan_id": jobs}), 409, "Conflict")
    assert platform.bind(instance, "b").status_code == 200
    assert platform.deprovision(instance).status_code == 200

"""Environments protected from deletion, against a real broker of each release.

- Created protected: every DELETE (plain, `force=true`, asynchronous, both) answers 409
  `protected` and changes nothing: the vhost is there and its credentials still log in. A
  repeated create with the same body is the same environment; one that differs only in
  `protected` is a conflict naming it.
- On RabbitMQ 4.1 and later (4.3 here) the broker protects the vhost too: a management API
  DELETE of it as the administrator answers 412 and the vhost survives; lifted there behind
  Warren's back, GET says so and reconcile puts it back. Before 4.1 (3.10, 4.0) every answer's
  `notes` say Warren alone protects it.
- A PATCH protects an environment that exists, lifts the protection (alone or beside a topology
  change), and then Warren's DELETE works.
- An Open Service Broker instance its team protected through /v1 is not deprovisioned (422,
  asynchronous or not), and a platform cannot protect or unprotect through update parameters.
"""

from __future__ import annotations

import uuid

import pika
import pika.exceptions
import pytest

from warren_support import (OSB_SERVICE_ID, amqp_params_from_uri, assert_osb_error, assert_problem, env_record,
                            osb_environment_name, publish_and_get, seg, vhost_of)

ASYNC = {"Prefer": "respond-async"}
WARREN_ALONE = "protected by Warren alone"
DRIFT = "the broker does not protect this environment's vhost"


@pytest.fixture(scope="module")
def broker_protects(mgmt) -> bool:
    """Whether this broker's release protects vhosts itself (RabbitMQ 4.1 and later)."""
    major, minor = (int(part) for part in mgmt.overview()["rabbitmq_version"].split(".")[:2])
    return (major, minor) >= (4, 1)


def notes(body: dict) -> list[str]:
    return body.get("notes") or []


def patch(api, name: str, body: dict):
    return api.request("PATCH", f"/v1/environments/{name}", json_body=body)


def assert_every_delete_refused(api, name: str) -> None:
    for query, headers in (("", {}), ("?force=true", {}), ("", ASYNC), ("?force=true", ASYNC)):
        resp = api.request("DELETE", f"/v1/environments/{name}{query}", headers=headers)
        problem = assert_problem(resp, 409, "protected")
        assert '{"protected": false}' in problem["detail"], problem


def round_trip(created: dict, body: bytes) -> None:
    """The environment's credentials log in, publish and get a message back."""
    conn = pika.BlockingConnection(amqp_params_from_uri(created["connection"]["uri"]))
    try:
        assert publish_and_get(conn, created["exchange"]["name"], created["routing_key"], created["queue"]["name"], body) == body
    finally:
        conn.close()


def test_a_protected_environment_survives_every_delete_until_a_patch_lifts_it(api_a, new_name, mgmt, broker_protects):
    name = new_name("protected")
    vhost = vhost_of("team-a", name)
    created = api_a.create_ok({"name": name, "protected": True})
    assert created["protected"] is True
    assert any(note.startswith(WARREN_ALONE) for note in notes(created)) is not broker_protects, notes(created)
    assert mgmt.vhost(vhost).get("protected_from_deletion") is (True if broker_protects else None)

    assert_every_delete_refused(api_a, name)
    shown = api_a.get_ok(name)
    assert shown["status"] == "ready" and shown["protected"] is True, shown
    assert not any(note.startswith(DRIFT) for note in notes(shown)), notes(shown)
    round_trip(created, b"still here")
    [listed] = [item for item in api_a.list_ok() if item["name"] == name]
    assert listed["protected"] is True

    if broker_protects:
        # An operator's delete on the broker itself is refused too.
        resp = mgmt.call("DELETE", f"vhosts/{seg(vhost)}")
        assert resp.status_code == 412, (resp.status_code, resp.text)
        assert mgmt.vhost(vhost) is not None
        round_trip(created, b"after the broker refused")

    # The same body again is the same environment; protection is part of the spec.
    assert api_a.create_ok({"name": name, "protected": True}, expect=200)["protected"] is True
    conflict = assert_problem(api_a.create({"name": name}), 409, "conflict")
    assert {error["field"] for error in conflict["errors"]} == {"protected"}, conflict

    lifted = patch(api_a, name, {"protected": False})
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["protected"] is False and not any(WARREN_ALONE in note for note in notes(lifted.json()))
    if broker_protects:
        assert mgmt.vhost(vhost)["protected_from_deletion"] is False
    assert api_a.delete(name).status_code == 204
    assert mgmt.vhost(vhost) is None
    with pytest.raises((pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError,
                        pika.exceptions.ProbableAccessDeniedError)):
        pika.BlockingConnection(amqp_params_from_uri(created["connection"]["uri"])).close()


def test_a_patch_protects_an_environment_that_exists_and_lifts_it_beside_a_topology_change(
        api_a, new_name, mgmt, broker_protects):
    name = new_name("protect-later")
    vhost = vhost_of("team-a", name)
    created = api_a.create_ok({"name": name})
    assert created["protected"] is False and mgmt.vhost(vhost).get("protected_from_deletion") in (False, None)

    protected = patch(api_a, name, {"protected": True})
    assert protected.status_code == 200, protected.text
    assert protected.json()["protected"] is True
    assert_every_delete_refused(api_a, name)

    if broker_protects:
        assert mgmt.vhost(vhost)["protected_from_deletion"] is True
        assert mgmt.call("DELETE", f"vhosts/{seg(vhost)}").status_code == 412
        # Lifted on the broker behind Warren's back: Warren still refuses, GET says so, and
        # reconcile protects the vhost on the broker again.
        mgmt.delete(f"vhosts/{seg(vhost)}/deletion/protection", missing_ok=False)
        assert any(note.startswith(DRIFT) for note in notes(api_a.get_ok(name)))
        assert_every_delete_refused(api_a, name)
        reconciled = api_a.request("POST", f"/v1/environments/{name}/reconcile")
        assert reconciled.status_code == 200, reconciled.text
        assert mgmt.vhost(vhost)["protected_from_deletion"] is True
        assert not any(note.startswith(DRIFT) for note in notes(reconciled.json()))
    else:
        assert any(note.startswith(WARREN_ALONE) for note in notes(protected.json())), protected.json()

    both = patch(api_a, name, {"queues": [{"name": "audit", "type": "classic"}], "protected": False})
    assert both.status_code == 200, both.text
    assert both.json()["protected"] is False
    assert "audit" in {queue["name"] for queue in both.json()["queues"]}
    assert mgmt.queue(vhost, "audit") is not None
    assert api_a.delete(name).status_code == 204
    assert mgmt.vhost(vhost) is None


def test_an_instance_its_team_protects_is_not_deprovisioned(osb, osb_warren, client, mgmt):
    """/v1 treats an instance a platform made as one of its team's environments (with a
    `platform` object), so the team protects it with a PATCH; the platform's deprovision is
    then refused, and its update parameters cannot lift the protection."""
    platform = osb("cf-a")
    api = client("team-a", osb_warren)
    instance = str(uuid.uuid4())
    name = osb_environment_name(instance)
    vhost = vhost_of("team-a", name)
    try:
        assert platform.provision(instance, {}).status_code == 201
        resp = patch(api, name, {"protected": True})
        assert resp.status_code == 200, resp.text
        assert resp.json()["platform"]["instance_id"] == instance and resp.json()["protected"] is True

        for accepts_incomplete in (None, True):
            refused = assert_osb_error(platform.deprovision(instance, accepts_incomplete=accepts_incomplete), 422)
            assert refused["error"] == "UnprocessableEntity" and "protected" in refused["description"], refused
        assert mgmt.vhost(vhost) is not None
        # (Without a binding it has no user, so GET calls it degraded; the record is what counts.)
        assert api.get_ok(name)["protected"] is True
        assert env_record(mgmt.vhost(vhost))["state"] == "ready"
        assert platform.last_operation(instance).json()["state"] == "succeeded"
        # A platform neither lifts nor sets protection; a repeated provision is still identical.
        assert_osb_error(platform.update(instance, {"service_id": OSB_SERVICE_ID, "parameters": {"protected": False}}), 400)
        assert platform.provision(instance, {}).status_code == 200

        assert patch(api, name, {"protected": False}).status_code == 200
        assert platform.deprovision(instance).status_code == 200
        assert mgmt.vhost(vhost) is None
    finally:
        mgmt.purge_environment(vhost)

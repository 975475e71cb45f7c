"""Asynchronous operations in /v1: `Prefer: respond-async` on POST and DELETE of an
environment, against a real broker.

- A create answers 202 as soon as the vhost and its record exist, with the credentials its user
  will have; GET moves from `creating` to `ready`, and those credentials publish and consume.
- A create whose background work fails (a management call that hangs, through the fault proxy)
  has already answered 202; GET then says `failed` with the reason, its user is gone from the
  broker, and DELETE leaves nothing.
- A delete answers 202 once the environment is marked; GET says `deleting` until it is 404.
  The check for messages is still made before the answer (409, nothing changed).
- A Warren stopped (SIGTERM) right after a 202 finishes the work before it exits; one killed
  (SIGKILL) leaves it to the janitor of the next, which completes it or removes it.
"""

from __future__ import annotations

import time

import pika
import requests

from warren_support import (Api, amqp_login, amqp_params_from_uri, env_record, env_trace, invariant_violations,
                            publish_and_get, vhost_of, wait_for)

ASYNC = {"Prefer": "respond-async"}
# Short timeouts, so a hung call fails within a test's patience; no janitor rounds mid-test.
FAULT_WARREN = {"WARREN_MANAGEMENT_TIMEOUT_MS": "1500", "WARREN_SWEEP_INTERVAL_SECONDS": "3600"}


def create_async(api: Api, body: dict) -> requests.Response:
    return api.request("POST", "/v1/environments", json_body=body, headers=ASYNC)


def settled(api: Api, name: str, timeout: float = 30) -> dict:
    """The environment's GET once its status is no longer `creating`."""
    def done():
        got = api.get(name)
        return got.json() if got.status_code == 200 and got.json()["status"] != "creating" else None
    return wait_for(done, timeout=timeout, interval=0.1, what=f"environment {name} leaves `creating`")


def test_async_create_answers_202_then_becomes_ready_with_the_answered_credentials(api_a, new_name, mgmt):
    name = new_name("async")
    resp = create_async(api_a, {"name": name, "routing_key": "jobs"})
    assert resp.status_code == 202, resp.text[:1000]
    assert resp.headers["Location"] == f"/v1/environments/{name}"
    assert resp.headers.get("Preference-Applied") == "respond-async"
    assert resp.headers.get("Cache-Control") == "no-store", "the body holds a password"
    body = resp.json()
    assert body["status"] == "creating" and body["credentials"]["password"], body

    got = settled(api_a, name)
    assert got["status"] == "ready" and got["missing"] == [], got
    assert got["users"] == [body["credentials"]["username"]]
    conn = pika.BlockingConnection(amqp_params_from_uri(body["connection"]["uri"]))
    try:
        assert publish_and_get(conn, name, "jobs", name, b"scored later") == b"scored later"
    finally:
        conn.close()
    assert invariant_violations(mgmt, prefix=vhost_of("team-a", name)) == []

    # The same body again, asynchronously: it exists, so the answer is the synchronous one.
    again = create_async(api_a, {"name": name, "routing_key": "jobs"})
    assert again.status_code == 200 and again.json()["status"] == "ready", again.text[:500]
    assert amqp_login(again.json()["connection"]["uri"]) is None


def test_prefer_is_read_as_rfc_7240_says(api_a, new_name):
    """The preference among others and with a parameter counts; a look-alike token does not."""
    name = new_name("prefer")
    listed = api_a.request("POST", "/v1/environments", json_body={"name": name},
                           headers={"Prefer": "wait=5, Respond-Async ; x=1"})
    assert listed.status_code == 202, listed.text[:500]
    other = new_name("prefer")
    lookalike = api_a.request("POST", "/v1/environments", json_body={"name": other},
                              headers={"Prefer": "respond-asynchronously"})
    assert lookalike.status_code == 201 and "Preference-Applied" not in lookalike.headers, lookalike.text[:500]
    settled(api_a, name)


def test_async_delete_answers_202_and_the_environment_goes(api_a, new_name, mgmt):
    name = new_name("async-del")
    env = api_a.create_ok({"name": name})
    resp = api_a.request("DELETE", f"/v1/environments/{name}", headers=ASYNC)
    assert resp.status_code == 202, resp.text[:500]
    assert resp.headers["Location"] == f"/v1/environments/{name}"
    assert resp.headers.get("Preference-Applied") == "respond-async"
    seen = set()

    def gone():
        got = api_a.get(name)
        if got.status_code == 200:
            seen.add(got.json()["status"])
        return got.status_code == 404
    wait_for(gone, timeout=30, interval=0.05, what="the deleted environment is 404")
    assert seen <= {"deleting"}, f"while it went, GET said {seen}"
    assert env_trace(mgmt, env["vhost"]) == []
    assert amqp_login(env["connection"]["uri"]) is not None, "the deleted environment's user still logs in"
    # What is gone is not found, asynchronously or not.
    assert api_a.request("DELETE", f"/v1/environments/{name}", headers=ASYNC).status_code == 404


def test_async_delete_still_refuses_to_drop_messages(api_a, new_name, mgmt):
    name = new_name("async-held")
    env = api_a.create_ok({"name": name})
    conn = pika.BlockingConnection(amqp_params_from_uri(env["connection"]["uri"]))
    try:
        conn.channel().basic_publish(exchange=name, routing_key=name, body=b"pending job")
    finally:
        conn.close()
    resp = api_a.request("DELETE", f"/v1/environments/{name}", headers=ASYNC)
    assert resp.status_code == 409, resp.text[:500]
    assert api_a.get_ok(name)["status"] == "ready"
    assert invariant_violations(mgmt, prefix=env["vhost"]) == []
    forced = api_a.request("DELETE", f"/v1/environments/{name}?force=true", headers=ASYNC)
    assert forced.status_code == 202, forced.text[:500]
    wait_for(lambda: api_a.get(name).status_code == 404, timeout=30, what="forced delete finishes")


def test_a_failure_after_the_202_shows_as_failed_with_the_reason_and_delete_leaves_nothing(
        proxy, warren_factory, client, new_name, mgmt):
    proc = warren_factory("async-faults", WARREN_MANAGEMENT_URL=proxy.url, **FAULT_WARREN)
    api = client("team-a", proc)
    name = new_name("async-fail")
    vhost = vhost_of("team-a", name)
    # The exchange's declaration comes after the answer: it hangs until the management timeout.
    proxy.arm(1, "hang", match=lambda method, path: method == "PUT" and path.startswith(f"/api/exchanges/{vhost}/"))
    started = time.monotonic()
    resp = create_async(api, {"name": name})
    answered = time.monotonic() - started
    assert resp.status_code == 202, resp.text[:500]
    assert answered < 1.5, f"the 202 took {answered:.1f} s: it waited for the hung call"
    username = resp.json()["credentials"]["username"]

    got = settled(api, name)
    assert proxy.fired is not None and proxy.fired[1].startswith(f"/api/exchanges/{vhost}/"), proxy.fired
    assert got["status"] == "failed", got
    assert "exchange" in got["reason"] and "127.0.0.1" not in got["reason"], got["reason"]
    assert username not in mgmt.users_with_prefix(vhost + "."), "a failed create's user is left"
    assert amqp_login(resp.json()["connection"]["uri"]) is not None
    # Nothing but DELETE applies: a create of it again is a conflict that says why.
    again = api.create({"name": name})
    assert again.status_code == 409 and "DELETE" in again.json()["detail"], again.text[:500]
    assert api.delete(name).status_code == 204
    assert env_trace(mgmt, vhost) == []


def test_sigterm_right_after_a_202_finishes_the_create_before_exiting(warren_factory, client, new_name, mgmt):
    proc = warren_factory("async-stop")
    api = client("team-a", proc)
    name = new_name("async-stop")
    resp = create_async(api, {"name": name})
    assert resp.status_code == 202, resp.text[:500]
    proc.stop_cleanly()
    info = mgmt.vhost(vhost_of("team-a", name))
    assert info is not None and (env_record(info) or {}).get("state") == "ready", info
    assert invariant_violations(mgmt, prefix=vhost_of("team-a", name)) == []
    assert amqp_login(resp.json()["connection"]["uri"]) is None


CRASH_WARREN = {"WARREN_SWEEP_INTERVAL_SECONDS": "1", "WARREN_SWEEP_GRACE_SECONDS": "14",
                "WARREN_CREATE_DEADLINE_SECONDS": "3", "WARREN_MANAGEMENT_TIMEOUT_MS": "10000"}


def test_sigkill_right_after_a_202_is_finished_by_the_next_janitor(warren_factory, client, new_name, mgmt):
    proc = warren_factory("async-kill", **CRASH_WARREN)
    api = client("team-a", proc)
    names = [new_name("async-kill") for _ in range(4)]
    answered = [create_async(api, {"name": n}) for n in names]
    proc.crash()
    assert all(r.status_code == 202 for r in answered), [r.text[:200] for r in answered]
    warren_factory("async-kill-next", **CRASH_WARREN)

    def finished():
        for name in names:
            info = mgmt.vhost(vhost_of("team-a", name))
            if info is not None and (env_record(info) or {}).get("state") != "ready":
                return False
        return True
    wait_for(finished, timeout=60, interval=0.5, what="every interrupted create is ready or gone")
    for name, resp in zip(names, answered):
        vhost = vhost_of("team-a", name)
        if mgmt.vhost(vhost) is None:
            assert env_trace(mgmt, vhost) == []
        else:
            assert invariant_violations(mgmt, prefix=vhost) == []

"""Isolation with a real AMQP client (pika) and the broker's own view: what an environment's
credentials can reach beyond their environment. test_e2e_amqp.py covers the full-access user
on "/" and on other environments' vhosts; this covers every kind of credential (full,
producer, consumer, rotated), the management API, the permissions as the broker records them,
and least privilege inside an environment (a producer's or consumer's permission regex must
not match look-alike names: "jobs.v1" must not match "jobsXv1").
"""

from __future__ import annotations

import secrets

import pika
import pika.exceptions
import pytest
import requests

from warren_support import amqp_params, connection_refusal, seg, vhost_of

VHOST_REFUSED = (pika.exceptions.ProbableAccessDeniedError, pika.exceptions.ConnectionClosedByBroker)


def every_credential(api, name: str) -> tuple[dict, list[dict]]:
    """An environment with full, producer, consumer and rotated credentials."""
    env = api.create_ok({"name": name, "exchange": {"name": "jobs.v1", "type": "direct"},
                         "queue": {"name": "q.in", "type": "classic"}, "routing_key": "k",
                         "roles": ["producer", "consumer"]})
    rotated = api.request("POST", f"/v1/environments/{name}/credentials", json_body={"role": "consumer"})
    assert rotated.status_code == 201, rotated.text
    creds = [env["credentials"], *env["role_credentials"].values(), rotated.json()["credentials"]]
    assert {c["role"] for c in creds} == {"full", "producer", "consumer"}, creds
    return env, creds


def params(env: dict, creds: dict, vhost: str | None = None):
    c = env["connection"]
    return amqp_params(c["host"], c["port"], vhost or c["vhost"], creds["username"], creds["password"])


@pytest.fixture
def two_teams(api_a, api_b, new_name):
    name = new_name("iso")
    mine, my_creds = every_credential(api_a, name)
    sibling = api_a.create_ok({"name": new_name("iso-sib")})
    foreign = api_b.create_ok({"name": name})  # the same name in another team
    return mine, my_creds, sibling, foreign


def test_no_credential_reaches_another_vhost(two_teams):
    mine, creds, sibling, foreign = two_teams
    for cred in creds:
        pika.BlockingConnection(params(mine, cred)).close()  # control: they do work at home
        for vhost in ("/", sibling["vhost"], foreign["vhost"]):
            error = connection_refusal(params(mine, cred, vhost))
            assert isinstance(error, VHOST_REFUSED), f"{cred['role']} user on {vhost!r}: {error!r}"
    # And the other way round: the foreign team's user cannot enter this team's vhost.
    error = connection_refusal(params(foreign, foreign["credentials"], mine["vhost"]))
    assert isinstance(error, VHOST_REFUSED), repr(error)


def test_no_credential_can_use_the_management_api(two_teams, settings):
    mine, creds, _, foreign = two_teams
    for cred in [*creds, foreign["credentials"]]:
        auth = (cred["username"], cred["password"])
        for path in ("whoami", "overview", "vhosts", "users", f"vhosts/{seg(foreign['vhost'])}/permissions"):
            resp = requests.get(f"{settings.management_url}/api/{path}", auth=auth, timeout=10)
            assert resp.status_code == 401, (f"{cred['role']} credentials on the management API /api/{path}: "
                                             f"{resp.status_code} {resp.text[:200]}")


def test_the_broker_grants_each_user_its_own_vhost_only(two_teams, mgmt):
    mine, creds, _, foreign = two_teams
    for cred in [*creds, foreign["credentials"]]:
        user = mgmt.user(cred["username"])
        assert user is not None and not user.get("tags"), f"{cred['username']} has tags {user and user.get('tags')}"
        home = mine["vhost"] if cred in creds else foreign["vhost"]
        perms = mgmt.user_permissions(cred["username"])
        assert [p["vhost"] for p in perms] == [home], f"{cred['username']} has permissions on {perms}"
        topic = mgmt.get_json(f"users/{seg(cred['username'])}/topic-permissions") or []
        assert all(t["vhost"] == home for t in topic), topic
    # Nobody but the environment's own users and Warren's service user holds permissions on it.
    for env in (mine, foreign):
        holders = {p["user"] for p in mgmt.get_json(f"vhosts/{seg(env['vhost'])}/permissions")}
        strangers = {u for u in holders if not u.startswith(env["vhost"] + ".")} - {"guest"}
        assert not strangers, f"{env['vhost']} is open to {strangers}"


def _refused(fn) -> int:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        fn()
    return refused.value.reply_code


def test_role_permissions_do_not_match_look_alike_names(api_a, new_name):
    """The producer may publish to "jobs.v1" only and the consumer read "q.in" only: a regex
    that left the dot unescaped would also let them at "jobsXv1" and "qXin", which the full
    user can create in the same vhost."""
    env, creds = every_credential(api_a, new_name("iso-regex"))
    full, producer, consumer = (next(c for c in creds if c["role"] == r) for r in ("full", "producer", "consumer"))
    conn = pika.BlockingConnection(params(env, full))
    ch = conn.channel()
    ch.exchange_declare("jobsXv1", "direct", durable=True)
    ch.queue_declare("qXin", durable=True)
    ch.queue_bind("qXin", "jobsXv1", "k")
    ch.basic_publish("jobsXv1", "k", b"look-alike")
    conn.close()

    conn = pika.BlockingConnection(params(env, producer))
    ch = conn.channel()
    ch.confirm_delivery()
    assert _refused(lambda: ch.basic_publish("jobsXv1", "k", b"x", mandatory=True)) == 403
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("jobs.v1", "k", b"allowed", mandatory=True)  # its own exchange works
    conn.close()

    conn = pika.BlockingConnection(params(env, consumer))
    ch = conn.channel()
    assert _refused(lambda: ch.basic_get("qXin", auto_ack=True)) == 403
    ch = conn.channel()
    assert _refused(lambda: ch.queue_delete("q.in")) == 403
    ch = conn.channel()
    method, _props, body = ch.basic_get("q.in", auto_ack=True)
    assert method is not None and body == b"allowed"
    conn.close()

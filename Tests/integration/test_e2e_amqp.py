"""End to end: a real AMQP client (pika) uses what Warren returned, and is refused where it must be."""

import secrets

import pika
import pika.exceptions
import pytest

from warren_support import (amqp_params, amqp_params_from_uri, connection_refusal, publish_and_get,
                            vhost_of)

VHOST_REFUSED = (pika.exceptions.ProbableAccessDeniedError, pika.exceptions.ConnectionClosedByBroker)
LOGIN_REFUSED = (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)


def connect(uri: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(amqp_params_from_uri(uri))


def params_for(env: dict, vhost: str | None = None, creds: dict | None = None):
    creds = creds or env["credentials"]
    c = env["connection"]
    return amqp_params(c["host"], c["port"], vhost or c["vhost"], creds["username"], creds["password"])


def test_publish_and_consume_with_defaults(api_a, new_name):
    env = api_a.create_ok({"name": new_name("e2e")})
    body = f"hello {secrets.token_hex(8)}".encode()
    conn = connect(env["connection"]["uri"])
    try:
        got = publish_and_get(conn, env["exchange"]["name"], env["routing_key"], env["queue"]["name"], body)
        assert got == body
        # A key that is not bound is unroutable: the binding is exact, not a catch-all.
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish(env["exchange"]["name"], env["routing_key"] + "-other", b"x", mandatory=True)
    finally:
        conn.close()


def test_topic_exchange_classic_queue(api_a, new_name):
    env = api_a.create_ok({"name": new_name("e2e-topic"),
                           "exchange": {"name": "orders", "type": "topic"},
                           "queue": {"name": "orders.eu", "type": "classic"},
                           "routing_key": "orders.*.eu"})
    conn = pika.BlockingConnection(params_for(env))  # host/port/vhost/credentials, not the uri
    try:
        assert publish_and_get(conn, "orders", "orders.new.eu", "orders.eu", b"eu order") == b"eu order"
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish("orders", "orders.new.us", b"us order", mandatory=True)
    finally:
        conn.close()


def test_second_credentials_read_what_the_first_published(api_a, new_name):
    env = api_a.create_ok({"name": new_name("e2e-durable")})
    conn = connect(env["connection"]["uri"])
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(env["exchange"]["name"], env["routing_key"], b"kept",
                     properties=pika.BasicProperties(delivery_mode=2), mandatory=True)
    conn.close()
    # A new connection (and a user that did not publish) finds it.
    repeat = api_a.create_ok({"name": env["name"]}, expect=200)
    conn = connect(repeat["connection"]["uri"])
    try:
        ch = conn.channel()
        method, _props, body = ch.basic_get(env["queue"]["name"], auto_ack=True)
        assert method is not None and body == b"kept"
    finally:
        conn.close()


def test_user_is_refused_on_default_vhost(api_a, new_name):
    env = api_a.create_ok({"name": new_name("e2e-slash")})
    connect(env["connection"]["uri"]).close()  # control: the credentials do work on their vhost
    error = connection_refusal(params_for(env, vhost="/"))
    assert isinstance(error, VHOST_REFUSED), f"expected an access refusal, got {error!r}"


def test_user_is_refused_on_other_environments(api_a, api_b, new_name):
    mine = api_a.create_ok({"name": new_name("e2e-mine")})
    sibling = api_a.create_ok({"name": new_name("e2e-sibling")})
    foreign = api_b.create_ok({"name": mine["name"]})  # same name, other team
    assert foreign["vhost"] == vhost_of("team-b", mine["name"])
    for other in (sibling, foreign):
        error = connection_refusal(params_for(mine, vhost=other["vhost"]))
        assert isinstance(error, VHOST_REFUSED), f"{other['vhost']}: expected an access refusal, got {error!r}"
    error = connection_refusal(params_for(foreign, vhost=mine["vhost"]))
    assert isinstance(error, VHOST_REFUSED), f"expected an access refusal, got {error!r}"


def test_every_issued_credential_works(api_a, new_name):
    name = new_name("e2e-creds")
    issued = [api_a.create_ok({"name": name})]
    issued += [api_a.create_ok({"name": name}, expect=200) for _ in range(2)]
    for i, env in enumerate(issued):
        conn = connect(env["connection"]["uri"])
        try:
            body = f"via credentials {i}".encode()
            assert publish_and_get(conn, env["exchange"]["name"], env["routing_key"],
                                   env["queue"]["name"], body) == body
        finally:
            conn.close()


def test_credentials_refused_after_delete(api_a, new_name):
    name = new_name("e2e-gone")
    first = api_a.create_ok({"name": name})
    second = api_a.create_ok({"name": name}, expect=200)
    connect(first["connection"]["uri"]).close()
    assert api_a.delete(name).status_code == 204
    for env in (first, second):
        error = connection_refusal(amqp_params_from_uri(env["connection"]["uri"]))
        # The user itself must be gone: a refusal of the vhost alone would mean a leftover user.
        assert isinstance(error, LOGIN_REFUSED), f"expected a login refusal, got {error!r}"

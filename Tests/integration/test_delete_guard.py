"""DELETE without force never loses a message the broker has confirmed.

The broker's queue statistics lag by seconds, so a guard that read them would let a DELETE right
after a publish through and lose the message. Warren asks each queue itself (one message fetched
and requeued at once). Each round publishes one message with publisher confirms (so the
broker holds it when basic_publish returns), DELETEs at once: 409 `messages-pending`; the
message is still there (consumed with pika, the same body); the environment is intact; then
`?force=true` deletes it (204) and nothing is left. Without the guard (or with one reading the
statistics) the first DELETE answers 204 and the test fails. The control: an environment whose
queues are empty is deleted without force (204), for every queue type - a guard that refuses
everything protects nothing and makes DELETE useless.
"""

from __future__ import annotations

import pika
import pytest

from warren_support import Api, amqp_params, assert_problem, env_trace, invariant_violations

ROUNDS = 4


def connect(env: dict) -> pika.BlockingConnection:
    c, creds = env["connection"], env["credentials"]
    return pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"],
                                               creds["password"]))


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_delete_right_after_a_confirmed_publish_is_refused_and_loses_nothing(
        queue_type, warren, tokens, new_name, mgmt):
    api = Api(warren.url, tokens["team-a"])  # behaviour only: the contract has its own tests
    for round_ in range(ROUNDS):
        name = new_name(f"guard{round_}")
        # Several queues: the message sits in the last one (a guard that looked at the
        # first queue only would miss it).
        env = api.create_ok({"name": name, "queues": [{"name": "a", "type": queue_type},
                                                      {"name": "b", "type": queue_type}]})
        body = f"precious-{round_}".encode()
        conn = connect(env)
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_publish(env["exchange"]["name"], "b", body,
                             properties=pika.BasicProperties(delivery_mode=2), mandatory=True)
        finally:
            conn.close()

        refused = api.delete(name)
        problem = assert_problem(refused, 409, "messages-pending")
        assert problem.get("detail"), problem
        assert mgmt.vhost(env["vhost"]) is not None
        assert invariant_violations(mgmt, prefix=env["vhost"]) == [], "the refusal broke the topology"
        got = api.get_ok(name)
        assert got["status"] == "ready", got

        conn = connect(env)
        try:
            ch = conn.channel()
            method, _props, consumed = ch.basic_get("b", auto_ack=True)
            assert method is not None and consumed == body, (
                f"round {round_}: the message is gone after a refused DELETE: {method} {consumed!r}")
            # Publish again, so the forced delete below really has something to throw away.
            ch.confirm_delivery()
            ch.basic_publish(env["exchange"]["name"], "a", b"thrown away", mandatory=True)
        finally:
            conn.close()

        forced = api.request("DELETE", f"/v1/environments/{name}?force=true")
        assert forced.status_code == 204, forced.text[:500]
        assert env_trace(mgmt, env["vhost"]) == []
        assert api.get(name).status_code == 404


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_delete_of_an_empty_environment_needs_no_force(queue_type, warren, tokens, new_name, mgmt):
    api = Api(warren.url, tokens["team-a"])
    answers = []
    for round_ in range(3):
        name = new_name(f"empty{round_}")
        env = api.create_ok({"name": name, "queues": [{"name": "a", "type": queue_type},
                                                      {"name": "b", "type": queue_type, "dead_letter": True}]})
        if round_ == 2:  # a message that came and went: the queues are empty again
            conn = connect(env)
            try:
                ch = conn.channel()
                ch.confirm_delivery()
                ch.basic_publish(env["exchange"]["name"], "a", b"gone again", mandatory=True)
                method, _p, _b = ch.basic_get("a", auto_ack=True)
                assert method is not None
            finally:
                conn.close()
        resp = api.delete(name)
        answers.append((resp.status_code, resp.text[:300]))
        if resp.status_code != 204:
            api.request("DELETE", f"/v1/environments/{name}?force=true")
        else:
            assert env_trace(mgmt, env["vhost"]) == []
    assert all(status == 204 for status, _ in answers), (
        f"DELETE of an empty {queue_type} environment (no force) must answer 204: {answers}")

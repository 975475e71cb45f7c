"""What a broker release would do unasked is said in the answer, on every release of the matrix.

RabbitMQ 4.0 gave quorum queues a delivery limit of 20 when none is set: past it a job is
dead-lettered, or dropped when there is no dead-letter queue. Warren writes that limit into the
environment's spec (and its policy), so the create answer shows `delivery_limit: 20` and a note
that says what happens past it; on 3.10, which has no such default, there is neither. A repeat
of the same body is the same environment (200), not a conflict with the limit Warren wrote in.
"""

from __future__ import annotations

import pytest


def major_version(settings) -> int:
    version = settings.broker.get("BROKER_VERSION", "")
    assert version, "broker.env names no BROKER_VERSION (scripts/broker.sh writes it)"
    return int(version.split(".")[0])


@pytest.mark.parametrize("dead_letter", [False, True])
def test_quorum_delivery_limit_is_explicit(api_a, new_name, settings, dead_letter):
    name = new_name("limit")
    body = {"name": name, "queue": {"type": "quorum", "dead_letter": dead_letter}}
    env = api_a.create_ok(body)
    notes = env.get("notes") or []
    if major_version(settings) >= 4:
        assert env["queue"].get("delivery_limit") == 20, env["queue"]
        dropping = [n for n in notes if "drops it" in n]
        assert bool(dropping) == (not dead_letter), notes
    else:
        assert env["queue"].get("delivery_limit") is None, env["queue"]
        assert not any("drops it" in n for n in notes), notes
    again = api_a.create(body)
    assert again.status_code == 200, again.text[:300]
    assert again.json()["queue"].get("delivery_limit") == env["queue"].get("delivery_limit")


def test_a_limit_asked_for_is_kept_on_every_release(api_a, new_name):
    env = api_a.create_ok({"name": new_name("limit-asked"), "queue": {"type": "quorum", "delivery_limit": 3}})
    assert env["queue"]["delivery_limit"] == 3
    assert any("at most 3 times" in n for n in env.get("notes") or [])

"""Two warren processes on one broker, racing each other.

(a) identical creates split across both all succeed, each with working credentials, and make one
    environment; (b) creates of one name with different specs: exactly one spec wins, every other
    answer is 409 (or a 2xx with the winner's spec); (c) a create racing a delete of the same
    name ends complete or gone; (d) every 2xx create's credentials work unless the environment
    was deleted.
"""

from __future__ import annotations

import random
import time

import pytest

from warren_support import (amqp_login, env_trace, invariant_violations, run_concurrently,
                            vhost_of)

# A janitor that sweeps often, so what a lost race leaves behind (a user whose vhost a racing
# delete removed) is gone within seconds.
PAIR_WARREN = {"WARREN_SWEEP_INTERVAL_SECONDS": "1", "WARREN_SWEEP_GRACE_SECONDS": "7",
               "WARREN_CREATE_DEADLINE_SECONDS": "3", "WARREN_MANAGEMENT_TIMEOUT_MS": "3000"}
SETTLE_BOUND = 10.0


@pytest.fixture
def pair(warren_factory, client):
    """team-a's clients of two warrens on the same broker."""
    return (client("team-a", warren_factory("pair-1", **PAIR_WARREN)),
            client("team-a", warren_factory("pair-2", **PAIR_WARREN)))


def statuses(results) -> list:
    return [r if isinstance(r, Exception) else (r.status_code, r.text[:200]) for r in results]


def test_identical_creates_on_both_make_one_environment(pair, new_name, mgmt):
    name = new_name("twin")
    vhost = vhost_of("team-a", name)
    results = run_concurrently([lambda i=i: pair[i % 2].create({"name": name}) for i in range(10)])
    assert all(not isinstance(r, Exception) and r.status_code in (200, 201) for r in results), \
        statuses(results)
    assert 201 in [r.status_code for r in results], statuses(results)
    bodies = [r.json() for r in results]
    assert {b["vhost"] for b in bodies} == {vhost}
    assert len({b["created_at"] for b in bodies}) == 1, "one environment, one creation time"
    users = [b["credentials"]["username"] for b in bodies]
    assert len(set(users)) == 10, "every create issues its own user"
    for b in bodies:
        assert b["connection"]["vhost"] == vhost
        assert amqp_login(b["connection"]["uri"]) is None, b["credentials"]["username"]
    for api in pair:
        assert [i["name"] for i in api.list_ok()].count(name) == 1
        got = api.get_ok(name)
        assert got["status"] == "ready" and sorted(got["users"]) == sorted(users), got
    assert invariant_violations(mgmt, prefix=vhost) == []

    assert pair[1].delete(name).status_code == 204
    assert pair[0].get(name).status_code == 404
    assert env_trace(mgmt, vhost) == []


SPEC_A = {"queue": {"type": "quorum"}, "routing_key": "spec-a"}
SPEC_B = {"queue": {"type": "classic"}, "routing_key": "spec-b", "exchange": {"type": "topic"}}


def spec_of(body: dict) -> tuple:
    return (body["queue"]["type"], body["routing_key"], body["exchange"]["type"])


@pytest.mark.parametrize("round_", range(4))
def test_different_specs_racing_exactly_one_wins(round_, pair, new_name, mgmt, report):
    name = new_name("spec-race")
    vhost = vhost_of("team-a", name)
    asked = [SPEC_A if i % 2 == 0 else SPEC_B for i in range(8)]
    # A and B alternate, and each goes to both warrens: i % 4 in (0, 1) -> warren 1.
    results = run_concurrently([lambda i=i: pair[(i // 2) % 2].create({"name": name, **asked[i]})
                                for i in range(8)])
    assert not any(isinstance(r, Exception) for r in results), statuses(results)
    assert all(r.status_code in (200, 201, 409) for r in results), statuses(results)

    got = pair[0].get_ok(name)
    survivor = spec_of(got)
    assert survivor in (("quorum", "spec-a", "direct"), ("classic", "spec-b", "topic")), got
    assert got["status"] == "ready", got
    winners = [r.json() for r in results if r.status_code in (200, 201)]
    assert winners, f"no create succeeded: {statuses(results)}"
    for r, spec in zip(results, asked):
        if r.status_code in (200, 201):
            assert spec_of(r.json()) == survivor, (
                f"a create answered {r.status_code} with spec {spec_of(r.json())} but the "
                f"environment has {survivor}: {statuses(results)}")
        else:
            assert r.json()["type"] == "urn:warren:problem:conflict", r.text
    assert invariant_violations(mgmt, prefix=vhost, require_ready=False) == []
    # A loser's record write can land after the winner marked its record ready: then the record
    # says "creating" although every part exists, until a janitor (grace 3 s) marks it ready.
    started = time.monotonic()
    while (violations := invariant_violations(mgmt, prefix=vhost)) and \
            time.monotonic() - started < SETTLE_BOUND:
        time.sleep(0.2)
    assert not violations, f"after {SETTLE_BOUND:.0f} s: {violations}"
    if time.monotonic() - started > 0.5:
        report("races", f"spec race {round_} ({', '.join(str(r.status_code) for r in results)}): the "
                        f"record was left 'creating' after every answer; ready after "
                        f"{time.monotonic() - started:.1f} s (janitor)")
    q = mgmt.queue(vhost, name)
    assert q is not None and (q.get("type") or q["arguments"].get("x-queue-type")) == survivor[0], q
    for body in winners:  # (d)
        assert amqp_login(body["connection"]["uri"]) is None, body["credentials"]["username"]
    assert pair[1].delete(name).status_code == 204
    assert env_trace(mgmt, vhost) == []


def complete_or_gone(api, mgmt, name: str) -> tuple[str, list[str]]:
    """('complete'|'gone'|'neither', problems) for the environment, through the API and the broker."""
    vhost = vhost_of("team-a", name)
    got = api.get(name)
    if got.status_code == 404:
        trace = env_trace(mgmt, vhost)
        return ("gone", []) if not trace else ("neither", [f"404 but left: {trace}"])
    problems = invariant_violations(mgmt, prefix=vhost)
    if got.status_code != 200 or got.json().get("status") != "ready":
        problems.append(f"GET answered {got.status_code}: {got.text[:300]}")
    return ("complete", []) if not problems else ("neither", problems)


def test_create_racing_delete_ends_complete_or_gone(pair, new_name, mgmt, report):
    rng = random.Random(7)
    outcomes, settle_times, bad = [], [], []
    for round_ in range(10):
        name = new_name(f"cvd{round_}")
        creator, deleter = (pair[0], pair[1]) if round_ % 2 == 0 else (pair[1], pair[0])
        if round_ % 4 >= 2:  # half the rounds race against an existing environment
            creator.create_ok({"name": name})
        delay = rng.uniform(0, 0.08)

        def delete_later(name=name, delay=delay, deleter=deleter):
            time.sleep(delay)
            return deleter.delete(name)

        created, deleted = run_concurrently([lambda name=name, c=creator: c.create({"name": name}),
                                             delete_later])
        assert not isinstance(created, Exception) and not isinstance(deleted, Exception), (created, deleted)
        # 409: the create found the delete under way and gave way to it.
        assert created.status_code in (200, 201, 409, 502, 503), created.text[:500]
        # Never a broker error for a race: the guard's questions to a queue that is being made
        # (or is gone) have answers; 409 when a create made the name anew under the delete.
        assert deleted.status_code in (204, 404, 409, 503), deleted.text[:500]

        started = time.monotonic()
        while True:
            state, problems = complete_or_gone(pair[0], mgmt, name)
            if state != "neither" or time.monotonic() - started > SETTLE_BOUND:
                break
            time.sleep(0.2)
        settle_times.append(time.monotonic() - started)
        outcomes.append(f"{created.status_code}/{deleted.status_code}->{state}")
        if state == "neither":
            bad.append(f"round {round_} (create {created.status_code}, delete after {delay * 1000:.0f} ms "
                       f"{deleted.status_code}): after {SETTLE_BOUND:.0f} s: {problems}")
            continue
        if state == "complete" and created.status_code in (200, 201):  # (d)
            why = amqp_login(created.json()["connection"]["uri"])
            if why:
                bad.append(f"round {round_}: the create's credentials do not work: {why}")
        if state == "complete":
            assert pair[0].delete(name).status_code == 204
    line = (f"create racing delete, 10 rounds: {', '.join(outcomes)}; settled within "
            f"{max(settle_times):.1f} s ({sum(t > 0.5 for t in settle_times)} round(s) needed the janitor)")
    print("\n" + line)
    report("races", line)
    assert not bad, "\n".join(bad)

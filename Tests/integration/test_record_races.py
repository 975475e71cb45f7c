"""Records under races between two warren instances on one broker.

Records are written only under a cross-instance lease lock, re-read before each write, one
field-level change at a time; `deleting` is never undone and no write recreates a deleted vhost;
quota is counted again after a create's vhost exists. Each test races two instances:

(a) identical creates on both, one instance failing a later management call (fault proxy): the
    environment a success answered for survives (it is not rolled back by the failing
    instance), and its credentials work with pika;
(b) DELETE racing a create / a PATCH: once the DELETE answered 204 (and nothing answered a
    create after it), no vhost of that name comes back (polled for a few seconds);
(c) PATCH adding a queue racing a rotation with revoke_others_after_seconds 2: both changes
    land (a stale write would drop one: the queue from the spec, or the revocation);
(d) two rotations with revoke_others_after_seconds 0 at once: both new users work (one must
    not revoke the other);
(e) 16 parallel creates over both instances with a quota of 8: at most 8 exist, every 201
    works, refusals are 403 quota-exceeded (or 503 with Retry-After), nothing half-made.

Every client here skips the OpenAPI check: these tests check behaviour (the contract has its own).
"""

from __future__ import annotations

import time

import pytest

from faultproxy import FaultProxy
from warren_support import (SWEEPING_WARREN, Api, amqp_login, amqp_params, amqp_params_from_uri,
                            env_trace, invariant_violations, publish_and_get, run_concurrently,
                            vhost_of, wait_for)

import pika

RESURRECTION_WATCH = 5.0
REVOKE_BOUND = 15.0


def statuses(results) -> list:
    return [r if isinstance(r, Exception) else (r.status_code, r.text[:200]) for r in results]


def force_delete(api: Api, name: str):
    return api.request("DELETE", f"/v1/environments/{name}?force=true")


@pytest.fixture
def pair(warren_factory, tokens):
    one = warren_factory("rr-1", **SWEEPING_WARREN)
    two = warren_factory("rr-2", **SWEEPING_WARREN)
    return Api(one.url, tokens["team-a"]), Api(two.url, tokens["team-a"]), (one, two)


# (a) -----------------------------------------------------------------------------------------

FAILING_CALLS = {
    "create user": lambda m, p: m == "PUT" and p.startswith("/api/users/"),
    "user permissions": lambda m, p: m == "PUT" and p.startswith("/api/permissions/warren.team-a."),
    "declare queue": lambda m, p: m == "PUT" and p.startswith("/api/queues/warren.team-a.")
                                  and not p.endswith("/warren.claim"),
    "bind": lambda m, p: m == "POST" and p.startswith("/api/bindings/"),
}


@pytest.mark.parametrize("failing", sorted(FAILING_CALLS))
def test_identical_creates_one_instance_failing_late(failing, settings, warren_factory, tokens,
                                                     new_name, mgmt):
    proxy = FaultProxy(settings.management_url).start()
    try:
        direct = warren_factory("rr-direct", **SWEEPING_WARREN)
        # No sweeps through the proxy: the armed fault is for the create's calls.
        proxied = warren_factory("rr-proxied", WARREN_MANAGEMENT_URL=proxy.url,
                                 WARREN_SWEEP_INTERVAL_SECONDS="3600", WARREN_SWEEP_GRACE_SECONDS="5",
                                 WARREN_CREATE_DEADLINE_SECONDS="3", WARREN_MANAGEMENT_TIMEOUT_MS="1000")
        good, bad_api = Api(direct.url, tokens["team-a"]), Api(proxied.url, tokens["team-a"])
        proxy.wait_quiet(0.3)
        successes, fired_rounds, report_lines = 0, 0, []
        for round_ in range(4):
            name = new_name(f"late{round_}")
            proxy.arm(1, "http500", FAILING_CALLS[failing])
            calls = [lambda: good.create({"name": name, "queue": {"type": "classic"}}),
                     lambda: bad_api.create({"name": name, "queue": {"type": "classic"}})]
            if round_ % 2:
                calls.reverse()
            results = run_concurrently(calls)
            fired = proxy.disarm()
            fired_rounds += fired is not None
            if round_ % 2:
                results.reverse()
            ok_direct, failed = results
            report_lines.append(f"round {round_}: direct {statuses([ok_direct])}, proxied "
                                f"{statuses([failed])}, fault {fired}")
            assert not isinstance(ok_direct, Exception) and not isinstance(failed, Exception), report_lines
            time.sleep(2)  # the failing instance's rollback and the janitors are done by now
            for r in (ok_direct, failed):
                if r.status_code not in (200, 201):
                    continue
                successes += 1
                env = r.json()
                got = good.get(name)
                assert got.status_code == 200 and got.json()["status"] == "ready", (
                    f"{failing}: an environment answered {r.status_code} did not survive the other "
                    f"instance's failure: {got.status_code} {got.text[:300]}\n" + "\n".join(report_lines))
                conn = pika.BlockingConnection(amqp_params_from_uri(env["connection"]["uri"]))
                try:
                    assert publish_and_get(conn, env["exchange"]["name"], env["routing_key"],
                                           env["queue"]["name"], b"survived") == b"survived"
                finally:
                    conn.close()
                assert invariant_violations(mgmt, prefix=env["vhost"]) == []
            if env_trace(mgmt, vhost_of("team-a", name)):
                force_delete(good, name)
        assert successes, (f"{failing}: no create succeeded in any round (README: identical creates all pass; here the "
                           f"failing instance's rollback took down the create the other had joined):\n" + "\n".join(report_lines))
        assert fired_rounds, f"{failing}: the fault never fired:\n" + "\n".join(report_lines)
        print("\n" + "\n".join(report_lines))
    finally:
        proxy.stop()


# (b) -----------------------------------------------------------------------------------------


def watch_for_resurrection(mgmt, vhost: str, seconds: float = RESURRECTION_WATCH) -> list[str]:
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = mgmt.vhost(vhost)
        if info is not None:
            seen.append(f"{time.monotonic():.2f}: vhost {vhost} exists, description "
                        f"{str(info.get('description'))[:200]!r}")
        time.sleep(0.1)
    return seen


def test_delete_during_a_create_leaves_no_resurrected_vhost(pair, new_name, mgmt):
    one, two, _ = pair
    bad = []
    for round_ in range(6):
        name = new_name(f"dvc{round_}")
        vhost = vhost_of("team-a", name)
        creator, deleter = (one, two) if round_ % 2 == 0 else (two, one)

        def delete_soon():
            time.sleep(0.02 * (round_ % 3))
            return deleter.delete(name)

        created, deleted = run_concurrently([lambda: creator.create({"name": name, "queue": {"type": "classic"}}),
                                             delete_soon])
        assert not isinstance(created, Exception) and not isinstance(deleted, Exception), (created, deleted)
        if deleted.status_code == 204 and created.status_code not in (200, 201):
            seen = watch_for_resurrection(mgmt, vhost)
            if seen:
                bad.append(f"round {round_}: create {created.status_code} {created.text[:200]}, delete 204, "
                           f"then {seen[:3]} ({len(seen)} sightings)")
        else:
            # Both succeeded (order unknown) or the delete found nothing yet: complete or gone.
            time.sleep(1)
            wait_for(lambda: not invariant_violations(mgmt, prefix=vhost), timeout=12,
                     what=f"round {round_} ({created.status_code}/{deleted.status_code}) complete or gone")
            if mgmt.vhost(vhost) is not None:
                assert force_delete(one, name).status_code == 204
                seen = watch_for_resurrection(mgmt, vhost, 2)
                if seen:
                    bad.append(f"round {round_}: after a forced delete: {seen[:3]}")
    assert not bad, "\n".join(bad)


def test_delete_during_a_patch_leaves_no_resurrected_vhost(pair, new_name, mgmt):
    one, two, _ = pair
    bad = []
    for round_ in range(6):
        name = new_name(f"dvp{round_}")
        vhost = vhost_of("team-a", name)
        one.create_ok({"name": name, "queue": {"type": "classic"}})
        patcher, deleter = (one, two) if round_ % 2 == 0 else (two, one)

        def delete_soon():
            time.sleep(0.01 * (round_ % 3))
            return deleter.delete(name)

        patched, deleted = run_concurrently([
            lambda: patcher.request("PATCH", f"/v1/environments/{name}",
                                    json_body={"queues": [{"name": f"added{round_}", "type": "classic"}]}),
            delete_soon])
        assert not isinstance(patched, Exception) and not isinstance(deleted, Exception), (patched, deleted)
        assert deleted.status_code == 204, f"round {round_}: delete {deleted.status_code} {deleted.text[:300]}"
        assert patched.status_code in (200, 404, 409, 503), patched.text[:300]
        seen = watch_for_resurrection(mgmt, vhost)
        if seen:
            bad.append(f"round {round_}: patch {patched.status_code} {patched.text[:150]}, delete 204, then "
                       f"{seen[:3]} ({len(seen)} sightings)")
        left = env_trace(mgmt, vhost)
        if left:
            bad.append(f"round {round_}: left after the watch: {left}")
    assert not bad, "\n".join(bad)


# (c) -----------------------------------------------------------------------------------------


def login_refused(env: dict, creds: dict) -> bool:
    c = env["connection"]
    try:
        pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"],
                                            creds["password"])).close()
        return False
    except pika.exceptions.AMQPConnectionError:
        return True


def test_patch_racing_a_delayed_rotation_keeps_both(pair, new_name, mgmt):
    one, two, _ = pair
    bad = []
    for round_ in range(5):
        name = new_name(f"pvr{round_}")
        env = one.create_ok({"name": name, "queue": {"type": "classic"}})
        old = env["credentials"]
        queue = f"added{round_}"
        patched, rotated = run_concurrently([
            lambda: one.request("PATCH", f"/v1/environments/{name}",
                                json_body={"queues": [{"name": queue, "type": "classic"}]}),
            lambda: two.request("POST", f"/v1/environments/{name}/credentials",
                                json_body={"revoke_others_after_seconds": 2})])
        assert not isinstance(patched, Exception) and not isinstance(rotated, Exception), (patched, rotated)
        if patched.status_code != 200 or rotated.status_code != 201:
            bad.append(f"round {round_}: patch {patched.status_code} {patched.text[:200]}, rotation "
                       f"{rotated.status_code} {rotated.text[:200]}")
            continue
        new = rotated.json()["credentials"]
        started = time.monotonic()
        while time.monotonic() - started < REVOKE_BOUND and mgmt.user(old["username"]) is not None:
            time.sleep(0.25)
        got = one.get_ok(name)
        problems = []
        if queue not in [q["name"] for q in got["queues"]]:
            problems.append(f"queue {queue} missing from GET: {[q['name'] for q in got['queues']]}")
        if mgmt.queue(env["vhost"], queue) is None:
            problems.append(f"queue {queue} missing on the broker")
        if mgmt.user(old["username"]) is not None:
            problems.append(f"old user still exists after {REVOKE_BOUND:.0f} s; record "
                            f"{mgmt.vhost(env['vhost'])['description'][:400]}")
        elif not login_refused(env, old):
            problems.append("old credentials still log in")
        if got["users"] != [new["username"]]:
            problems.append(f"users {got['users']}, expected only {new['username']}")
        if login_refused(env, new):
            problems.append("new credentials do not log in")
        if problems:
            bad.append(f"round {round_}: " + "; ".join(problems))
        force_delete(one, name)
    assert not bad, "\n".join(bad)


# (d) -----------------------------------------------------------------------------------------


def test_two_immediate_rotations_at_once_never_revoke_each_other(pair, new_name, mgmt):
    """Each rotation revokes the users that held permissions when it began. So of two at once,
    neither revokes the other's new user when both began before either made one; when one began
    just after the other's user was made (a matter of milliseconds on a loaded machine), it
    revokes that one, as two rotations one after the other would. Never both: at least one new
    set always works, and the original never does."""
    one, two, _ = pair
    bad = []
    for round_ in range(3):
        name = new_name(f"rvr{round_}")
        env = one.create_ok({"name": name, "queue": {"type": "classic"}})
        results = run_concurrently([
            lambda api=api: api.request("POST", f"/v1/environments/{name}/credentials",
                                        json_body={"revoke_others_after_seconds": 0})
            for api in (one, two)])
        if any(isinstance(r, Exception) or r.status_code != 201 for r in results):
            bad.append(f"round {round_}: {statuses(results)}")
            continue
        time.sleep(3)  # several sweeps
        working = [r.json()["credentials"]["username"] for r in results
                   if not login_refused(env, r.json()["credentials"])]
        if not working:
            bad.append(f"round {round_}: neither new user can log in (they revoked each other); record "
                       f"{mgmt.vhost(env['vhost'])['description'][:400]}")
        if not login_refused(env, env["credentials"]):
            bad.append(f"round {round_}: the original user was not revoked")
        force_delete(one, name)
    assert not bad, "\n".join(bad)


# (e) -----------------------------------------------------------------------------------------


def test_parallel_creates_over_two_instances_hold_the_quota(warren_factory, tokens, new_name, mgmt,
                                                            report):
    quota = 8
    settings_ = {**SWEEPING_WARREN, "WARREN_MAX_ENVIRONMENTS_PER_TEAM": str(quota)}
    apis = [Api(warren_factory(f"quota-{i}", **settings_).url, tokens["team-a"]) for i in range(2)]
    # Warren counts from team-a's index; rebuilt from the vhosts, it counts what this test counts.
    mgmt.reset_team_index("team-a")
    before = {v for v in mgmt.vhost_names() if v.startswith("warren.team-a.")}
    assert len(before) < quota, f"team-a already has {len(before)} environments: {sorted(before)}"
    base = new_name("quota")
    names = [f"{base}-{i}" for i in range(16)]
    new_name.names.extend(names)
    results = run_concurrently([lambda i=i: apis[i % 2].create({"name": names[i], "queue": {"type": "classic"}})
                                for i in range(16)], timeout=90)
    assert not any(isinstance(r, Exception) for r in results), statuses(results)
    created = [(n, r.json()) for n, r in zip(names, results) if r.status_code == 201]
    bad = []
    for n, r in zip(names, results):
        if r.status_code == 201:
            continue
        if r.status_code == 403:
            if r.json().get("type") != "urn:warren:problem:quota-exceeded":
                bad.append(f"{n}: 403 {r.text[:200]}")
        elif r.status_code == 503:
            if not r.headers.get("Retry-After"):
                bad.append(f"{n}: 503 without Retry-After")
        else:
            bad.append(f"{n}: {r.status_code} {r.text[:200]}")
    report("quota", f"16 parallel creates, quota {quota} ({len(before)} before): "
                    f"{sorted(r.status_code for r in results)}")
    assert not bad, "\n".join(bad)
    assert created, f"no create succeeded: {statuses(results)}"
    assert len(created) <= quota - len(before), f"{len(created)} creates answered 201 with quota {quota}"
    listed = mgmt.team_index("team-a") or []
    assert {n for n in listed if n.startswith(base)} == {n for n, _ in created}, (
        f"team-a's index {sorted(listed)} vs 201s {[n for n, _ in created]}")
    for _, body in created:
        assert amqp_login(body["connection"]["uri"]) is None, body["credentials"]["username"]
    prefix = vhost_of("team-a", base) + "-"
    wait_for(lambda: not invariant_violations(mgmt, prefix=prefix), timeout=15,
             what="nothing half-made (complete or gone)")
    existing = {v for v in mgmt.vhost_names() if v.startswith("warren.team-a.")}
    assert len(existing) <= quota, f"{len(existing)} team-a environments exist: {sorted(existing)}"
    mine = {v for v in existing if v.startswith(prefix)}
    assert mine == {vhost_of("team-a", n) for n, _ in created}, (
        f"environments on the broker {sorted(mine)} vs 201s {[n for n, _ in created]}")
    for n, _ in created:
        assert force_delete(apis[0], n).status_code == 204

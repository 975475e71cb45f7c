"""Provisioning is all-or-nothing and safe to retry, under injected broker faults.

A warren talks to the broker through a fault-injecting proxy (faultproxy.py). A fault-free dry
run measures the management calls of a create and of a delete; then each of them is failed in
turn, in each mode (a 500, a TCP reset, no answer at all), and:

- a failed create answers 502/503 problem+json naming the failed step, and the broker (checked
  directly, not through the proxy) holds no vhost and no user of that environment;
- a failed delete answers 502/503, and a retried delete finishes the job: no trace remains.

Also: a broker that is down gives a fast 503, and Warren recovers by itself once it is back;
`reconcile` restores what drifted away.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import pytest
import requests

from faultproxy import MODES, FaultProxy
from warren_support import (amqp_login, amqp_params_from_uri, env_trace, invariant_violations,
                            publish_and_get, seg, vhost_of, wait_for)

import pika

# hang must end quickly; no background rounds (the janitor's, the usage collector's every 15 s
# by default) may make stray calls through the proxy mid-case: the proxy fails the k-th call
# whoever makes it, and the slower the machine, the more rounds fall inside a case.
FAULT_WARREN = {"WARREN_MANAGEMENT_TIMEOUT_MS": "1500", "WARREN_SWEEP_INTERVAL_SECONDS": "3600",
                "WARREN_USAGE_INTERVAL_SECONDS": "86400"}
EXPECTED_STATUS = {"http500": 502, "reset": 503, "hang": 503}


@dataclass
class Tally:
    cases: int = 0
    unexercised: int = 0  # k beyond the calls a run made (the vhost poll can vary)
    resent: int = 0  # reset calls the HTTP client sent again at once (reset again: see faultproxy)
    orphans: list = field(default_factory=list)
    kinds: dict = field(default_factory=dict)  # "create"/"delete" -> set of call templates failed


@pytest.fixture(scope="module")
def tally(report):
    t = Tally()
    yield t
    line = (f"fault cases: {t.cases}, orphans: {len(t.orphans)}, "
            f"k beyond the calls made: {t.unexercised}, reset calls resent by the client: "
            f"{t.resent}; distinct calls failed: "
            + "; ".join(f"{op} {len(v)}" for op, v in sorted(t.kinds.items())))
    print("\n" + line)
    report("faults", line)
    for orphan in t.orphans:
        report("faults", f"orphan: {orphan}")


@pytest.fixture
def proxied(proxy, warren_factory, client, new_name):
    """team-a's client of a warren whose every management call goes through the proxy."""
    proc = warren_factory("faults", WARREN_MANAGEMENT_URL=proxy.url, **FAULT_WARREN)
    # Let the janitor's start-up sweep finish before counting calls.
    try:
        wait_for(lambda: proxy.count > 0, timeout=3, interval=0.05)
    except AssertionError:
        pass
    proxy.wait_quiet(0.4)
    api = client("team-a", proc)
    api.proc = proc
    # A first create and delete, so the dry run counts the calls every create makes, not the
    # one-time ones of a warren's first (the broker's version, Warren's own vhost, and the
    # team's index built from the vhost listing when the team has none yet).
    name = new_name("warm")
    api.create_ok({"name": name})
    assert api.delete(name).status_code == 204
    proxy.wait_quiet(0.2)
    return api


def template(method: str, path: str, name: str) -> str:
    """A call with this case's names replaced, e.g. 'PUT /api/queues/{vhost}/{name}'."""
    vhost = vhost_of("team-a", name)
    path = re.sub(re.escape(vhost) + r"\.[0-9a-f]{16}", "{user}", path)
    return f"{method} " + path.replace(vhost, "{vhost}").replace(name, "{name}")


def is_lock_release(fired) -> bool:
    """The DELETE that releases a record's lock in Warren's own vhost."""
    return fired[0] == "DELETE" and fired[1].startswith("/api/queues/warren.system/lock.")


def is_index_upkeep(fired) -> bool:
    """A call a DELETE makes to take the name out of its team's index once the vhost is gone:
    best effort (a name left behind only counts against the quota until the janitor takes it
    out), so the DELETE succeeds without it."""
    return (fired[1].startswith("/api/global-parameters/warren.team.")
            or fired[1].startswith("/api/queues/warren.system/lock.team."))


def dry_run(proxy: FaultProxy, api, new_name) -> tuple[list[str], list[str]]:
    """The call templates of one fault-free create and one delete, in arrival order."""
    name = new_name("dry")
    mark = proxy.mark()
    api.create_ok({"name": name})
    mid = proxy.mark()
    assert api.delete(name).status_code == 204
    create = [template(m, p, name) for m, p in proxy.since(mark)[:mid - mark]]
    delete = [template(m, p, name) for m, p in proxy.since(mid)]
    assert len(create) >= 5 and len(delete) >= 2, (create, delete)
    return create, delete


def failure_problems(resp: requests.Response, mode: str, spec) -> list[str]:
    """What is wrong with the answer to a call whose broker step failed in `mode`."""
    expected = EXPECTED_STATUS[mode]
    if resp.status_code != expected:
        return [f"answered {resp.status_code}, expected {expected}: {resp.text[:300]}"]
    problems = []
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
    if ctype != "application/problem+json":
        problems.append(f"Content-Type {ctype!r}")
        return problems
    body = resp.json()
    if not (isinstance(body.get("detail"), str) and body["detail"]):
        problems.append("no detail")
    if not (isinstance(body.get("step"), str) and body["step"]):
        problems.append(f"no 'step' member: {body}")
    if expected == 503 and not re.fullmatch(r"[1-9][0-9]*", resp.headers.get("Retry-After", "")):
        problems.append(f"503 without a valid Retry-After: {resp.headers.get('Retry-After')!r}")
    try:
        spec.conform(resp, resp.request.method, resp.request.path_url)
    except AssertionError as e:
        problems.append(str(e)[:300])
    return problems


def run_cases(op: str, mode: str, calls: list[str], proxy, api, new_name, mgmt, spec, tally,
              attempt) -> list[str]:
    """Fails each call of `calls` in turn (by position, then each missed kind by name)."""
    failures: list[str] = []
    hit: set[str] = set()

    def one(k: int, kind: str | None) -> None:
        name = new_name(f"{op[0]}{mode[:2]}{k}")
        match = None if kind is None else (lambda m, p, name=name: template(m, p, name) == kind)
        fired, problems, answered_ok = attempt(name, lambda: proxy.arm(k, mode, match))
        tally.resent += proxy.repeats
        if fired is None:
            tally.unexercised += 1
            if problems:
                failures.append(f"{op} #{k} (no fault fired): " + "; ".join(problems))
            return
        tally.cases += 1
        label = f"{op}, {mode} at call {k if kind is None else kind}: {fired}"
        hit.add(fired)
        tally.kinds.setdefault(op, set()).add(fired)
        vhost = vhost_of("team-a", name)
        if answered_ok:  # wrong answer (see problems), but then it must be complete
            problems = problems + [f"then not complete: {v}" for v in
                                   invariant_violations(mgmt, prefix=vhost)]
            mgmt.purge_environment(vhost)
        trace = env_trace(mgmt, vhost)
        if trace:
            tally.orphans.append(f"{label}: {', '.join(trace)}")
            mgmt.purge_environment(vhost_of("team-a", name))
            problems = problems + [f"left on the broker: {', '.join(trace)}"]
        if problems:
            failures.append(f"{label}: " + "; ".join(problems))

    for k in range(1, len(calls) + 1):
        one(k, None)
    for kind in sorted(set(calls) - hit):
        one(1, kind)
    missed = set(calls) - hit
    if missed:
        failures.append(f"{op}: these calls were never failed: {sorted(missed)}")
    return failures


@pytest.mark.parametrize("mode", MODES)
def test_failed_create_leaves_nothing(mode, proxy, proxied, mgmt, new_name, spec, tally):
    calls, _ = dry_run(proxy, proxied, new_name)

    def attempt(name, arm):
        arm()
        resp = proxied.create({"name": name}, check_spec=False)
        fired = proxy.disarm()
        if fired is None:  # this run made fewer calls than the dry run
            if resp.status_code != 201:
                return None, [f"answered {resp.status_code} without a fault: {resp.text[:300]}"], False
            assert proxied.delete(name).status_code == 204
            return None, [], False
        if is_lock_release(fired) and resp.status_code == 201:
            # Releasing the record's lock is best effort: its lease expires by itself. The
            # create stands, and must be complete (checked by the caller).
            return template(*fired, name), [], True
        return template(*fired, name), failure_problems(resp, mode, spec), resp.ok

    failures = run_cases("create", mode, calls, proxy, proxied, new_name, mgmt, spec, tally, attempt)
    assert not failures, (f"{len(failures)} failed create(s) in mode {mode} went wrong "
                          f"(create calls: {calls}):\n" + "\n".join(failures))


@pytest.mark.parametrize("mode", MODES)
def test_failed_delete_is_finished_by_a_retry(mode, proxy, proxied, mgmt, new_name, spec, tally):
    _, calls = dry_run(proxy, proxied, new_name)

    def attempt(name, arm):
        proxied.create_ok({"name": name})
        arm()
        resp = proxied.delete(name, check_spec=False)
        fired = proxy.disarm()
        if fired is None:
            return None, ([] if resp.status_code == 204 else
                          [f"answered {resp.status_code} without a fault: {resp.text[:300]}"]), False
        if (is_lock_release(fired) or is_index_upkeep(fired)) and resp.status_code == 204:
            return template(*fired, name), [], False
        if fired[:2] == ("GET", "/api/users") and resp.status_code == 204:
            # The full user listing is a safety net in a delete (permissions name the users, the
            # janitor removes orphans): Warren goes on without it. No trace may remain.
            return template(*fired, name), [], False
        problems = failure_problems(resp, mode, spec)
        retry = proxied.delete(name)
        if retry.status_code not in (204, 404):
            problems.append(f"the retried DELETE answered {retry.status_code}: {retry.text[:300]}")
        return template(*fired, name), problems, False

    failures = run_cases("delete", mode, calls, proxy, proxied, new_name, mgmt, spec, tally, attempt)
    assert not failures, (f"{len(failures)} failed delete(s) in mode {mode} went wrong "
                          f"(delete calls: {calls}):\n" + "\n".join(failures))


def test_broker_down_then_back(proxy, proxied, new_name, mgmt):
    name = new_name("down")
    proxy.stop()  # connections refused from now on
    try:
        started = time.monotonic()
        resp = proxied.create({"name": name})
        elapsed = time.monotonic() - started
        assert resp.status_code == 503, resp.text[:500]
        assert re.fullmatch(r"[1-9][0-9]*", resp.headers.get("Retry-After", "")), resp.headers
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert resp.json().get("detail"), resp.text
        assert elapsed < 3, f"a 503 for an unreachable broker took {elapsed:.1f} s"
        assert proxied.list().status_code == 503
        base = proxied.proc.url
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 503
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        assert env_trace(mgmt, vhost_of("team-a", name)) == []
    finally:
        proxy.start()  # the same port: the broker is back

    def created():
        r = proxied.create({"name": name})
        assert r.status_code in (201, 503), r.text[:500]
        return r.status_code == 201
    wait_for(created, timeout=15, interval=0.3, what="warren recovers once the broker is back")
    assert requests.get(f"{proxied.proc.url}/readyz", timeout=10).status_code == 200
    assert proxied.delete(name).status_code == 204
    assert env_trace(mgmt, vhost_of("team-a", name)) == []


def test_reconcile_restores_missing_parts(api_a, mgmt, new_name):
    name = new_name("reconcile")
    env = api_a.create_ok({"name": name, "queue": {"type": "classic"}, "routing_key": "rk"})
    vhost = env["vhost"]
    path = f"/v1/environments/{name}/reconcile"

    mgmt.delete_binding(vhost, name, name)
    mgmt.delete_queue(vhost, name)
    mgmt.delete(f"exchanges/{seg(vhost)}/{seg(name)}", missing_ok=False)
    got = api_a.get_ok(name)
    assert got["status"] == "degraded", got

    resp = api_a.request("POST", path)
    assert resp.status_code == 200, resp.text[:500]
    body = resp.json()
    assert body["status"] == "ready" and body["id"] == name, body
    assert "credentials" not in body, "a user was left: no new credentials"
    assert body["users"] == [env["credentials"]["username"]]
    assert invariant_violations(mgmt, prefix=vhost) == []
    conn = pika.BlockingConnection(amqp_params_from_uri(env["connection"]["uri"]))
    try:  # the old password still works, on the restored topology
        assert publish_and_get(conn, name, "rk", name, b"restored") == b"restored"
    finally:
        conn.close()

    mgmt.delete(f"users/{seg(env['credentials']['username'])}", missing_ok=False)
    resp = api_a.request("POST", path)
    assert resp.status_code == 200, resp.text[:500]
    fresh = resp.json()
    assert fresh["status"] == "ready" and fresh.get("credentials"), fresh
    assert fresh["credentials"]["username"] != env["credentials"]["username"]
    assert amqp_login(fresh["connection"]["uri"]) is None
    assert invariant_violations(mgmt, prefix=vhost) == []

    assert api_a.request("POST", f"/v1/environments/{new_name('absent')}/reconcile").status_code == 404
    assert api_a.delete(name).status_code == 204


@pytest.mark.parametrize("mode", MODES)
def test_a_crew_whose_topic_permission_fails_leaves_nothing(mode, proxy, proxied, mgmt, new_name, spec, tally):
    """An agent's routing keys are one more call of a create (the topic permission, before its
    permissions): failed, the create is undone like any other, and no agent is left able to
    publish every key."""
    name = new_name(f"crew{mode[:2]}")
    body = {"name": name, "exchange": {"type": "topic"},
            "agents": [{"name": "planner", "publish": ["plans.*"], "consume": [name]}]}
    kind = "PUT /api/topic-permissions/{vhost}/{user}"
    proxy.arm(1, mode, lambda m, p: template(m, p, name) == kind)
    resp = proxied.create(body, check_spec=False)
    fired = proxy.disarm()
    assert fired is not None and template(*fired, name) == kind, fired
    tally.cases += 1
    tally.kinds.setdefault("create", set()).add(kind)
    assert not failure_problems(resp, mode, spec), resp.text
    trace = env_trace(mgmt, vhost_of("team-a", name))
    assert not trace, f"left on the broker: {trace}"

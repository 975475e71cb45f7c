"""A janitor whose wall clock is 10 minutes ahead never removes a create that is still running on
another instance; and a grace shorter than the longest create is refused at start-up.

Warren B runs under libfaketime (`FAKETIME=+10m`): to B, the `created_at` of every record warren
A writes is 10 minutes old. B sweeps every second with a grace that is valid for both
instances' settings (15 s > create deadline 10 s + one 2 s management timeout). A's management
calls go through a proxy that delays each by DELAY seconds, so A's creates take several seconds
and B sweeps several times while they are `creating`. A janitor that aged a `creating` record
by its `created_at` (or by any wall clock) would take them for abandoned and remove them in the
middle; Warren measures the age on the janitor's own monotonic clock from first sighting, so
every create A answered 201 for must be complete and working afterwards.

The second test starts warren with a grace shorter than create deadline + management timeout(s)
and expects exit status 2 with a message naming WARREN_SWEEP_GRACE_SECONDS (else a janitor could
tear down a create that is merely slow).
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import pytest

import faultproxy
from faultproxy import FaultProxy
from warren_support import (Api, amqp_login, invariant_violations, run_concurrently, start_refused, vhost_of,
                            wait_for)

DELAY = 0.25  # seconds added to every management call of warren A
CREATES = 6
SETTINGS = {"WARREN_CREATE_DEADLINE_SECONDS": "10", "WARREN_MANAGEMENT_TIMEOUT_MS": "2000",
            "WARREN_SWEEP_GRACE_SECONDS": "15"}


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") +
                   glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    assert found, ("libfaketime is not installed (Debian package 'faketime'; scripts/deps.sh "
                   "installs it)")
    return found[0]


@pytest.fixture
def slow_proxy(settings, monkeypatch):
    """A proxy to the management API that delays every call it forwards by DELAY seconds."""
    forward = faultproxy._forward

    def slow(*args, **kw):
        time.sleep(DELAY)
        return forward(*args, **kw)

    monkeypatch.setattr(faultproxy, "_forward", slow)
    proxy = FaultProxy(settings.management_url).start()
    yield proxy
    proxy.stop()


def test_janitor_ten_minutes_ahead_never_removes_a_create_in_progress(
        slow_proxy, warren_factory, tokens, new_name, mgmt, report):
    a = warren_factory("clock-a", WARREN_MANAGEMENT_URL=slow_proxy.url,
                       WARREN_SWEEP_INTERVAL_SECONDS="3600", **SETTINGS)
    b = warren_factory("clock-b", WARREN_SWEEP_INTERVAL_SECONDS="1",
                       LD_PRELOAD=libfaketime(), FAKETIME="+10m", FAKETIME_NO_CACHE="1",
                       # Wall-clock skew is what differs between machines; the monotonic clock
                       # stays real (faked, it stalls every timed wait of Swift's runtime, so B
                       # would sweep once and never again).
                       DONT_FAKE_MONOTONIC="1", WARREN_LOG_LEVEL="debug", **SETTINGS)
    api_a, api_b = Api(a.url, tokens["team-a"]), Api(b.url, tokens["team-a"])

    # Control: B really lives 10 minutes ahead (its own record's created_at says so).
    probe = new_name("clock-probe")
    created = api_b.create_ok({"name": probe})["created_at"]
    skew = time.mktime(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())
    assert 540 <= skew <= 660, f"warren B is not 10 minutes ahead: created_at {created} (skew {skew:.0f} s)"
    gone = api_b.request("DELETE", f"/v1/environments/{probe}?force=true")
    assert gone.status_code == 204, gone.text[:500]

    base = new_name("clock")
    names = [f"{base}-{i}" for i in range(CREATES)]
    new_name.names.extend(names)
    started = time.monotonic()
    results = run_concurrently([lambda n=n: api_a.create({"name": n}, timeout=60) for n in names],
                               timeout=90)
    took = time.monotonic() - started
    answers = [r if isinstance(r, Exception) else (r.status_code, r.text[:200]) for r in results]
    ok = [(n, r.json()) for n, r in zip(names, results) if not isinstance(r, Exception) and r.status_code == 201]
    report("janitor-clock", f"{CREATES} creates through a {DELAY:.2f} s/call proxy took {took:.1f} s "
                            f"with a janitor 10 min ahead sweeping every second: "
                            f"{[a if isinstance(a, Exception) else a[0] for a in answers]}")
    assert took > 3, f"the creates took {took:.1f} s: too fast for B to sweep while they ran"
    assert ok, f"no create of A succeeded: {answers}"
    # Give B a few more sweeps, then check that it really swept all along (each sweep lists
    # the users first; its debug log shows every management call).
    time.sleep(3)
    sweeps = sum('"path":"/api/users' in line for line in Path(b.log_path).read_text(errors="replace").splitlines())
    assert sweeps >= took + 2, f"warren B swept {sweeps} times in {took + 3:.0f} s: its janitor stalled"
    bad = []
    for name, body in ok:
        vhost = vhost_of("team-a", name)
        problems = invariant_violations(mgmt, prefix=vhost)
        got = api_a.get(name)
        if got.status_code != 200 or got.json().get("status") != "ready":
            problems.append(f"GET {got.status_code}: {got.text[:300]}")
        why = amqp_login(body["connection"]["uri"])
        if why:
            problems.append(f"credentials do not work: {why}")
        if problems:
            bad.append(f"{name}: {problems}")
    assert not bad, (f"creates A answered 201 for were hurt by B's janitor:\n" + "\n".join(bad) +
                     f"\nanswers: {answers}\nB's log: {b.log_path}")
    for name, _ in ok:
        assert api_a.request("DELETE", f"/v1/environments/{name}?force=true").status_code == 204
    assert b.running and a.running


@pytest.mark.parametrize("env, longest_ms", [
    ({"WARREN_SWEEP_GRACE_SECONDS": "5", "WARREN_CREATE_DEADLINE_SECONDS": "10",
      "WARREN_MANAGEMENT_TIMEOUT_MS": "1000"}, 11000),
    ({"WARREN_SWEEP_GRACE_SECONDS": "3"}, 70000),  # the defaults: 60 s + 10 s
    ({"WARREN_SWEEP_GRACE_SECONDS": "4", "WARREN_CREATE_DEADLINE_SECONDS": "3",
      "WARREN_MANAGEMENT_TIMEOUT_MS": "1000", "WARREN_MANAGEMENT_URL": "{url},{url}"}, 5000),
])
def test_grace_shorter_than_the_longest_create_stops_start_up(env, longest_ms, settings, warren_env,
                                                               tmp_path):
    env = dict(warren_env, **{k: v.replace("{url}", settings.management_url) for k, v in env.items()})
    output = start_refused(settings.warren_bin, env, tmp_path / "warren-grace.log")
    assert "WARREN_SWEEP_GRACE_SECONDS" in output and f"{longest_ms} ms" in output, output[-2000:]


def test_a_grace_just_longer_than_the_longest_create_starts(warren_factory, settings):
    """The control for the refusals above: 6 s > 3 s + 2 x 1 s with two management URLs."""
    proc = warren_factory("grace-ok", WARREN_SWEEP_GRACE_SECONDS="6", WARREN_CREATE_DEADLINE_SECONDS="3",
                          WARREN_MANAGEMENT_TIMEOUT_MS="1000",
                          WARREN_MANAGEMENT_URL=f"{settings.management_url},{settings.management_url}")
    assert proc.running

"""GET /healthz and GET /readyz, and what Warren answers when the broker is out of reach."""

import secrets
import time

import pytest

from warren_support import assert_problem, free_port, seg


def test_healthz(anon):
    resp = anon.request("GET", "/healthz")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].split(";")[0] == "application/json"
    assert resp.json() == {"status": "ok"}


def test_readyz_reports_broker_version(anon, mgmt):
    resp = anon.request("GET", "/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ready",
                           "broker": {"rabbitmq_version": mgmt.overview()["rabbitmq_version"]}}


def test_probes_need_no_token_but_ignore_a_bad_one(anon):
    for path in ("/healthz", "/readyz"):
        resp = anon.request("GET", path, token="not-a-token")
        assert resp.status_code == 200, f"{path} with a bad token: {resp.status_code} {resp.text}"


def _retry_after_ok(value: str | None) -> bool:
    return value is not None and value.strip().isdigit()


@pytest.fixture
def monitoring_user(mgmt):
    """A broker user WITHOUT the administrator tag (monitoring only)."""
    name = f"warren-it-monitor-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    mgmt.put_json(f"users/{seg(name)}", {"password": password, "tags": "monitoring"})
    yield name, password
    mgmt.delete(f"users/{seg(name)}")


@pytest.mark.parametrize("fault", ["dead-management-port", "wrong-password", "not-administrator"])
def test_readyz_503_when_broker_unusable(fault, warren_factory, client, monitoring_user,
                                         broker_unchanged):
    if fault == "dead-management-port":
        overrides = {"WARREN_MANAGEMENT_URL": f"http://127.0.0.1:{free_port()}"}
    elif fault == "wrong-password":
        overrides = {"WARREN_MANAGEMENT_PASSWORD": "definitely-not-guest"}
    else:
        user, password = monitoring_user
        overrides = {"WARREN_MANAGEMENT_USER": user, "WARREN_MANAGEMENT_PASSWORD": password}
    proc = warren_factory(fault, **overrides)
    anon = client("anonymous", proc)

    started = time.monotonic()
    ready = anon.request("GET", "/readyz")
    assert time.monotonic() - started < 10, "readyz must answer promptly when the broker is unusable"
    assert_problem(ready, 503, "broker-unavailable")
    assert _retry_after_ok(ready.headers.get("Retry-After")), ready.headers

    health = anon.request("GET", "/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}

    if fault == "dead-management-port":
        # The API itself reports the broker as unavailable, promptly and with Retry-After.
        team_a = client("team-a", proc)
        for resp in (team_a.list(), team_a.create({"name": "never-created"}),
                     team_a.get("never-created")):
            assert_problem(resp, 503, "broker-unavailable")
            assert _retry_after_ok(resp.headers.get("Retry-After")), resp.headers
    broker_unchanged(f"a warren with {fault}")

"""GET /healthz and GET /readyz, and what Warren answers when the broker is out of reach."""

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests

from warren_support import Api, assert_problem, free_port, parse_env_file, seg, wait_for

BROKER_SH = Path(__file__).resolve().parent.parent.parent / "scripts" / "broker.sh"


def test_healthz(anon):
    resp = anon.request("GET", "/healthz")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].split(";")[0] == "application/json"
    assert resp.json() == {"status": "ok"}


def test_readyz_reports_broker_version(anon, mgmt):
    resp = anon.request("GET", "/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ready", "alarms": [],
                           "broker": {"rabbitmq_version": mgmt.overview()["rabbitmq_version"]}}


@pytest.fixture
def broker_in_disk_alarm(tmp_path):
    """A node of its own whose disk limit is above any free space: in a disk alarm from the start."""
    directory = tmp_path / "alarmed-broker"
    env = dict(os.environ, BROKER_DISK_LIMIT=str(10**18))
    for var in ("BROKER_MEMORY_WATERMARK", "BROKER_MGMT_TLS_DIR", "BROKER_MGMT_TLS_PORT"):
        env.pop(var, None)
    done = subprocess.run([str(BROKER_SH), "start", str(directory)], env=env, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        pytest.fail(f"scripts/broker.sh start failed ({done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
    try:
        yield parse_env_file(directory / "broker.env")
    finally:
        subprocess.run([str(BROKER_SH), "stop", str(directory)], capture_output=True, timeout=60)


def test_an_alarm_is_named_and_warren_stays_ready_to_tear_down(broker_in_disk_alarm, warren_factory, tokens):
    """While a node is in an alarm the broker blocks every publisher, and teams need Warren most:
    a DELETE is how a team frees the node. So /readyz names the alarm and stays 200 (a probe
    that answered 503 would take every Warren out of service then), and Warren administers."""
    env = broker_in_disk_alarm
    proc = warren_factory("alarm", WARREN_MANAGEMENT_URL=env["WARREN_MANAGEMENT_URL"],
                          WARREN_AMQP_PORT=env["BROKER_AMQP_PORT"])

    def alarmed():
        resp = requests.get(f"{proc.url}/readyz", timeout=30)
        assert resp.status_code == 200, resp.text
        return [a for a in resp.json()["alarms"] if a.startswith("disk alarm on node ")]

    wait_for(alarmed, timeout=60, interval=0.5, what="/readyz names the node's disk alarm")
    api = Api(proc.url, tokens["team-a"])
    name = f"alarm-{secrets.token_hex(3)}"
    made = api.create({"name": name, "queue": {"type": "classic"}})
    assert made.status_code == 201, made.text
    gone = api.request("DELETE", f"/v1/environments/{name}?force=true")
    assert gone.status_code == 204, gone.text


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

"""GET /metrics, the structured request log with X-Request-ID, the per-team quota, and
POST /v1/environments/{id}/reconcile, against a real warren and the real broker."""

import json
import re
import secrets
import time

import pika
import pytest
import requests

from warren_support import Api, assert_problem, metric, sha256_hex, vhost_of


def scrape(proc) -> str:
    resp = requests.get(f"{proc.url}/metrics", timeout=5)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    return resp.text


def log_lines(proc) -> list[dict]:
    lines = []
    for raw in proc.log_path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            pass
    return lines


def test_metrics_count_requests_provisioning_steps_and_broker_errors(warren, api_a, new_name, warren_factory, tokens, spec):
    name = new_name("metrics")
    before = scrape(warren)
    created_before = metric(before, "warren_provisioning_duration_seconds_count", operation="create", outcome="ok") or 0
    api_a.create_ok({"name": name})
    assert api_a.delete(name).status_code == 204

    text = scrape(warren)
    assert metric(text, "warren_http_request_duration_seconds_count",
                  method="POST", route="/v1/environments", status="201") >= 1
    assert metric(text, "warren_http_request_duration_seconds_bucket",
                  method="DELETE", route="/v1/environments/{id}", status="204", le="+Inf") >= 1
    assert metric(text, "warren_provisioning_duration_seconds_count", operation="create", outcome="ok") == created_before + 1
    assert metric(text, "warren_provisioning_duration_seconds_count", operation="delete", outcome="ok") >= 1
    assert metric(text, "warren_http_open_connections") >= 1  # the scrape's own connection at least
    for step in ("create vhost", "claim name", "declare queue", "bind queue", "delete vhost"):
        assert metric(text, "warren_broker_call_duration_seconds_count", step=step) >= 1, step

    # A warren whose broker is unreachable counts the failures by kind.
    dead = warren_factory("dead-broker", WARREN_MANAGEMENT_URL="http://127.0.0.1:9")
    resp = Api(dead.url, tokens["team-a"], spec).create({"name": new_name("never")})
    assert_problem(resp, 503, "broker-unavailable")
    # A create's first call asks for the broker's release (once per process).
    assert metric(scrape(dead), "warren_broker_errors_total", kind="unreachable", step="read overview") == 1


def test_each_request_logs_one_json_line_and_the_request_id_reaches_broker_calls(warren_factory, tokens, spec, new_name):
    proc = warren_factory("logs", WARREN_LOG_LEVEL="debug")
    api = Api(proc.url, tokens["team-a"], spec)
    name = new_name("logs")
    resp = api.request("POST", "/v1/environments", json_body={"name": name}, headers={"X-Request-ID": "trace-7f3a"})
    assert resp.status_code == 201
    assert resp.headers["X-Request-ID"] == "trace-7f3a"
    generated = api.get(name).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    api.delete(name)

    lines = log_lines(proc)
    requests_logged = [l for l in lines if l.get("msg") == "request" and l.get("request_id") == "trace-7f3a"]
    assert len(requests_logged) == 1, requests_logged
    line = requests_logged[0]
    assert line["team"] == "team-a" and line["method"] == "POST" and line["route"] == "/v1/environments"
    assert line["status"] == "201" and float(line["duration_ms"]) > 0
    broker_calls = [l for l in lines if l.get("msg") == "management call" and l.get("request_id") == "trace-7f3a"]
    assert any(l.get("method") == "PUT" and "/api/vhosts/" in l.get("path", "") for l in broker_calls), broker_calls
    assert any(l.get("request_id") == generated for l in lines)


def test_request_lines_are_written_in_order_and_none_is_lost_at_shutdown(warren_factory, tokens):
    """Log lines are written by a thread of their own, in batches: a lone line still shows up
    promptly, a burst of requests (answered on the event-loop thread) keeps its order, and
    SIGTERM right after the burst loses nothing, down to the last line before exit."""
    proc = warren_factory("log-order")
    session = requests.Session()
    resp = session.get(f"{proc.url}/healthz", headers={"X-Request-ID": "lone-line"}, timeout=5)
    assert resp.status_code == 200
    deadline = time.monotonic() + 2
    while not any(l.get("request_id") == "lone-line" for l in log_lines(proc)):
        assert time.monotonic() < deadline, "a lone request's line was not written within 2 s"
        time.sleep(0.01)

    sent = []
    auth = {"Authorization": f"Bearer {tokens['team-a']}"}
    for i in range(300):
        path, headers, status = [("/healthz", {}, 200), ("/v1/blueprints", auth, 200),
                                 ("/v1/blueprints", {}, 401), ("/no-such-path", {}, 404)][i % 4]
        request_id = f"burst-{i}"
        resp = session.get(f"{proc.url}{path}", headers={**headers, "X-Request-ID": request_id}, timeout=5)
        assert resp.status_code == status, (path, resp.text)
        sent.append((request_id, str(status)))
    session.close()
    proc.stop_cleanly()

    lines = log_lines(proc)
    logged = [(l["request_id"], l["status"]) for l in lines
              if l.get("msg") == "request" and l.get("request_id", "").startswith("burst-")]
    assert logged == sent
    assert lines[-1].get("msg") == "stopped", lines[-3:]


def test_a_team_over_its_quota_gets_403_and_nothing_changes(warren_factory, tokens, spec, new_name, mgmt, workdir):
    # A team of its own, so environments other tests leave or make meanwhile do not count.
    team, token = f"quota-{secrets.token_hex(3)}", secrets.token_urlsafe(24)
    tokens_file = workdir / f"{team}.tokens"
    tokens_file.write_text(f"{team} {sha256_hex(token)}\nteam-b {sha256_hex(tokens['team-b'])}\n")
    proc = warren_factory("quota", WARREN_MAX_ENVIRONMENTS_PER_TEAM="2", WARREN_TOKENS_FILE=str(tokens_file))
    api = Api(proc.url, token, spec)
    other = Api(proc.url, tokens["team-b"], spec)
    first, second, third = new_name("q1"), new_name("q2"), new_name("q3")
    api.create_ok({"name": first})
    api.create_ok({"name": second})
    snapshot = mgmt.snapshot()
    body = assert_problem(api.create({"name": third}), 403, "quota-exceeded")
    assert "limit is 2" in body["detail"]
    assert mgmt.snapshot() == snapshot
    api.create_ok({"name": second}, expect=200)  # a repeat of an existing one is not a new one
    other.create_ok({"name": third})  # quotas are per team
    assert api.delete(first).status_code == 204
    api.create_ok({"name": third})
    for name in (second, third):
        assert api.delete(name).status_code == 204


def login(env: dict, credentials: dict) -> None:
    params = pika.ConnectionParameters(
        host=env["connection"]["host"], port=env["connection"]["port"], virtual_host=env["vhost"],
        credentials=pika.PlainCredentials(credentials["username"], credentials["password"]),
        connection_attempts=1, socket_timeout=5)
    pika.BlockingConnection(params).close()


def test_reconcile_restores_drift_and_keeps_existing_credentials(api_a, new_name, mgmt):
    name = new_name("drift")
    env = api_a.create_ok({"name": name})
    vhost = vhost_of("team-a", name)
    mgmt.delete_binding(vhost, name, name)
    mgmt.delete_queue(vhost, name)
    degraded = api_a.get_ok(name)
    assert degraded["status"] == "degraded" and set(degraded["missing"]) == {"queue", "binding"}

    resp = api_a.request("POST", f"/v1/environments/{name}/reconcile")
    assert resp.status_code == 200, resp.text
    repaired = resp.json()
    assert repaired["status"] == "ready" and repaired["missing"] == []
    assert "credentials" not in repaired
    assert repaired["users"] == [env["credentials"]["username"]]
    assert mgmt.queue(vhost, name)["durable"] is True
    login(env, env["credentials"])  # the password was not touched

    # With every user gone, reconcile makes one and hands out its credentials once.
    mgmt.delete(f"users/{env['credentials']['username']}", missing_ok=False)
    assert api_a.get_ok(name)["missing"] == ["user"]
    again = api_a.request("POST", f"/v1/environments/{name}/reconcile").json()
    assert again["status"] == "ready"
    assert again["credentials"]["username"] != env["credentials"]["username"]
    login(env, again["credentials"])
    assert "credentials" not in api_a.get_ok(name)


def test_reconcile_of_an_unknown_or_foreign_environment_is_404(api_a, api_b, new_name):
    name = new_name("foreign")
    api_a.create_ok({"name": name})
    assert_problem(api_b.request("POST", f"/v1/environments/{name}/reconcile"), 404, "not-found")
    assert_problem(api_a.request("POST", f"/v1/environments/{new_name('nope')}/reconcile"), 404, "not-found")

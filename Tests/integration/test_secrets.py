"""Secrets stay out of logs and responses.

Every password an API response issues, every bearer token and the management password are
recorded (warren_support.record_secret) and the whole run's warren logs are checked at the end
of the session (conftest.no_secrets_in_logs). The tests here drive a warren at log level
`trace` with a management user of its own, through success and failure paths, and check its
log right away, so a leak is pinned on the path that caused it.
"""

from __future__ import annotations

import base64
import json
import secrets

import pytest

from warren_support import (Api, assert_problem, leaked_secrets, record_secret, seg, vhost_of)


@pytest.fixture
def admin_user(mgmt):
    """A management user of its own (administrator), with a long random password."""
    name = f"warren-it-admin-{secrets.token_hex(3)}"
    password = "mgmt-" + secrets.token_urlsafe(24)
    record_secret(password, f"management password of {name}")
    record_secret(base64.b64encode(f"{name}:{password}".encode()).decode(), "management Basic credential")
    mgmt.put_json(f"users/{seg(name)}", {"password": password, "tags": "administrator"})
    yield name, password
    mgmt.delete(f"users/{seg(name)}")


def no_leak(proc) -> None:
    leaks = leaked_secrets([proc.log_path])
    assert not leaks, "secrets in the log:\n  " + "\n  ".join(leaks)


def test_trace_log_holds_no_secret(warren_factory, admin_user, tokens, spec, new_name, workdir):
    user, password = admin_user
    password_file = workdir / f"mgmt-password-{secrets.token_hex(2)}"
    password_file.write_text(password + "\n")
    proc = warren_factory("secrets", WARREN_LOG_LEVEL="trace", WARREN_MANAGEMENT_USER=user,
                          WARREN_MANAGEMENT_PASSWORD_FILE=str(password_file))
    api = Api(proc.url, tokens["team-a"], spec)
    anon = Api(proc.url, None, spec)
    name = new_name("secrets")

    assert anon.request("GET", "/readyz").status_code == 200
    created = api.create_ok({"name": name})
    again = api.create_ok({"name": name}, expect=200)
    assert created["credentials"]["password"] != again["credentials"]["password"]
    assert api.get(name).status_code == 200
    assert api.list().status_code == 200
    assert api.request("POST", f"/v1/environments/{name}/reconcile").status_code == 200
    rotated = api.request("POST", f"/v1/environments/{name}/credentials", json_body={})
    assert rotated.status_code == 201, rotated.text
    conflict = api.create({"name": name, "queue": {"type": "classic"}})
    assert conflict.status_code == 409
    # Tokens that are not valid are secrets of someone too (a typo of a real one).
    canary = "canary-" + secrets.token_urlsafe(24)
    record_secret(canary, "a bearer token that failed")
    assert_problem(api.list(token=canary), 401, "unauthorized")
    assert_problem(api.request("GET", "/v1/environments", headers={"Authorization": f"Basic {canary}"},
                               token=None), 401, "unauthorized")
    assert api.delete(name).status_code == 204
    assert api.get(name).status_code == 404
    proc.stop_cleanly()
    text = proc.log_path.read_text()
    assert '"level":"trace"' in text or '"level":"debug"' in text, "the log is not at trace level"
    assert "password_hash" not in text, "a password hash is logged"
    no_leak(proc)
    # The responses themselves: the password appears once per issue, nowhere else.
    for resp in (created, again):
        assert password not in json.dumps(resp)


def test_broker_refusal_logs_and_answers_no_password(warren_factory, admin_user, tokens, spec, new_name):
    """The broker refuses warren's credentials: readyz and the API answer 503 without the
    password, and the log explains the refusal without it."""
    user, _ = admin_user
    wrong = "wrong-" + secrets.token_urlsafe(24)
    record_secret(wrong, "a wrong management password")
    record_secret(base64.b64encode(f"{user}:{wrong}".encode()).decode(), "a wrong Basic credential")
    proc = warren_factory("secrets-refused", WARREN_LOG_LEVEL="trace", WARREN_MANAGEMENT_USER=user,
                          WARREN_MANAGEMENT_PASSWORD=wrong)
    api = Api(proc.url, tokens["team-a"], spec)
    ready = Api(proc.url, None, spec).request("GET", "/readyz")
    assert ready.status_code == 503
    created = api.create({"name": new_name("refused")})
    assert created.status_code in (502, 503), created.text
    for resp in (ready, created):
        assert wrong not in resp.text, resp.text
    proc.stop_cleanly()
    no_leak(proc)


def test_every_issued_password_is_recorded(api_a, new_name):
    """The session check only sees what was recorded: make sure create answers are."""
    from warren_support import SECRETS
    env = api_a.create_ok({"name": new_name("recorded")})
    assert env["credentials"]["password"] in SECRETS
    assert vhost_of("team-a", env["name"]) == env["vhost"]

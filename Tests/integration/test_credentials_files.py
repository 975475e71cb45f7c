"""An operator's mistake in the tokens or platforms file never takes credentials away from
those who have them, nor gives one caller's to another.

Start-up refuses (exit 2, one line naming the variable) a file that gives no team or platform
(unless WARREN_ALLOW_NO_TEAMS=1 for the tokens file) and a digest given on two lines, naming both
lines. On SIGHUP the same files are refused with an error line and the old table stays in force;
a good file is taken. A request with two Authorization headers is answered 400 on /v1 and /v2,
sent over a raw socket because `requests` merges headers of the same name.
"""

from __future__ import annotations

import base64
import secrets
import signal
import socket
import time

import pytest

from warren_support import (OSBClient, _read_response, log_lines, record_secret, sha256_hex, start_refused,
                            wait_for)

TOKEN_RELOAD = ("tokens reloaded", "tokens file not reloaded; the old tokens stay in force")
PLATFORM_RELOAD = ("platforms reloaded", "platforms file not reloaded; the old platforms stay in force")
# What a config tool leaves behind between truncating a file and writing it, or a careless edit.
NOTHING_GIVEN = {"empty": "", "comments-only": "# rewritten by the config tool\n\n# nothing yet\n",
                 "bom-and-blank-lines": "\ufeff\r\n  \t\r\n"}


def new_token(what: str) -> str:
    token = secrets.token_urlsafe(32)
    record_secret(token, what)
    return token


def hang_up(proc, messages: tuple[str, str]) -> dict:
    """SIGHUP, then the log line that says how the reload went (one of `messages`)."""

    def outcomes() -> list[dict]:
        return [line for line in log_lines(proc.log_path) if line.get("msg") in messages]

    before = len(outcomes())
    proc.proc.send_signal(signal.SIGHUP)
    return wait_for(lambda: outcomes()[before:], 10, what=f"a log line {messages} after SIGHUP")[0]


def status_of(proc, token: str) -> int:
    return raw(proc.port, "GET", "/v1/environments", [f"Bearer {token}"]).status


def raw(port: int, method: str, path: str, authorizations: list[str], extra: str = ""):
    """One request with these Authorization header fields, over a socket of its own."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}"
    head += "".join(f"Authorization: {value}\r\n" for value in authorizations)
    head += "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        resp = _read_response(sock, bytearray(), time.monotonic() + 10)
    assert resp is not None, f"no response to {head!r}"
    return resp


# --------------------------------------------------------------------------------------------
# The tokens file at start-up


@pytest.mark.parametrize("text", NOTHING_GIVEN.values(), ids=NOTHING_GIVEN.keys())
def test_start_up_refuses_a_tokens_file_that_gives_no_team(settings, warren_env, tmp_path, text):
    path = tmp_path / "tokens"
    path.write_text(text)
    output = start_refused(settings.warren_bin, dict(warren_env, WARREN_TOKENS_FILE=str(path)), tmp_path / "warren-empty.log")
    assert f"WARREN_TOKENS_FILE: {path}: gives no team" in output, output
    assert "WARREN_ALLOW_NO_TEAMS=1" in output, output


def test_allow_no_teams_starts_and_refuses_every_token(warren_factory, tmp_path, tokens):
    path = tmp_path / "tokens"
    path.write_text("# no team on purpose\n")
    proc = warren_factory("no-teams", WARREN_TOKENS_FILE=str(path), WARREN_ALLOW_NO_TEAMS="1")
    listening = [line for line in log_lines(proc.log_path) if line.get("msg") == "listening"]
    assert listening and listening[0].get("teams") == "0", listening
    assert status_of(proc, tokens["team-a"]) == 401


@pytest.mark.parametrize("value", ["yes", "true", ""])
def test_allow_no_teams_takes_only_0_or_1(settings, warren_env, tmp_path, value):
    output = start_refused(settings.warren_bin, dict(warren_env, WARREN_ALLOW_NO_TEAMS=value), tmp_path / "warren-allow.log")
    assert "WARREN_ALLOW_NO_TEAMS" in output, output


def test_start_up_refuses_a_digest_on_two_lines_naming_both(settings, warren_env, tmp_path, tokens):
    path = tmp_path / "tokens"
    a, b = sha256_hex(tokens["team-a"]), sha256_hex(tokens["team-b"])
    # Line 5 gives team-a's digest again, to another team: team-a's token would act as it.
    path.write_text(f"# tokens\nteam-a {a}\n\nteam-b {b}\nteam-c {a.upper()}\n")
    output = start_refused(settings.warren_bin, dict(warren_env, WARREN_TOKENS_FILE=str(path)), tmp_path / "warren-dup.log")
    assert f"WARREN_TOKENS_FILE: {path}:5: this digest is already given on line 2" in output, output
    assert a not in output and a.upper() not in output, "the refusal must not repeat the digest"


# --------------------------------------------------------------------------------------------
# The tokens file on SIGHUP


@pytest.fixture
def reloading_warren(warren_factory, tmp_path, tokens):
    """A warren with a tokens file of its own (team-a and team-b), and that file."""
    path = tmp_path / "tokens"
    path.write_text("".join(f"{team} {sha256_hex(token)}\n" for team, token in tokens.items()))
    return warren_factory("reload", WARREN_TOKENS_FILE=str(path)), path


def assert_every_team_served(proc, tokens, after: str) -> None:
    for team, token in tokens.items():
        assert status_of(proc, token) == 200, f"{team} refused after {after}"


@pytest.mark.parametrize("text", NOTHING_GIVEN.values(), ids=NOTHING_GIVEN.keys())
def test_reload_to_a_file_without_teams_keeps_every_team(reloading_warren, tokens, text):
    proc, path = reloading_warren
    assert_every_team_served(proc, tokens, "start-up")
    path.write_text(text)
    outcome = hang_up(proc, TOKEN_RELOAD)
    assert outcome["level"] == "error" and outcome["msg"] == TOKEN_RELOAD[1], outcome
    assert "gives no team" in outcome.get("error", ""), outcome
    assert_every_team_served(proc, tokens, f"a SIGHUP with {text!r}")


def test_reload_with_a_digest_on_two_lines_keeps_the_old_table(reloading_warren, tokens):
    proc, path = reloading_warren
    a = sha256_hex(tokens["team-a"])
    # Were it taken, team-b's token would be refused and team-a's would be team-a's or team-c's.
    path.write_text(f"team-a {a}\nteam-c {a}\n")
    outcome = hang_up(proc, TOKEN_RELOAD)
    assert outcome["level"] == "error" and outcome["msg"] == TOKEN_RELOAD[1], outcome
    assert f"{path}:2: this digest is already given on line 1" in outcome.get("error", ""), outcome
    assert_every_team_served(proc, tokens, "a SIGHUP with a duplicate digest")


def test_a_good_reload_takes_effect_after_a_refused_one(reloading_warren, tokens):
    proc, path = reloading_warren
    path.write_text("")
    assert hang_up(proc, TOKEN_RELOAD)["msg"] == TOKEN_RELOAD[1]
    token_c = new_token("bearer token of team-c")
    assert status_of(proc, token_c) == 401
    path.write_text(f"team-a {sha256_hex(tokens['team-a'])}\nteam-c {sha256_hex(token_c)}\n")
    outcome = hang_up(proc, TOKEN_RELOAD)
    assert outcome["level"] == "info" and outcome["msg"] == TOKEN_RELOAD[0] and outcome.get("teams") == "2", outcome
    assert status_of(proc, token_c) == 200, "the new team's token is refused"
    assert status_of(proc, tokens["team-a"]) == 200
    assert status_of(proc, tokens["team-b"]) == 401, "the removed team's token still works"


# --------------------------------------------------------------------------------------------
# The platforms file (/v2)


@pytest.fixture
def platform_credentials() -> dict[str, tuple[str, str]]:
    issued = {name: (f"{name}-user", new_token(f"basic password of platform {name}"))
              for name in ("cf-one", "cf-two", "cf-new")}
    return issued


def platform_line(name: str, team: str, credentials: tuple[str, str]) -> str:
    user, password = credentials
    return f"{name} {team} {sha256_hex(f'{user}:{password}')}\n"


def catalog_status(proc, credentials: tuple[str, str]) -> int:
    return OSBClient(proc.url, *credentials).request("GET", "/v2/catalog", check_spec=False).status_code


@pytest.mark.parametrize("text", NOTHING_GIVEN.values(), ids=NOTHING_GIVEN.keys())
def test_start_up_refuses_a_platforms_file_that_gives_no_platform(settings, warren_env, osb_env, tmp_path, text):
    path = tmp_path / "platforms"
    path.write_text(text)
    env = {**warren_env, **osb_env, "WARREN_OSB_PLATFORMS_FILE": str(path)}
    output = start_refused(settings.warren_bin, env, tmp_path / "warren-no-platform.log")
    assert f"WARREN_OSB_PLATFORMS_FILE: {path}: gives no platform" in output, output


def test_start_up_refuses_a_platform_digest_on_two_lines_naming_both(settings, warren_env, osb_env, tmp_path,
                                                                    platform_credentials):
    path = tmp_path / "platforms"
    one = platform_credentials["cf-one"]
    path.write_text("# platforms\n" + platform_line("cf-one", "team-a", one) + platform_line("cf-two", "team-b", one))
    env = {**warren_env, **osb_env, "WARREN_OSB_PLATFORMS_FILE": str(path)}
    output = start_refused(settings.warren_bin, env, tmp_path / "warren-dup-platform.log")
    assert f"WARREN_OSB_PLATFORMS_FILE: {path}:3: this digest is already given on line 2" in output, output


def test_platforms_reload_keeps_the_old_table_on_a_bad_file_and_takes_a_good_one(
        warren_factory, osb_env, tmp_path, platform_credentials):
    path = tmp_path / "platforms"
    creds = platform_credentials
    path.write_text(platform_line("cf-one", "team-a", creds["cf-one"]) + platform_line("cf-two", "team-b", creds["cf-two"]))
    proc = warren_factory("osb-reload", **dict(osb_env, WARREN_OSB_PLATFORMS_FILE=str(path)))
    assert catalog_status(proc, creds["cf-one"]) == 200 and catalog_status(proc, creds["cf-two"]) == 200

    bad_files = {**NOTHING_GIVEN,
                 "duplicate": platform_line("cf-one", "team-a", creds["cf-one"]) + platform_line("cf-new", "team-b", creds["cf-one"])}
    for label, text in bad_files.items():
        path.write_text(text)
        outcome = hang_up(proc, PLATFORM_RELOAD)
        assert outcome["level"] == "error" and outcome["msg"] == PLATFORM_RELOAD[1], (label, outcome)
        for name in ("cf-one", "cf-two"):
            assert catalog_status(proc, creds[name]) == 200, f"platform {name} refused after a SIGHUP with {label}"

    path.write_text(platform_line("cf-one", "team-a", creds["cf-one"]) + platform_line("cf-new", "team-b", creds["cf-new"]))
    outcome = hang_up(proc, PLATFORM_RELOAD)
    assert outcome["msg"] == PLATFORM_RELOAD[0] and outcome.get("platforms") == "2", outcome
    assert catalog_status(proc, creds["cf-new"]) == 200, "the new platform is refused"
    assert catalog_status(proc, creds["cf-two"]) == 401, "the removed platform is still let in"


# --------------------------------------------------------------------------------------------
# Two Authorization headers


def test_two_authorization_headers_are_400_on_v1(warren, tokens):
    good, other = f"Bearer {tokens['team-a']}", f"Bearer {tokens['team-b']}"
    assert raw(warren.port, "GET", "/v1/environments", [good]).status == 200  # the control
    bodies = set()
    for pair in ([good, good], [good, other], ["Bearer nope", good], [good, "Bearer nope"], [good, good, good]):
        for method, path in (("GET", "/v1/environments"), ("GET", "/v1/blueprints"), ("DELETE", "/v1/environments/x")):
            resp = raw(warren.port, method, path, pair)
            assert resp.status == 400, (method, path, resp)
            assert resp.headers.get("content-type", "").startswith("application/problem+json"), resp
            body = resp.json()
            assert body["type"] == "urn:warren:problem:duplicate-authorization" and body["status"] == 400, body
            assert "www-authenticate" not in resp.headers, resp
            bodies.add(resp.body)
    # The same answer whatever the values: it says nothing about any token.
    assert len(bodies) == 1, bodies
    for token in tokens.values():
        assert token.encode() not in next(iter(bodies)) and sha256_hex(token).encode() not in next(iter(bodies))


def test_two_authorization_headers_differing_in_case_are_400_on_v1(warren, tokens):
    head = f"Authorization: Bearer {tokens['team-a']}\r\nauthorization: Bearer {tokens['team-a']}\r\n"
    assert raw(warren.port, "GET", "/v1/environments", [], extra=head).status == 400


def test_two_authorization_headers_are_400_on_v2(osb_warren, osb_credentials):
    basic = [f"Basic {base64.b64encode(f'{user}:{password}'.encode()).decode()}"
             for user, password in osb_credentials.values()]
    version = "X-Broker-API-Version: 2.17\r\n"
    assert raw(osb_warren.port, "GET", "/v2/catalog", [basic[0]], extra=version).status == 200  # the control
    bodies = set()
    for pair in ([basic[0], basic[0]], [basic[0], basic[1]], ["Basic bm9wZTpub3Bl", basic[0]]):
        resp = raw(osb_warren.port, "GET", "/v2/catalog", pair, extra=version)
        assert resp.status == 400, resp
        assert resp.json()["error"] == "BadRequest", resp
        assert "www-authenticate" not in resp.headers, resp
        bodies.add(resp.body)
    assert len(bodies) == 1, bodies


def test_unauthenticated_routes_ignore_two_authorization_headers(warren):
    assert raw(warren.port, "GET", "/healthz", ["Bearer a", "Bearer b"]).status == 200

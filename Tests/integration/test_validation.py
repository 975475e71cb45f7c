"""POST /v1/environments input checking: 400 / 413 / 415, and that none of them touches the broker."""

import json

import pytest

import cases
from warren_support import MIB, assert_problem, problem_fields, raw_request, vhost_of


@pytest.mark.parametrize("case_id,body,field", cases.INVALID, ids=[c[0] for c in cases.INVALID])
def test_invalid_field(api_a, new_name, broker_unchanged, case_id, body, field):
    body = cases.fill(body, new_name("invalid"))
    resp = api_a.create(body)
    problem = assert_problem(resp, 400, "invalid-field")
    assert problem.get("errors"), f"invalid-field problem without errors[]: {problem}"
    for error in problem["errors"]:
        assert isinstance(error.get("reason"), str) and error["reason"], error
    assert problem_fields(problem) == {field}, (
        f"{json.dumps(body)[:200]}: errors[] must name exactly {field!r}, got {problem['errors']}")
    broker_unchanged(f"400 for {case_id}")


def test_several_invalid_fields_are_all_named(api_a, broker_unchanged):
    resp = api_a.create({"name": "BAD", "exchange": {"type": "x"}, "queue": {"type": "y"}, "foo": 1})
    problem = assert_problem(resp, 400, "invalid-field")
    assert problem_fields(problem) == {"name", "exchange.type", "queue.type", "foo"}, problem
    broker_unchanged()


@pytest.mark.parametrize("case_id,raw", cases.MALFORMED, ids=[c[0] for c in cases.MALFORMED])
def test_malformed_json(api_a, broker_unchanged, case_id, raw):
    resp = api_a.request("POST", "/v1/environments", data=raw,
                         headers={"Content-Type": "application/json"})
    assert_problem(resp, 400, "malformed-json")
    broker_unchanged(f"400 for {case_id}")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx", "multipart/form-data; boundary=x"])
def test_unsupported_media_type(api_a, new_name, broker_unchanged, content_type):
    body = json.dumps({"name": new_name("media")}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    resp = api_a.request("POST", "/v1/environments", data=body, headers=headers)
    assert_problem(resp, 415, "unsupported-media-type")
    broker_unchanged(f"415 for {content_type}")


def test_json_with_charset_parameter_is_accepted(api_a, new_name):
    name = new_name("charset")
    resp = api_a.request("POST", "/v1/environments", data=json.dumps({"name": name}).encode(),
                         headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("case_id,body", cases.VALID, ids=[c[0] for c in cases.VALID])
def test_valid_bodies_are_accepted(api_a, mgmt, new_name, case_id, body):
    name = new_name("valid")
    env = api_a.create_ok(cases.fill(body, name))
    assert env["name"] == name
    expected_exchange = body.get("exchange", {}).get("name", name)
    expected_queue = body.get("queue", {}).get("name", name)
    assert env["exchange"]["name"] == expected_exchange and env["queue"]["name"] == expected_queue
    assert env["routing_key"] == body.get("routing_key", name)
    assert mgmt.queue(env["vhost"], expected_queue) is not None
    assert mgmt.exchange(env["vhost"], expected_exchange) is not None


def test_name_of_63_chars_is_accepted(api_a, mgmt, new_name):
    prefix = new_name("long")
    name = (prefix + "-" + "x" * 63)[:63]
    new_name.names.append(name)  # so the fixture cleans it up
    env = api_a.create_ok({"name": name})
    assert env["vhost"] == vhost_of("team-a", name)
    assert mgmt.vhost(env["vhost"]) is not None


def _post_raw(port, token, body: bytes, content_length: int | None = None):
    length = len(body) if content_length is None else content_length
    head = (f"POST /v1/environments HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode()
    return raw_request(port, head, body, timeout=30)


def test_body_over_1_mib_is_413(warren, tokens, new_name, broker_unchanged):
    name = new_name("big")
    padding = 1 * MIB + 1 - len(json.dumps({"name": name}).encode())
    body = json.dumps({"name": name}).encode()[:-1] + b" " * padding + b"}"
    assert len(body) == MIB + 1
    resp = _post_raw(warren.port, tokens["team-a"], body)
    assert resp.status == 413, resp
    assert resp.headers.get("content-type", "").split(";")[0] == "application/problem+json", resp
    problem = resp.json()
    assert problem["type"] == "about:blank" and problem["status"] == 413, problem
    broker_unchanged("413")


def test_declared_length_over_1_mib_is_413_without_sending_it(warren, tokens, broker_unchanged):
    # The server must judge Content-Length before reading the body; none is sent here.
    resp = _post_raw(warren.port, tokens["team-a"], b"", content_length=64 * MIB)
    assert resp.status == 413, resp
    broker_unchanged("413")


def test_body_of_exactly_1_mib_is_accepted(warren, tokens, new_name):
    name = new_name("onemib")
    compact = json.dumps({"name": name}).encode()
    body = compact[:-1] + b" " * (MIB - len(compact)) + b"}"
    assert len(body) == MIB
    resp = _post_raw(warren.port, tokens["team-a"], body)
    assert resp.status == 201, resp
    assert resp.json()["name"] == name

"""Routing and the HTTP layer: 404, 405 + Allow, malformed requests, limits, keep-alive."""

import socket
import time

import pytest
import requests

from warren_support import _read_response, assert_problem, raw_request


@pytest.fixture(autouse=True)
def server_survives(warren):
    """After every test here, the server must still answer."""
    yield
    resp = requests.get(f"{warren.url}/healthz", timeout=5)
    assert resp.status_code == 200, "warren stopped answering /healthz"
    assert warren.running, f"warren died; see {warren.log_path}"


@pytest.mark.parametrize("path", ["/", "/nope", "/v1", "/v1/", "/v1/nope", "/v2/environments",
                                  "/v1/environments/a/b", "/healthz/x", "/V1/environments"])
def test_unknown_path_404(api_a, path):
    assert_problem(api_a.request("GET", path), 404, "not-found")


METHOD_CASES = [
    ("PUT", "/v1/environments", {"GET", "POST"}),
    ("PATCH", "/v1/environments", {"GET", "POST"}),
    ("DELETE", "/v1/environments", {"GET", "POST"}),
    ("POST", "/v1/environments/some-env", {"GET", "PATCH", "DELETE"}),
    ("PUT", "/v1/environments/some-env", {"GET", "PATCH", "DELETE"}),
    ("POST", "/healthz", {"GET"}),
    ("DELETE", "/readyz", {"GET"}),
]


@pytest.mark.parametrize("method,path,allowed", METHOD_CASES, ids=[f"{m} {p}" for m, p, _ in METHOD_CASES])
def test_wrong_method_405_with_allow(api_a, broker_unchanged, method, path, allowed):
    kw = {"json_body": {"name": "some-env"}} if method in ("PUT", "PATCH", "POST") else {}
    resp = api_a.request(method, path, **kw)
    assert_problem(resp, 405, "method-not-allowed")
    allow = {m.strip().upper() for m in resp.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow, f"Allow {resp.headers.get('Allow')!r} must list {sorted(allowed)}"
    assert method not in allow
    assert allow <= allowed | {"HEAD", "OPTIONS"}, f"Allow lists methods the path lacks: {allow}"
    broker_unchanged(f"{method} {path}")


def test_malformed_request_line_400(warren):
    resp = raw_request(warren.port, b"THIS IS NOT HTTP\r\n\r\n")
    assert resp.status == 400, resp
    assert resp.json()["type"] == "about:blank" and resp.json()["status"] == 400


def test_content_length_and_chunked_together_400(warren, tokens):
    # RFC 9112 section 6.1: such a message is a request-smuggling risk; reject it.
    head = (f"POST /v1/environments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['team-a']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n").encode()
    resp = raw_request(warren.port, head, b"0\r\n\r\n")
    assert resp.status == 400, resp


def test_uri_too_long_414(warren, tokens):
    head = (f"GET /v1/environments/{'a' * 100_000} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {tokens['team-a']}\r\nConnection: close\r\n\r\n").encode()
    resp = raw_request(warren.port, head)
    assert resp.status == 414, resp
    assert resp.json()["type"] == "about:blank" and resp.json()["status"] == 414


def test_header_fields_too_large_431(warren, tokens):
    head = (f"GET /v1/environments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['team-a']}\r\n"
            f"X-Padding: {'p' * 100_000}\r\nConnection: close\r\n\r\n").encode()
    resp = raw_request(warren.port, head)
    assert resp.status == 431, resp
    assert resp.json()["type"] == "about:blank" and resp.json()["status"] == 431


def test_keep_alive_serves_several_requests_on_one_connection(warren, tokens):
    request = (f"GET /v1/environments HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {tokens['team-a']}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", warren.port), timeout=10) as sock:
        buf = bytearray()
        for i in range(3):
            sock.sendall(request)
            resp = _read_response(sock, buf, time.monotonic() + 10)
            assert resp is not None, f"connection closed before response {i + 1}"
            assert resp.status == 200, resp
            assert "items" in resp.json()
        # Two requests in one write (pipelining) get two answers, in order.
        sock.sendall(request + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = _read_response(sock, buf, time.monotonic() + 10)
        second = _read_response(sock, buf, time.monotonic() + 10)
        assert first.status == 200 and "items" in first.json()
        assert second.status == 200 and second.json() == {"status": "ok"}

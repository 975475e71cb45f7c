"""Hostile HTTP clients against a real warren, over raw sockets on 127.0.0.1.

RFC 9112 framing: every request whose framing can no longer be trusted is refused with the
status the RFC asks for, and the connection is closed right after that one response, so bytes
hidden behind it (request smuggling) are never answered. Well-framed but unacceptable requests
(415, 400 bad JSON, 405) keep the connection. Slow and greedy clients (slowloris, idle
keep-alive hoarders, a flood past WARREN_MAX_CONNECTIONS, a client that never reads) cannot
starve others, and warren's descriptors and memory stay bounded and come back.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import threading
import time

import pytest
import requests

from warren_support import _read_response

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
# Set by scripts/test.sh when WARREN_BIN is a sanitizer build: ASan's quarantine and shadow
# memory make RSS meaningless, so memory bounds are only checked on a plain build.
SANITIZED = bool(os.environ.get("WARREN_TEST_SANITIZER"))


# --------------------------------------------------------------------------------------------
# Raw exchanges


class Exchange:
    """What came back for some bytes: the responses in order, and whether the server closed."""

    def __init__(self, responses, closed: bool, elapsed: float):
        self.responses = responses
        self.closed = closed
        self.elapsed = elapsed

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]

    def __repr__(self):
        return f"Exchange(statuses={self.statuses}, closed={self.closed}, {self.elapsed:.2f}s, {self.responses})"


def exchange(port: int, data: bytes, *, wait: float = 1.5, timeout: float = 10.0) -> Exchange:
    """Sends data in one write, then reads responses until the server closes, or until no byte
    arrives for `wait` seconds (the connection is then still open)."""
    started = time.monotonic()
    responses = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = bytearray()
        while True:
            # Wait for the next byte (or EOF) for at most `wait` s; then read a whole response.
            if not buf:
                readable, _, _ = select.select([sock], [], [], wait)
                if not readable:
                    return Exchange(responses, False, time.monotonic() - started)
            try:
                resp = _read_response(sock, buf, time.monotonic() + timeout)
            except AssertionError as e:
                if "closed" in str(e) or "reset" in str(e).lower():
                    return Exchange(responses, True, time.monotonic() - started)
                raise
            if resp is None:
                return Exchange(responses, True, time.monotonic() - started)
            responses.append(resp)


def refused(port: int, data: bytes, status: int) -> Exchange:
    """The request is refused with `status` (a problem document) and the connection closed at once."""
    ex = exchange(port, data)
    assert ex.statuses == [status], f"expected exactly one {status}, got {ex}"
    resp = ex.responses[0]
    assert resp.headers.get("connection", "").lower() == "close", f"no 'Connection: close': {resp}"
    assert ex.closed, f"the server kept the connection open after a {status}: {ex}"
    assert resp.headers.get("content-type", "").startswith("application/problem+json"), resp
    body = resp.json()
    assert body["status"] == status and body.get("detail"), body
    assert ex.elapsed < 5, f"the refusal took {ex.elapsed:.1f} s"
    return ex


def post_head(token: str, extra: str, path: str = "/v1/environments") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


@pytest.fixture(autouse=True)
def server_survives(warren):
    yield
    assert warren.running, f"warren died; see {warren.log_path}"
    assert requests.get(f"{warren.url}/healthz", timeout=5).status_code == 200


# --------------------------------------------------------------------------------------------
# RFC 9112 framing: refused, and the connection closed

FRAMING = [
    # (id, raw request, status) -- every one of these leaves the framing in doubt.
    ("CL and TE (RFC 9112 6.1)", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE then CL", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("two different CLs (RFC 9110 8.6)", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\nabcd", 400),
    ("CL list disagreeing", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
    ("negative CL", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ("signed CL", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400),
    ("non-numeric CL", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ("hex CL", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc", 400),
    ("CL with inner space", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n", 400),
    ("empty CL", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400),
    ("obs-fold (RFC 9112 5.2)", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n", 400),
    ("obs-fold with tab", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n", 400),
    ("space before colon (RFC 9112 5.1)", b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", 400),
    ("NUL in method", b"GE\x00T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("NUL in target", b"GET /healthz\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("CTL in target", b"GET /heal\x01thz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("DEL in target", b"GET /heal\x7fthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("non-ASCII in target", b"GET /heal\xc3\xa9thz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("NUL in header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("CTL in header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x07b\r\n\r\n", 400),
    ("lone CR in header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    ("NUL in header name", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX\x00A: b\r\n\r\n", 400),
    ("header without colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    ("bare LF line ends (RFC 9112 2.2)", b"GET /healthz HTTP/1.1\nHost: x\n\n", 400),
    ("bare LF in the middle", b"GET /healthz HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400),
    ("two spaces in request line", b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("tab in request line", b"GET\t/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("missing Host (RFC 9112 3.2)", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("absolute-form target", b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("asterisk-form target", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("garbled version", b"GET /healthz HTTP/1.x\r\nHost: x\r\n\r\n", 400),
    ("HTTP/2.0 version", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("HTTP/0.9 style", b"GET /healthz\r\n\r\n", 400),
    ("chunked (unsupported: 411)", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"2\r\n{}\r\n0\r\n\r\n", 411),
    ("chunked twice", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    ("unknown transfer coding (RFC 9112 6.1: 501)", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: gzip\r\n\r\n", 501),
    ("TE obfuscated with a letter", b"POST /v1/environments HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    ("TE in HTTP/1.0", b"POST /v1/environments HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("many empty lines first", b"\r\n" * 10 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
]


@pytest.mark.parametrize("raw,status", [(r, s) for _, r, s in FRAMING], ids=[i for i, _, _ in FRAMING])
def test_untrusted_framing_is_refused_and_closed(warren, raw, status):
    refused(warren.port, raw, status)


def test_uri_too_long_414_at_the_limit(warren):
    # The request line limit is 8 KiB: just over it -> 414 and close; just under -> served.
    over = b"GET /healthz?" + b"a" * (8 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    refused(warren.port, over, 414)
    under = b"GET /healthz?" + b"a" * (8 * 1024 - 40) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert exchange(warren.port, under, wait=0.5).statuses == [200]


def test_endless_request_line_is_cut_without_waiting_for_crlf(warren):
    # No CRLF ever comes: the server must refuse once the limit is crossed, not buffer on.
    refused(warren.port, b"GET /" + b"a" * 20_000, 414)


def test_header_section_too_large_431(warren):
    refused(warren.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40_000 + b"\r\n\r\n", 431)
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n"
    refused(warren.port, many, 431)


@pytest.mark.parametrize("length", [1024 * 1024 + 1, 10 ** 12, 10 ** 30])
def test_413_is_prompt_and_reads_no_body(warren, tokens, length):
    """A Content-Length over WARREN_MAX_BODY_BYTES (1 MiB by default) is refused from the head
    alone: no body is sent here, and the answer still comes at once."""
    ex = refused(warren.port, post_head(tokens["team-a"], f"Content-Length: {length}\r\n"), 413)
    assert ex.elapsed < 1.0, f"413 took {ex.elapsed:.2f} s"


def test_413_with_expect_continue_sends_no_100(warren, tokens):
    ex = refused(warren.port, post_head(tokens["team-a"], "Content-Length: 5000000\r\nExpect: 100-continue\r\n"), 413)
    assert ex.statuses == [413]


def test_expect_100_continue_then_body(warren, tokens):
    body = b"not json"
    with socket.create_connection(("127.0.0.1", warren.port), timeout=10) as sock:
        sock.sendall(post_head(tokens["team-a"], f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"))
        buf = bytearray()
        interim = _read_response(sock, buf, time.monotonic() + 5)
        assert interim.status == 100, interim
        sock.sendall(body)
        final = _read_response(sock, buf, time.monotonic() + 5)
        assert final.status == 400 and final.json()["type"] == "urn:warren:problem:malformed-json", final


# --------------------------------------------------------------------------------------------
# Well-framed but unacceptable: answered, and the connection stays usable


def keeps_connection(port: int, first: bytes, status: int):
    """`first` is answered with `status`, then a pipelined /healthz on the same connection with 200."""
    ex = exchange(port, first + HEALTHZ, wait=1.0)
    assert ex.statuses == [status, 200], ex
    assert not ex.closed, f"the connection closed after a well-framed {status}: {ex}"
    return ex.responses[0]


def test_non_json_body_400(warren, tokens, broker_unchanged):
    body = b"name=alpha"
    resp = keeps_connection(warren.port, post_head(tokens["team-a"], f"Content-Length: {len(body)}\r\n") + body, 400)
    assert resp.json()["type"] == "urn:warren:problem:malformed-json"
    broker_unchanged("a non-JSON body")


@pytest.mark.parametrize("body", [b"", b"{", b"{}}", b'{"name":"a",}', b'{"name":"a","name":"b"}',
                                  b"[" * 5000 + b"]" * 5000, b'{"name":"\xff"}', b"\x00",
                                  b'"' + b"a" * 500_000 + b'"'])
def test_bad_json_400_never_5xx(warren, tokens, body, broker_unchanged):
    resp = keeps_connection(warren.port, post_head(tokens["team-a"], f"Content-Length: {len(body)}\r\n") + body, 400)
    assert resp.json()["type"] in ("urn:warren:problem:malformed-json", "urn:warren:problem:invalid-field"), resp
    broker_unchanged("bad JSON")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                                   "multipart/form-data; boundary=x", None])
def test_wrong_content_type_415(warren, tokens, ctype, broker_unchanged):
    body = b'{"name":"never"}'
    head = (f"POST /v1/environments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['team-a']}\r\n"
            + (f"Content-Type: {ctype}\r\n" if ctype else "") + f"Content-Length: {len(body)}\r\n\r\n").encode()
    resp = keeps_connection(warren.port, head + body, 415)
    assert resp.json()["type"] == "urn:warren:problem:unsupported-media-type"
    broker_unchanged("a 415")


@pytest.mark.parametrize("method", ["BREW", "PROPFIND", "CONNECT", "TRACE", "get"])
def test_unknown_method(warren, tokens, method):
    """An unknown (but well-formed) method gets 405 with Allow on a known path. RFC 9110 15.6.2
    would also allow 501; either way the framing is fine, so the connection stays."""
    head = (f"{method} /v1/environments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['team-a']}\r\n\r\n").encode()
    ex = exchange(warren.port, head + HEALTHZ, wait=1.0)
    assert len(ex.statuses) == 2 and ex.statuses[0] in (405, 501) and ex.statuses[1] == 200, ex
    if ex.statuses[0] == 405:
        assert ex.responses[0].headers.get("allow"), ex.responses[0]
    assert not ex.closed, ex


def test_head_has_no_body_and_keeps_framing(warren):
    """A HEAD response carries the GET's Content-Length but no body (RFC 9110 9.3.2); a body
    would be read as the start of the next pipelined response."""
    with socket.create_connection(("127.0.0.1", warren.port), timeout=5) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + HEALTHZ)
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"}"):
            assert time.monotonic() < deadline, data
            data += sock.recv(65536)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), data
    assert rest.startswith(b"HTTP/1.1 200 "), f"the HEAD response had a body: {data!r}"
    assert rest.endswith(b'{"status":"ok"}'), data


# --------------------------------------------------------------------------------------------
# Pipelining and smuggling


def test_pipelined_requests_answered_in_order(warren, tokens):
    auth = f"Authorization: Bearer {tokens['team-a']}\r\n"
    bad = b"oops"
    data = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + f"GET /v1/environments HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()
            + f"POST /v1/environments HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
              f"Content-Length: {len(bad)}\r\n\r\n".encode() + bad
            + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            + f"GET /v1/environments/does-not-exist HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # after "close": never answered
    ex = exchange(warren.port, data, wait=3.0)
    assert ex.statuses == [200, 200, 400, 404, 404, 200], ex
    assert "items" in ex.responses[1].json()
    assert ex.responses[2].json()["type"] == "urn:warren:problem:malformed-json"
    assert ex.closed, "the connection must close after the request with 'Connection: close'"


def test_get_with_a_body_consumes_it(warren):
    """A body on a GET is framed by its Content-Length: a request hidden in it is not answered."""
    hidden = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    data = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(hidden) + hidden + HEALTHZ
    ex = exchange(warren.port, data, wait=1.0)
    assert ex.statuses == [200, 200], ex


SMUGGLING = [
    ("CL.TE", b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("TE.CL", b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
     b"2c\r\nGET /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\r\n0\r\n\r\n"),
    ("TE only", b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("TE with a space before the colon", b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
     b"Content-Length: 6\r\n\r\n0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("TE folded", b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 6\r\n\r\n"
     b"0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("two CLs", b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 33\r\n\r\n"
     b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bare LF hides a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: y\nContent-Length: 33\r\n\r\n"
     b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("NUL hides a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: y\x00\r\nContent-Length: 33\r\n\r\n"
     b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
]


@pytest.mark.parametrize("raw", [r for _, r in SMUGGLING], ids=[i for i, _ in SMUGGLING])
def test_smuggled_request_is_never_answered(warren, raw):
    ex = exchange(warren.port, raw, wait=1.5)
    assert len(ex.responses) == 1, f"a smuggled second request got an answer: {ex}"
    assert ex.statuses[0] in (400, 411, 501), ex
    assert ex.closed, ex
    assert b"/nope" not in ex.responses[0].body


# --------------------------------------------------------------------------------------------
# Timeouts (WARREN_HEADER_TIMEOUT_MS, WARREN_BODY_TIMEOUT_MS, WARREN_IDLE_TIMEOUT_MS)


@pytest.fixture(scope="module")
def quick_timeouts(settings, warren_env, workdir):
    from warren_support import WarrenProcess
    env = dict(warren_env, WARREN_HEADER_TIMEOUT_MS="1500", WARREN_BODY_TIMEOUT_MS="1500",
               WARREN_IDLE_TIMEOUT_MS="2000")
    proc = WarrenProcess(settings.warren_bin, env, workdir, "quick-timeouts").start()
    yield proc
    proc.stop_cleanly()


def _wait_close(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    started = time.monotonic()
    data = b""
    sock.settimeout(limit)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise AssertionError(f"the server did not close within {limit} s (got {data[:200]!r})")
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def test_slow_head_gets_408(quick_timeouts):
    with socket.create_connection(("127.0.0.1", quick_timeouts.port)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        # Trickling does not extend the deadline: the head as a whole must arrive in time.
        for ch in b"st: x\r\n":
            time.sleep(0.25)
            try:
                sock.send(bytes([ch]))
            except OSError:
                break
        data, _ = _wait_close(sock, 5)
        elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert 1.2 < elapsed < 4, f"closed after {elapsed:.2f} s with a 1.5 s header timeout"


def test_silent_connection_is_cut_by_the_header_timeout(quick_timeouts):
    with socket.create_connection(("127.0.0.1", quick_timeouts.port)) as sock:
        data, elapsed = _wait_close(sock, 6)
    assert elapsed < 4, elapsed
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:200]


def test_slow_body_gets_408(quick_timeouts, tokens):
    with socket.create_connection(("127.0.0.1", quick_timeouts.port)) as sock:
        sock.sendall(post_head(tokens["team-a"], "Content-Length: 100\r\n") + b'{"name":')
        data, elapsed = _wait_close(sock, 6)
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert 1.2 < elapsed < 4, elapsed


def test_idle_keep_alive_is_closed(quick_timeouts):
    with socket.create_connection(("127.0.0.1", quick_timeouts.port)) as sock:
        sock.sendall(HEALTHZ)
        buf = bytearray()
        assert _read_response(sock, buf, time.monotonic() + 5).status == 200
        data, elapsed = _wait_close(sock, 6)
    assert data == b"" and 1.5 < elapsed < 4.5, (data[:200], elapsed)


# --------------------------------------------------------------------------------------------
# Slow and greedy clients, by the thousand


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int, port: int) -> dict[str, int]:
    """Warren's descriptors by kind: `served`, TCP connections accepted on `port` (its clients');
    `outgoing`, its own TCP connections to other ports (the management API's connection pool,
    which grows as background work runs calls at once, whatever the clients do); `other`, the
    rest (the listener, files, pipes, event descriptors)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
        else:
            inodes.add(None)
    served = outgoing = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if inode not in inodes or state == "0A":  # not Warren's, or a listener
                continue
            if local_port == port:
                served += 1
            else:
                outgoing += 1
    total = fd_count(pid)
    return {"served": served, "outgoing": outgoing, "other": total - served - outgoing}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        pytest.fail(f"RLIMIT_NOFILE is {soft} (hard {hard}); this test needs {wanted} descriptors", pytrace=False)


def timed_healthz(port: int) -> tuple[float, int]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        resp = _read_response(sock, bytearray(), time.monotonic() + 5)
    return time.monotonic() - started, resp.status


SLOW = 1000
IDLE = 1000
# The management client's keep-alive connection cache (CURLMOPT_MAXCONNECTS, ManagementClient).
MANAGEMENT_POOL = 32
LIMIT = SLOW + IDLE + 20


@pytest.fixture
def crowded_warren(warren_factory):
    raise_nofile(SLOW + IDLE + 400)
    return warren_factory("crowd", WARREN_MAX_CONNECTIONS=str(LIMIT), WARREN_HEADER_TIMEOUT_MS="8000",
                          WARREN_IDLE_TIMEOUT_MS="30000")


def test_slowloris_and_idle_hoarders_do_not_starve_others(crowded_warren, report):
    """1,000 connections trickling a header byte every 2 s plus 1,000 idle keep-alive
    connections: /healthz for a new client stays prompt, connections past the limit get a fast
    503, the slow ones are cut by the header timeout, and warren's descriptors and memory stay
    bounded and come back once the clients leave."""
    proc = crowded_warren
    pid, port = proc.proc.pid, proc.port
    base_fds, base_rss = fd_count(pid), rss_mib(pid)
    base_kinds = fd_kinds(pid, port)
    idle: list[socket.socket] = []
    slow: list[socket.socket] = []
    extra: list[socket.socket] = []
    try:
        # 1,000 keep-alive connections, each after one answered request, then silent.
        request = HEALTHZ
        for _ in range(IDLE):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(request)
            idle.append(s)
        for s in idle:
            resp = _read_response(s, bytearray(), time.monotonic() + 10)
            assert resp is not None and resp.status == 200
        # 1,000 slowloris connections: a partial head, then a byte every 2 s.
        partial = b"GET /healthz HTTP/1.1\r\nX-Slow: "
        for _ in range(SLOW):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(partial)
            s.setblocking(False)
            slow.append(s)
        opened = time.monotonic()
        stop = threading.Event()

        def trickle():
            while not stop.wait(2.0):
                for s in slow:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()

        # A new client is served promptly, several times over.
        time.sleep(0.5)
        latencies = []
        for _ in range(10):
            latency, status = timed_healthz(port)
            assert status == 200
            latencies.append(latency)
            time.sleep(0.1)
        crowded_fds, crowded_rss = fd_count(pid), rss_mib(pid)
        assert max(latencies) < 1.0, f"/healthz latencies under load: {latencies}"
        assert crowded_fds >= base_fds + SLOW + IDLE - 5, (base_fds, crowded_fds)

        # Past the limit: a fast 503 (with Retry-After) and a close, never a hang.
        refusals, refusal_times = 0, []
        for _ in range(60):
            started = time.monotonic()
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            extra.append(s)
            s.setblocking(True)
            s.settimeout(0.3)
            try:
                head = s.recv(4096)
            except socket.timeout:
                continue  # accepted within the limit: it waits for a request
            if head.startswith(b"HTTP/1.1 503"):
                refusals += 1
                refusal_times.append(time.monotonic() - started)
                assert b"retry-after" in head.lower(), head
        assert refusals >= 60 - (LIMIT - SLOW - IDLE), f"only {refusals} of 60 connections past the limit got 503"
        assert max(refusal_times) < 0.5, refusal_times

        # The header timeout (8 s from accept, trickling or not) cuts every slow connection.
        deadline = opened + 8 + 6
        cut = 0
        for s in slow:
            s.setblocking(True)
            s.settimeout(max(0.05, deadline - time.monotonic()))
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
                cut += 1
            except (socket.timeout, ConnectionResetError):
                if data.startswith(b"HTTP/1.1 408"):
                    cut += 1
        stop.set()
        trickler.join(5)
        assert cut == SLOW, f"only {cut} of {SLOW} slowloris connections were closed by the header timeout"
        peak_rss = rss_mib(pid)
        # The server lingers on a refused connection until the client closes it too.
        for s in slow + extra:
            s.close()
        time.sleep(0.5)
        latency, status = timed_healthz(port)
        assert status == 200 and latency < 1.0, (status, latency)
    finally:
        for s in idle + slow + extra:
            s.close()

    # Descriptors come back to where they were; memory stays bounded. Counted by kind: the
    # management API's connection pool is not the clients' to give back (its size follows how
    # many calls Warren's background work had in flight at once, and on a busy machine the
    # first count comes before the start-up sweep's calls have opened theirs).
    def settled():
        kinds = fd_kinds(pid, port)
        return (kinds["served"] <= base_kinds["served"] and kinds["other"] <= base_kinds["other"] + 5
                and kinds["outgoing"] <= MANAGEMENT_POOL)

    deadline = time.monotonic() + 30
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.2)
    after_fds, after_rss, after_kinds = fd_count(pid), rss_mib(pid), fd_kinds(pid, port)
    report("hostile", f"2,000 hoarding connections: /healthz max {max(latencies) * 1000:.0f} ms, "
                      f"fds {base_fds} -> {crowded_fds} -> {after_fds} ({base_kinds} -> {after_kinds}), "
                      f"RSS {base_rss:.0f} -> {crowded_rss:.0f} (peak {peak_rss:.0f}) -> {after_rss:.0f} MiB, "
                      f"{refusals} fast 503s past the limit (max {max(refusal_times) * 1000:.0f} ms)")
    assert after_kinds["served"] <= base_kinds["served"], \
        f"clients' connections not given back: {base_kinds} before, {after_kinds} after"
    assert after_kinds["other"] <= base_kinds["other"] + 5, \
        f"descriptors did not come back: {base_kinds} before, {after_kinds} after"
    assert after_kinds["outgoing"] <= MANAGEMENT_POOL, \
        f"more management connections than the pool keeps: {base_kinds} before, {after_kinds} after"
    if not SANITIZED:
        assert crowded_rss - base_rss < 150, f"RSS grew {crowded_rss - base_rss:.0f} MiB for 2,000 connections"
        assert after_rss < base_rss + 150, f"RSS {after_rss:.0f} MiB after the clients left (was {base_rss:.0f})"
    assert proc.running


def test_client_that_never_reads_does_not_grow_memory(warren_factory):
    """A greedy client pipelines requests as fast as it can and never reads the answers: the
    server stops reading while its responses cannot drain, so its memory stays bounded."""
    proc = warren_factory("greedy")
    pid, port = proc.proc.pid, proc.port
    base_rss = rss_mib(pid)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 900 + b"\r\n\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        chunk = request * 64
        deadline = time.monotonic() + 6
        stalled_since = None
        while time.monotonic() < deadline and sent < 200 * 1024 * 1024:
            try:
                sent += sock.send(chunk[sent % len(chunk):])  # whole requests, in order
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.5:
                    break  # flow control: the server stopped reading, as it should
                time.sleep(0.01)
        grown = rss_mib(pid) - base_rss
        latency, status = timed_healthz(port)
    assert status == 200 and latency < 1.0, latency
    assert SANITIZED or grown < 64, f"RSS grew {grown:.0f} MiB while a client pipelined {sent / 1e6:.0f} MB without reading"

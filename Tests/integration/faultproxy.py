"""A small fault-injecting HTTP/1.1 reverse proxy for the RabbitMQ management API (stdlib only).

    proxy = FaultProxy("http://127.0.0.1:15672").start()   # listens on 127.0.0.1:proxy.port
    proxy.arm(3, "http500")     # the 3rd request from now is answered 500, not forwarded
    ...
    proxy.arm(1, "reset", match=lambda method, path: method == "PUT" and "/queues/" in path)
    proxy.fired                 # (method, path) of the request that was failed, or None
    proxy.stop()

Every request is counted and recorded as (method, path). An armed fault fails exactly one
request, the k-th counted from `arm` (of those `match` accepts, if given), WITHOUT forwarding it to the broker, in one of three modes:

  http500  answer `500` with the JSON body `{}` (and to a repeat of the same method and path
           within RESET_REPEAT_WINDOW, as for reset: Warren reads a GET a second time after a
           5xx, which a broker that keeps failing would fail too)
  reset    close the client's socket with SO_LINGER 0, so the client sees a TCP RST. An HTTP
           client may resend a request that died on a reused connection before any answer
           (libcurl does, at once, on its next pooled connection, up to 5 times), so a repeat
           of the same method and path within RESET_REPEAT_WINDOW seconds of the last reset is
           reset too (`repeats` counts them): the call then fails as it would against a broker
           that went away, instead of being healed by a resend the test did not aim at
  hang     read the request and never answer; close once the client gives up (or on stop)

Everything else is forwarded untouched over one keep-alive upstream connection per client
connection, so a client that reuses its connection (libcurl does) sends many requests through
one proxy connection. `stop()` closes the listener and every client connection (the broker is
then "down": connections are refused); `start()` again listens on the same port.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
import urllib.parse

MODES = ("http500", "reset", "hang")
# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded; Expect is answered by the proxy itself.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
              "upgrade", "expect"}
MAX_HEAD = 64 * 1024
RESET_REPEAT_WINDOW = 0.3


class _ClientGone(Exception):
    pass


class FaultProxy:
    def __init__(self, upstream: str, port: int = 0, upstream_timeout: float = 30.0):
        parts = urllib.parse.urlsplit(upstream)
        assert parts.scheme == "http" and parts.hostname, f"expected an http:// URL, got {upstream!r}"
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_timeout = upstream_timeout
        self.port = port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._stopping = threading.Event()
        self.requests: list[tuple[str, str]] = []  # every request seen, in arrival order
        self._armed: list | None = None  # [requests still to let through + 1, mode, match]
        self.fired: tuple[str, str] | None = None
        self.fired_mode: str | None = None
        self.repeats = 0  # repeats of a failed request that were failed too
        self._sticky: tuple[str, str, float] | None = None  # (method, path, until) of a reset

    # ---------------------------------------------------------------------------------------
    # Control (from the test's thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def mark(self) -> int:
        """The current request count, to slice `requests` later."""
        return self.count

    def since(self, mark: int) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.requests[mark:])

    def arm(self, k: int, mode: str, match=None) -> None:
        """Fails the k-th request (1-based) counted from now; with match(method, path), the k-th
        of the requests it accepts."""
        assert k >= 1 and mode in MODES, (k, mode)
        with self._lock:
            self._armed = [k, mode, match]
            self.fired = None
            self.fired_mode = None
            self.repeats = 0
            self._sticky = None

    def disarm(self) -> tuple[str, str] | None:
        """Cancels an armed fault that has not fired; returns what fired, if anything."""
        with self._lock:
            self._armed = None
            self._sticky = None
            return self.fired

    def wait_quiet(self, quiet: float = 0.5, timeout: float = 15.0) -> int:
        """Waits until no request has arrived for `quiet` seconds; returns the count."""
        deadline = time.monotonic() + timeout
        last, since = self.count, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.count
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return now
        raise AssertionError(f"requests kept arriving at the proxy for {timeout:.0f} s: "
                             f"{self.requests[-10:]}")

    def start(self) -> "FaultProxy":
        assert self._listener is None, "already started"
        self._stopping.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, args=(listener,),
                                               name=f"faultproxy-{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Closes the listener and every client connection; idempotent."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            _close(sock, reset=False)
        if self._accept_thread is not None:
            self._accept_thread.join(5)
            self._accept_thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---------------------------------------------------------------------------------------
    # Serving (proxy threads)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            if self._stopping.is_set():
                _close(sock, reset=False)
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        upstream: http.client.HTTPConnection | None = None
        buf = bytearray()
        reset = False
        try:
            while not self._stopping.is_set():
                request = _read_request(sock, buf, self._stopping)
                if request is None:
                    return
                method, target, headers, body = request
                path = urllib.parse.urlsplit(target).path
                with self._lock:
                    self.requests.append((method, path))
                    mode = None
                    armed = self._armed
                    sticky = self._sticky
                    if sticky and sticky[:2] == (method, path) and time.monotonic() < sticky[2]:
                        mode = sticky[3]
                        self.repeats += 1
                        self._sticky = (method, path, time.monotonic() + RESET_REPEAT_WINDOW, mode)
                    elif armed is not None and (armed[2] is None or armed[2](method, path)):
                        armed[0] -= 1
                        if armed[0] == 0:
                            mode = armed[1]
                            self._armed = None
                            self.fired = (method, path)
                            self.fired_mode = mode
                            if mode in ("reset", "http500"):
                                self._sticky = (method, path, time.monotonic() + RESET_REPEAT_WINDOW, mode)
                if mode == "http500":
                    sock.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 2\r\n\r\n{}")
                    continue
                if mode == "reset":
                    reset = True
                    return
                if mode == "hang":
                    _wait_until_closed(sock, self._stopping)
                    return
                if upstream is None:
                    upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port,
                                                          timeout=self.upstream_timeout)
                status, reason, resp_headers, resp_body = _forward(upstream, method, target,
                                                                   headers, body)
                head = [f"HTTP/1.1 {status} {reason}"]
                head += [f"{k}: {v}" for k, v in resp_headers if k.lower() not in HOP_BY_HOP
                         and k.lower() != "content-length"]
                if status >= 200 and status not in (204, 304):
                    head.append(f"Content-Length: {len(resp_body)}")
                sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp_body)
        except (_ClientGone, OSError):
            return
        finally:
            if upstream is not None:
                upstream.close()
            with self._lock:
                self._clients.discard(sock)
            _close(sock, reset=reset)


def _forward(upstream: http.client.HTTPConnection, method: str, target: str,
             headers: list[tuple[str, str]], body: bytes):
    """One request over the keep-alive upstream connection (one reconnect if it went stale)."""
    fwd = {}
    for k, v in headers:
        if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
            fwd[k] = v
    for attempt in (1, 2):
        try:
            upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in fwd.items():
                upstream.putheader(k, v)
            if body or method in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            resp = upstream.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            upstream.close()
            if attempt == 2:
                raise


def _read_request(sock: socket.socket, buf: bytearray, stopping: threading.Event):
    """(method, target, headers, body) of the next request; None on a clean EOF between requests."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD:
            raise _ClientGone("request head too large")
        chunk = _recv(sock, stopping)
        if not chunk:
            if buf.strip():
                raise _ClientGone("EOF inside a request head")
            return None
        buf.extend(chunk)
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    del buf[:len(head) + 4]
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    lower = {k.lower(): v for k, v in headers}
    if "chunked" in lower.get("transfer-encoding", "").lower():
        raise _ClientGone("chunked request bodies are not supported by the fault proxy")
    if lower.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    length = int(lower.get("content-length", "0") or 0)
    while len(buf) < length:
        chunk = _recv(sock, stopping)
        if not chunk:
            raise _ClientGone("EOF inside a request body")
        buf.extend(chunk)
    body = bytes(buf[:length])
    del buf[:length]
    return method, target, headers, body


def _recv(sock: socket.socket, stopping: threading.Event) -> bytes:
    sock.settimeout(0.5)
    while not stopping.is_set():
        try:
            return sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return b""
    return b""


def _wait_until_closed(sock: socket.socket, stopping: threading.Event) -> None:
    """For `hang`: swallow anything more the client sends until it closes (or the proxy stops)."""
    while _recv(sock, stopping):
        pass


def _close(sock: socket.socket, reset: bool) -> None:
    try:
        if reset:
            # SO_LINGER on with a zero timeout: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass

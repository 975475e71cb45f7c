"""Helpers for Warren's integration and end-to-end tests.

Nothing here knows pytest fixtures; conftest.py wires these into fixtures. Everything talks to
real processes: the warren executable, the RabbitMQ management API and the AMQP port.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import select
import shlex
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pika
import pika.exceptions
import pytest
import referencing
import referencing.jsonschema
import requests
import yaml
from jsonschema import Draft202012Validator, FormatChecker

HTTP_TIMEOUT = 15  # seconds, for every request the tests make
MIB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Configuration


def parse_env_file(path: str | os.PathLike) -> dict[str, str]:
    """Parses the shell assignments (`KEY=value`, optionally quoted or `export`ed) of broker.env."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path}:{lineno}: not a shell assignment: {raw!r}")
        words = shlex.split(value, comments=True)
        values[key] = words[0] if words else ""
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


RUN_ID = "it" + secrets.token_hex(2)  # distinguishes this run's environments from any other


def unique_name(label: str = "env") -> str:
    """A fresh environment name, valid under ^[a-z0-9][a-z0-9-]{0,62}$."""
    label = re.sub(r"[^a-z0-9-]", "-", label.lower()).strip("-")[:40] or "env"
    return f"{RUN_ID}-{label}-{secrets.token_hex(3)}"


def vhost_of(team: str, name: str) -> str:
    return f"warren.{team}.{name}"


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


# --------------------------------------------------------------------------------------------
# The warren process


class WarrenProcess:
    """One warren executable on a free loopback port, its output captured to a log file."""

    START_TIMEOUT = 20.0
    STOP_TIMEOUT = 10.0

    def __init__(self, binary: str, env: dict[str, str], log_dir: Path, label: str):
        self.binary = binary
        self.env = dict(env)
        self.log_dir = log_dir
        self.label = label
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path: Path | None = None
        self._starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def describe(self) -> str:
        return (f"warren '{self.label}' (pid {self.proc.pid if self.proc else '-'}, port {self.port}, "
                f"log {self.log_path})")

    def start(self) -> "WarrenProcess":
        assert not self.running, f"{self.describe()} is already running"
        for attempt in range(3):
            self._starts += 1
            self.port = free_port()
            self.log_path = self.log_dir / f"warren-{self.label}-{self._starts}.log"
            WARREN_LOGS.append(self.log_path)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("WARREN_") or k.startswith("WARREN_LOG")}
            env.update(self.env)
            env["WARREN_LISTEN"] = f"127.0.0.1:{self.port}"
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen([self.binary], env=env, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
            if self._wait_healthy():
                return self
            if self.running:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"{self.describe()}: GET /healthz did not answer 200 within "
                            f"{self.START_TIMEOUT:.0f} s. Its output:\n{tail(self.log_path)}",
                            pytrace=False)
            output = tail(self.log_path)
            # Another process may have taken the free port between our probe and warren's bind.
            if "in use" in output.lower() and attempt < 2:
                continue
            pytest.fail(f"{self.describe()} exited with status {self.proc.returncode} during "
                        f"start-up. Its output:\n{output}", pytrace=False)
        raise AssertionError("unreachable")

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> int:
        """SIGTERM, wait up to 10 s; returns the exit status. SIGKILLs and fails on a hang."""
        if self.proc is None:
            raise AssertionError(f"{self.describe()} was never started")
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"{self.describe()} did not exit within {self.STOP_TIMEOUT:.0f} s of "
                        f"SIGTERM (killed). Its output:\n{tail(self.log_path)}", pytrace=False)

    def stop_cleanly(self) -> None:
        """Stops with SIGTERM and asserts exit status 0."""
        was_running = self.running
        rc = self.stop()
        what = "after SIGTERM" if was_running else "on its own, before SIGTERM"
        assert rc == 0, (f"{self.describe()} exited with status {rc} {what} (expected 0). "
                         f"Its output:\n{tail(self.log_path)}")

    def restart(self) -> "WarrenProcess":
        self.stop_cleanly()
        return self.start()

    def kill(self) -> None:
        if self.running:
            self.proc.kill()
            self.proc.wait()

    def crash(self) -> int:
        """SIGKILL (a crash: no clean-up runs); returns the exit status. The process is then
        forgotten, so `start()` runs a fresh one and fixture teardown does not expect exit 0."""
        assert self.running, f"{self.describe()} is not running"
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(timeout=self.STOP_TIMEOUT)
        self.proc = None
        return rc


# --------------------------------------------------------------------------------------------
# OpenAPI: the spec and live-response conformance

SPEC_URI = "urn:warren:openapi"


def _rfc3339(value) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value):
        return False
    try:
        dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _uri(value) -> bool:
    if not isinstance(value, str):
        return True
    parts = urllib.parse.urlsplit(value)
    return bool(parts.scheme) and not re.search(r"[\s<>\"{}|\\^`]", value)


def _uri_reference(value) -> bool:
    return not isinstance(value, str) or not re.search(r"[\s<>\"{}|\\^`]", value)


FORMATS = FormatChecker()
FORMATS.checks("date-time")(_rfc3339)
FORMATS.checks("uri")(_uri)
FORMATS.checks("uri-reference")(_uri_reference)


def each_object(node, visit) -> None:
    """Calls visit(d) on every dict in a JSON-like tree, outermost first."""
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            each_object(value, visit)
    elif isinstance(node, list):
        for value in node:
            each_object(value, visit)


def closed_answers(doc: dict) -> dict:
    """The document as Warren's tests hold Warren to it: every schema marked `x-warren-closed`
    (an answer's, open to fields a later release adds, see openapi.yaml's "Answers may gain
    fields") gets `additionalProperties: false`, so an answer with a field the document does not
    list fails here, though clients are told to ignore such fields."""
    doc = copy.deepcopy(doc)

    def close(node: dict) -> None:
        if node.get("x-warren-closed") is True:
            node["additionalProperties"] = False
    each_object(doc, close)
    return doc


class OpenApiSpec:
    def __init__(self, path: Path):
        self.path = path
        self.doc = closed_answers(yaml.safe_load(path.read_text()))
        resource = referencing.Resource.from_contents(
            self.doc, default_specification=referencing.jsonschema.DRAFT202012)
        self.registry = referencing.Registry().with_resource(SPEC_URI, resource)
        self._paths = []
        for template, item in (self.doc.get("paths") or {}).items():
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            self._paths.append((template, re.compile(regex), item))

    def deref(self, obj):
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            assert ref.startswith("#/"), f"only local $refs are supported, got {ref}"
            obj = self.doc
            for part in ref[2:].split("/"):
                obj = obj[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
            assert seen < 20, f"$ref loop at {ref}"
        return obj

    def _absolutize(self, schema):
        schema = copy.deepcopy(schema)

        def absolute(node: dict) -> None:
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#"):
                node["$ref"] = SPEC_URI + ref
        each_object(schema, absolute)
        return schema

    def validator(self, schema) -> Draft202012Validator:
        return Draft202012Validator(self._absolutize(schema), registry=self.registry,
                                    format_checker=FORMATS)

    def component(self, name: str) -> Draft202012Validator:
        assert name in self.doc["components"]["schemas"], f"openapi.yaml has no schema {name}"
        return self.validator({"$ref": f"#/components/schemas/{name}"})

    @staticmethod
    def _errors_text(validator, instance) -> str | None:
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if not errors:
            return None
        return "\n".join(f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message}"
                         for e in errors[:10])

    def check_component(self, name: str, instance) -> None:
        problems = self._errors_text(self.component(name), instance)
        assert problems is None, (f"does not match components.schemas.{name} of openapi.yaml:\n"
                                  f"{problems}\ninstance: {json.dumps(instance)[:2000]}")

    def is_valid(self, name: str, instance) -> bool:
        return self.component(name).is_valid(instance)

    def operation(self, method: str, path: str):
        path = urllib.parse.urlsplit(path).path
        for template, regex, item in self._paths:
            if regex.match(path):
                return template, item.get(method.lower())
        return None, None

    def conform(self, resp: requests.Response, method: str, path: str) -> None:
        """Asserts the live response is one the spec declares for this operation."""
        status = str(resp.status_code)
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        where = f"{method} {path} -> {status}"
        template, op = self.operation(method, path)
        if op is None:
            # Not an operation of the spec (unknown path, unsupported method): errors must still
            # be problem documents.
            if resp.status_code >= 400:
                assert ctype == "application/problem+json", (
                    f"{where}: Content-Type {ctype!r}, expected application/problem+json")
                self.check_component("Problem", resp.json())
            return
        responses = op.get("responses") or {}
        declared = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
        assert declared is not None, (f"{where}: status {status} is not declared for "
                                      f"{method.upper()} {template} in openapi.yaml")
        declared = self.deref(declared)
        content = declared.get("content") or {}
        if not content:
            assert not resp.content, f"{where}: spec declares no body, got {resp.content[:200]!r}"
        else:
            assert ctype in content, (f"{where}: Content-Type {ctype!r} is not one the spec "
                                      f"declares ({', '.join(content)})")
            schema = content[ctype].get("schema")
            if schema is not None:
                try:
                    body = resp.json()
                except ValueError:
                    raise AssertionError(f"{where}: body is not JSON: {resp.content[:200]!r}")
                problems = self._errors_text(self.validator(schema), body)
                assert problems is None, (f"{where}: body does not match openapi.yaml:\n{problems}"
                                          f"\nbody: {resp.text[:2000]}")
        for name, header in (declared.get("headers") or {}).items():
            header = self.deref(header)
            if header.get("required"):
                assert name in resp.headers, f"{where}: required header {name} missing"


# --------------------------------------------------------------------------------------------
# Warren's HTTP API

_DEFAULT = object()


class Api:
    """A client of one warren for one team (token None: no Authorization header)."""

    def __init__(self, base_url: str, token: str | None, spec: OpenApiSpec | None = None):
        self.base_url = base_url
        self.token = token
        self.spec = spec
        self.session = requests.Session()

    def request(self, method: str, path: str, *, json_body=_DEFAULT, data: bytes | None = None,
                headers: dict | None = None, token=_DEFAULT, check_spec: bool = True,
                timeout: float = HTTP_TIMEOUT) -> requests.Response:
        hdrs = {}
        tok = self.token if token is _DEFAULT else token
        if tok is not None:
            hdrs["Authorization"] = f"Bearer {tok}"
        if json_body is not _DEFAULT:
            data = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        resp = self.session.request(method, self.base_url + path, data=data, headers=hdrs,
                                    timeout=timeout, allow_redirects=False)
        record_response_secrets(resp.content)
        if check_spec and self.spec is not None:
            self.spec.conform(resp, method, path)
        return resp

    def create(self, body, **kw) -> requests.Response:
        return self.request("POST", "/v1/environments", json_body=body, **kw)

    def list(self, **kw) -> requests.Response:
        return self.request("GET", "/v1/environments", **kw)

    def get(self, env_id: str, **kw) -> requests.Response:
        return self.request("GET", "/v1/environments/" + urllib.parse.quote(env_id, safe=""), **kw)

    def delete(self, env_id: str, **kw) -> requests.Response:
        return self.request("DELETE", "/v1/environments/" + urllib.parse.quote(env_id, safe=""), **kw)

    def create_ok(self, body, expect: int = 201) -> dict:
        resp = self.create(body)
        assert resp.status_code == expect, (f"POST /v1/environments {json.dumps(body)}: expected "
                                            f"{expect}, got {resp.status_code}: {resp.text[:1000]}")
        return resp.json()

    def get_ok(self, env_id: str) -> dict:
        resp = self.get(env_id)
        assert resp.status_code == 200, f"GET {env_id}: {resp.status_code}: {resp.text[:1000]}"
        return resp.json()

    def list_ok(self) -> list[dict]:
        resp = self.list()
        assert resp.status_code == 200, f"GET /v1/environments: {resp.status_code}: {resp.text[:1000]}"
        return resp.json()["items"]


def assert_problem(resp: requests.Response, status: int, slug: str | None) -> dict:
    """Asserts an RFC 9457 problem with `urn:warren:problem:<slug>` (slug None: about:blank)."""
    where = f"{resp.request.method} {resp.request.path_url}"
    assert resp.status_code == status, (f"{where}: expected {status}, got {resp.status_code}: "
                                        f"{resp.text[:1000]}")
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/problem+json", (
        f"{where}: Content-Type {ctype!r}, expected application/problem+json")
    body = resp.json()
    expected_type = "about:blank" if slug is None else f"urn:warren:problem:{slug}"
    assert body.get("type") == expected_type, f"{where}: problem type {body.get('type')!r}, expected {expected_type!r}"
    assert body.get("status") == status, f"{where}: problem status member {body.get('status')!r}"
    assert isinstance(body.get("title"), str) and body["title"], f"{where}: problem without a title"
    return body


def problem_fields(body: dict) -> set[str]:
    return {e.get("field") for e in body.get("errors") or []}


# --------------------------------------------------------------------------------------------
# The RabbitMQ management API, to check the broker directly


def seg(s: str) -> str:
    return urllib.parse.quote(s, safe="")


class Mgmt:
    def __init__(self, url: str, user: str = "guest", password: str = "guest"):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = (user, password)

    def call(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.request(method, f"{self.url}/api/{path}", **kw)

    def get_json(self, path: str):
        """The JSON at /api/{path}, or None when the broker answers 404."""
        resp = self.call("GET", path)
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, f"management GET /api/{path}: {resp.status_code} {resp.text[:300]}"
        return resp.json()

    def overview(self) -> dict:
        return self.get_json("overview?disable_stats=true")

    def vhost(self, v):
        return self.get_json(f"vhosts/{seg(v)}")

    def vhost_names(self) -> set[str]:
        return {v["name"] for v in self.get_json("vhosts?columns=name")}

    def user(self, u):
        return self.get_json(f"users/{seg(u)}")

    def user_names(self) -> set[str]:
        return {u["name"] for u in self.get_json("users")}

    def users_with_prefix(self, prefix: str) -> set[str]:
        return {u for u in self.user_names() if u.startswith(prefix)}

    def exchange(self, v, x):
        return self.get_json(f"exchanges/{seg(v)}/{seg(x)}")

    def queue(self, v, q):
        return self.get_json(f"queues/{seg(v)}/{seg(q)}")

    def bindings(self, v, x, q) -> list:
        return self.get_json(f"bindings/{seg(v)}/e/{seg(x)}/q/{seg(q)}") or []

    def user_permissions(self, u) -> list:
        return self.get_json(f"users/{seg(u)}/permissions") or []

    def put_json(self, path: str, body) -> requests.Response:
        resp = self.call("PUT", path, json=body)
        assert resp.status_code in (201, 204), f"management PUT /api/{path}: {resp.status_code} {resp.text[:300]}"
        return resp

    def delete(self, path: str, missing_ok: bool = True) -> None:
        resp = self.call("DELETE", path)
        ok = (204, 404) if missing_ok else (204,)
        assert resp.status_code in ok, f"management DELETE /api/{path}: {resp.status_code} {resp.text[:300]}"

    def delete_queue(self, v, q):
        self.delete(f"queues/{seg(v)}/{seg(q)}", missing_ok=False)

    def delete_binding(self, v, x, q):
        found = self.bindings(v, x, q)
        assert found, f"no binding {x} -> {q} in {v}"
        for b in found:
            self.delete(f"bindings/{seg(v)}/e/{seg(x)}/q/{seg(q)}/{seg(b['properties_key'])}",
                        missing_ok=False)

    def snapshot(self) -> tuple[frozenset, frozenset]:
        """Every vhost and user whose name starts with 'warren.' (what Warren may create)."""
        return (frozenset(v for v in self.vhost_names() if v.startswith("warren.")),
                frozenset(u for u in self.user_names() if u.startswith("warren.")))

    def purge_environment(self, vhost: str) -> None:
        """Test cleanup, independent of Warren: the vhost and every user named after it, and
        its name in its team's index (else it would count against the team's quota until a
        janitor's grace ran out). A vhost protected from deletion (RabbitMQ 4.1 and later answer
        its DELETE with 412) has its protection lifted first."""
        resp = self.call("DELETE", f"vhosts/{seg(vhost)}")
        if resp.status_code == 412:
            self.delete(f"vhosts/{seg(vhost)}/deletion/protection", missing_ok=False)
            resp = self.call("DELETE", f"vhosts/{seg(vhost)}")
        assert resp.status_code in (204, 404), f"management DELETE vhost {vhost}: {resp.status_code} {resp.text[:300]}"
        for u in self.users_with_prefix(vhost + "."):
            self.delete(f"users/{seg(u)}")
        parts = vhost.split(".")
        if len(parts) == 3 and parts[0] == "warren":
            self.unlist(parts[1], parts[2])

    def team_index(self, team: str) -> list[str] | None:
        """The names Warren's index of `team` lists (a global parameter); None without one."""
        found = self.get_json(f"global-parameters/{seg('warren.team.' + team)}")
        return None if found is None else list(found["value"].get("environments", []))

    def unlist(self, team: str, name: str) -> None:
        listed = self.team_index(team)
        if listed is not None and name in listed:
            self.put_json(f"global-parameters/{seg('warren.team.' + team)}",
                          {"name": f"warren.team.{team}",
                           "value": {"environments": [n for n in listed if n != name]}})

    def reset_team_index(self, team: str) -> None:
        """Removes the team's index: Warren builds it again from the vhosts when it needs it."""
        self.delete(f"global-parameters/{seg('warren.team.' + team)}")


# --------------------------------------------------------------------------------------------
# Raw HTTP, for what `requests` cannot send or would not wait for


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"RawResponse({self.status}, {self.headers}, {self.body[:300]!r})"


def _read_response(sock: socket.socket, buf: bytearray, deadline: float) -> RawResponse | None:
    """Reads one response from sock (with leftover bytes in buf); None on EOF before a status line."""

    def fill() -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no complete HTTP response in time; got {bytes(buf[:300])!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        except socket.timeout:
            raise AssertionError(f"no complete HTTP response in time; got {bytes(buf[:300])!r}")
        buf.extend(chunk)
        return bool(chunk)

    while b"\r\n\r\n" not in buf:
        if not fill():
            if not buf:
                return None
            raise AssertionError(f"connection closed inside the response head: {bytes(buf[:300])!r}")
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    del buf[:len(head) + 4]
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    assert m, f"not an HTTP status line: {lines[0]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    assert "chunked" not in headers.get("transfer-encoding", "").lower(), "chunked responses unsupported here"
    while len(buf) < length:
        if not fill():
            raise AssertionError(f"connection closed inside the body ({len(buf)} of {length} bytes)")
    body = bytes(buf[:length])
    del buf[:length]
    return RawResponse(int(m.group(1)), headers, body)


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 15.0) -> RawResponse:
    """Sends head+body on a fresh connection and returns the first response.

    The bytes are streamed in chunks; once the server answers (or closes), sending stops, so a
    server that rejects early (413, 414, 431) is read correctly instead of failing with a broken
    pipe.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        view = memoryview(head + body)
        sent = 0
        while sent < len(view):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sent += sock.send(view[sent:sent + 65536])
            except (BrokenPipeError, ConnectionResetError):
                break
        resp = _read_response(sock, bytearray(), deadline)
        assert resp is not None, (
            f"the server closed the connection without any response (after {sent} of {len(view)} "
            f"bytes were sent; a server that rejects early must still let its answer arrive, "
            f"e.g. by a lingering close)")
        return resp


# --------------------------------------------------------------------------------------------
# AMQP with pika


def metric(text: str, name: str, **labels) -> float | None:
    """The value of one Prometheus sample of `name` whose labels include `labels`, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def amqp_params_from_uri(uri: str) -> pika.URLParameters:
    params = pika.URLParameters(uri)
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = 5
    params.stack_timeout = 10
    params.blocked_connection_timeout = 5
    return params


def amqp_params(host: str, port: int, vhost: str, user: str, password: str) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(host=host, port=port, virtual_host=vhost,
                                     credentials=pika.PlainCredentials(user, password),
                                     connection_attempts=1, retry_delay=0, socket_timeout=5,
                                     stack_timeout=10, blocked_connection_timeout=5)


def publish_and_get(conn: pika.BlockingConnection, exchange: str, routing_key: str, queue: str,
                    body: bytes, timeout: float = 10.0) -> bytes:
    """Publishes with publisher confirms and mandatory, then basic_gets one message from queue."""
    ch = conn.channel()
    ch.confirm_delivery()
    # Raises UnroutableError when no binding matches, NackError when the broker refuses it.
    ch.basic_publish(exchange=exchange, routing_key=routing_key, body=body,
                     properties=pika.BasicProperties(delivery_mode=2, content_type="text/plain"),
                     mandatory=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, _props, got = ch.basic_get(queue=queue, auto_ack=False)
        if method is not None:
            ch.basic_ack(method.delivery_tag)
            ch.close()
            return got
        time.sleep(0.05)
    raise AssertionError(f"no message arrived in queue {queue!r} within {timeout:.0f} s")


def connection_refusal(params) -> Exception:
    """Connects and expects the broker to refuse; returns the exception (fails if it connects)."""
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.AMQPConnectionError as e:
        return e
    conn.close()
    raise AssertionError(f"the broker accepted a connection that must be refused: "
                         f"user {params.credentials.username!r} on vhost {params.virtual_host!r}")


# --------------------------------------------------------------------------------------------
# "Complete or gone" after a crash: what an environment left on the broker


# An environment user: "{vhost}.{8 hex}" with vhost "warren.{team}.{name}" (neither has a dot).
# Users are "{vhost}.{incarnation 8 hex}{8 hex}"; environments made before incarnations have
# "{vhost}.{8 hex}".
ENV_USER = re.compile(r"^(warren\.[^.]+\.[^.]+)\.(?:[0-9a-f]{8}|[0-9a-f]{16})$")


def env_record(vhost_info: dict) -> dict | None:
    """The Warren record in a vhost's description (a JSON object), or None."""
    try:
        record = json.loads(vhost_info.get("description") or "")
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("spec"), dict) else None


def invariant_violations(mgmt: "Mgmt", prefix: str = "warren.", require_ready: bool = True) -> list[str]:
    """Checks "complete or gone" on the broker for every vhost and user starting with prefix.

    Every vhost `warren.*` must hold the exchange, the queue(s) (of the types its record names)
    and the binding(s) between them with the record's routing keys, and at least one user `{vhost}.{8hex}`
    with permissions on it (and, with require_ready, a record in state "ready"); every user
    `warren.*.*.{8hex}` must have its vhost. Returns one line per violation (empty: it holds).
    Vhosts that vanish while they are being checked are skipped: only quiescent state counts.
    """
    assert prefix.startswith("warren."), prefix
    all_vhosts = {v["name"]: v for v in mgmt.get_json("vhosts")}
    users = {u["name"] for u in mgmt.get_json("users") if u["name"].startswith(prefix)}
    violations = []
    for user in sorted(users):
        m = ENV_USER.match(user)
        if m and m.group(1) not in all_vhosts:
            violations.append(f"user {user}: its vhost {m.group(1)} does not exist")
    for vhost, info in sorted(all_vhosts.items()):
        if not vhost.startswith(prefix):
            continue
        problems = _environment_problems(mgmt, vhost, info, require_ready)
        if problems is not None:
            violations += [f"vhost {vhost}: {p}" for p in problems]
    return violations


def record_topology(spec: dict) -> tuple[tuple[str, str], list[tuple[str, str]], list[tuple[str, str]]]:
    """(exchange (name, type), queues [(name, type)], bindings [(queue, routing key)]) of a record's
    spec; reads both record shapes: one `queue` + `routing_key`, or `queues` + `bindings` lists."""
    exchange = (spec["exchange"]["name"], spec["exchange"]["type"])
    if "queues" in spec:
        queues = [(q["name"], q["type"]) for q in spec["queues"]]
        bindings = [(b["queue"], b["routing_key"]) for b in spec["bindings"]]
    else:
        queues = [(spec["queue"]["name"], spec["queue"]["type"])]
        bindings = [(spec["queue"]["name"], spec["routing_key"])]
    return exchange, queues, bindings


def _environment_problems(mgmt: "Mgmt", vhost: str, info: dict, require_ready: bool) -> list[str] | None:
    record = env_record(info)
    if record is None:
        return [f"no Warren record in its description {str(info.get('description'))[:200]!r}"]
    try:
        (xname, xtype), queues, bindings = record_topology(record["spec"])
    except (KeyError, TypeError):
        return [f"record without a complete spec: {record['spec']!r}"]
    problems = []
    if require_ready and record.get("state", "ready") != "ready":
        problems.append(f"record state is {record.get('state')!r}, not 'ready'")
    exchange = mgmt.exchange(vhost, xname)
    found = {qname: mgmt.queue(vhost, qname) for qname, _ in queues}
    permissions = mgmt.get_json(f"vhosts/{seg(vhost)}/permissions")
    if exchange is None:
        problems.append(f"exchange {xname!r} missing")
    elif exchange.get("type") != xtype or not exchange.get("durable"):
        problems.append(f"exchange {xname!r} is {exchange.get('type')}/durable={exchange.get('durable')}, "
                        f"record says {xtype}/durable")
    for qname, qtype in queues:
        queue = found[qname]
        if queue is None:
            problems.append(f"queue {qname!r} missing")
            continue
        got = queue.get("type") or (queue.get("arguments") or {}).get("x-queue-type") or "classic"
        if got != qtype or not queue.get("durable"):
            problems.append(f"queue {qname!r} is {got}/durable={queue.get('durable')}, record says {qtype}/durable")
    for qname, rkey in bindings:
        if exchange is not None and found.get(qname, True) is not None and not any(
                b.get("routing_key") == rkey for b in mgmt.bindings(vhost, xname, qname)):
            problems.append(f"no binding {xname!r} -> {qname!r} with routing key {rkey!r}")
    holders = [p["user"] for p in permissions or [] if p["user"].startswith(vhost + ".")
               and ENV_USER.match(p["user"])]
    if not holders:
        problems.append("no user {vhost}.{8hex} with permissions on it")
    if problems and mgmt.vhost(vhost) is None:
        return None  # deleted while we looked
    return problems or None


def env_trace(mgmt: "Mgmt", vhost: str) -> list[str]:
    """What of an environment is on the broker: its vhost and every user named after it."""
    found = [f"vhost {vhost}"] if mgmt.vhost(vhost) is not None else []
    return found + [f"user {u}" for u in sorted(mgmt.users_with_prefix(vhost + "."))]


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Polls predicate() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def run_concurrently(fns, timeout: float = 60.0) -> list:
    """Runs the callables in threads released together; their results (or exceptions) in order."""
    import threading

    results: list = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def worker(i):
        try:
            barrier.wait(10)
            results[i] = fns[i]()
        except Exception as e:  # returned for the caller's assertions
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(fns))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a concurrent call did not finish in {timeout:.0f} s"
    return results


def amqp_login(uri: str) -> str | None:
    """Opens and closes an AMQP connection with a create response's URI; None, or why it failed."""
    try:
        pika.BlockingConnection(amqp_params_from_uri(uri)).close()
        return None
    except pika.exceptions.AMQPError as e:
        return f"{type(e).__name__}: {e!r}"[:300]


# --------------------------------------------------------------------------------------------
# Leaked secrets: what was issued during the run, and every log warren wrote

# Every log file of every warren started in this run (WarrenProcess.start appends).
WARREN_LOGS: list[Path] = []
# secret value -> what it is; checked against every log at the end of the session (conftest).
SECRETS: dict[str, str] = {}


def record_secret(value: str | None, what: str) -> None:
    """Remembers a secret that must never appear in any warren log. Short values are ignored
    (they would match by accident)."""
    if isinstance(value, str) and len(value) >= 8:
        SECRETS.setdefault(value, what)


def _walk_secrets(node, where: str = "") -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "password" and isinstance(value, str):
                record_secret(value, f"password issued in {where or 'a response'}")
            elif key == "uri" and isinstance(value, str) and "@" in value:
                # amqp://user:password@host/vhost
                userinfo = urllib.parse.urlsplit(value).password
                record_secret(userinfo and urllib.parse.unquote(userinfo), "password in a connection URI")
            else:
                _walk_secrets(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for item in node:
            _walk_secrets(item, where)


def record_response_secrets(body: bytes | str) -> None:
    """Records every `password` (and every password inside a connection `uri`) in a JSON body."""
    if not body or (b'"password"' not in body if isinstance(body, bytes) else '"password"' not in body):
        return
    try:
        _walk_secrets(json.loads(body))
    except ValueError:
        pass


def leaked_secrets(logs: list[Path] | None = None) -> list[str]:
    """One line per (secret, log) where a recorded secret appears in a warren log, as it is,
    percent-encoded or JSON-escaped. (Record a Basic credential's base64 form as a secret of
    its own.)"""
    found = []
    texts = {}
    for path in dict.fromkeys(logs if logs is not None else WARREN_LOGS):
        try:
            texts[path] = Path(path).read_bytes()
        except OSError:
            continue
    for secret, what in SECRETS.items():
        forms = {secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}
        needles = [f.encode() for f in forms]
        for path, text in texts.items():
            for needle in needles:
                if needle in text:
                    line = next(l for l in text.splitlines() if needle in l).replace(needle, b"<SECRET>")
                    found.append(f"{what} in {path}: {line[:400].decode(errors='replace')}")
                    break
    return found


# --------------------------------------------------------------------------------------------
# A warren whose janitor sweeps every second with the shortest grace start-up accepts:
# grace 7 s > create deadline 3 s + one management timeout of 3 s.
SWEEPING_WARREN = {"WARREN_SWEEP_INTERVAL_SECONDS": "1", "WARREN_SWEEP_GRACE_SECONDS": "7",
                   "WARREN_CREATE_DEADLINE_SECONDS": "3", "WARREN_MANAGEMENT_TIMEOUT_MS": "3000"}


def start_refused(warren_bin: str, env: dict[str, str], log: Path, timeout: float = 30) -> str:
    """Runs warren with env (over this process's environment, without its WARREN_ variables),
    expects it to stop at start-up with exit status 2 (a setting refused) within `timeout`;
    returns its output. A warren that starts instead is killed and the test fails."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
    full.update(env)
    full["WARREN_LISTEN"] = "127.0.0.1:0"
    with open(log, "wb") as out:
        proc = subprocess.Popen([warren_bin], env=full, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"warren started; it must refuse: {log.read_text()[-2000:]}")
    output = log.read_text()
    assert rc == 2, f"exit status {rc}, expected 2: {output[-2000:]}"
    return output


def log_lines(path, level: str | None = None) -> list[dict]:
    """The JSON lines of a warren log (optionally only those of one level)."""
    found = []
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return found
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and (level is None or item.get("level") == level):
            found.append(item)
    return found


# --------------------------------------------------------------------------------------------
# The Open Service Broker API (/v2), as a platform calls it

OSB_SERVICE_ID = "2df015c6-3f04-5396-8c61-dcba7bff4546"  # name-based: the same on every Warren
OSB_DEFAULT_PLAN_ID = "fa63eaad-ae41-56e9-b73f-9d5f0dd04d27"


class OSBClient:
    """A platform's client of one warren's /v2: HTTP basic credentials, X-Broker-API-Version."""

    VERSION = "2.17"

    def __init__(self, base_url: str, user: str, password: str, spec: OpenApiSpec | None = None):
        self.base_url = base_url
        self.auth = (user, password)
        self.spec = spec
        self.session = requests.Session()

    def request(self, method: str, path: str, *, json_body=_DEFAULT, query: dict | None = None,
                version: str | None = VERSION, auth=_DEFAULT, headers: dict | None = None,
                data: bytes | None = None, check_spec: bool = True,
                timeout: float = HTTP_TIMEOUT) -> requests.Response:
        hdrs = {}
        if version is not None:
            hdrs["X-Broker-API-Version"] = version
        if json_body is not _DEFAULT:
            data = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        resp = self.session.request(method, self.base_url + path, params=query, data=data, headers=hdrs,
                                    auth=self.auth if auth is _DEFAULT else auth, timeout=timeout,
                                    allow_redirects=False)
        record_response_secrets(resp.content)
        if check_spec and self.spec is not None:
            self.spec.conform(resp, method, resp.request.path_url)
        return resp

    @staticmethod
    def instance_path(instance_id: str) -> str:
        return "/v2/service_instances/" + urllib.parse.quote(instance_id, safe="")

    @staticmethod
    def binding_path(instance_id: str, binding_id: str) -> str:
        return (OSBClient.instance_path(instance_id) + "/service_bindings/"
                + urllib.parse.quote(binding_id, safe=""))

    @staticmethod
    def _incomplete(accepts_incomplete: bool | None) -> dict:
        return {} if accepts_incomplete is None else {"accepts_incomplete": str(accepts_incomplete).lower()}

    def catalog(self, **kw) -> requests.Response:
        return self.request("GET", "/v2/catalog", **kw)

    def provision(self, instance_id: str, parameters: dict | None = None, *, plan_id: str = OSB_DEFAULT_PLAN_ID,
                  accepts_incomplete: bool | None = None, body: dict | None = None, **kw) -> requests.Response:
        if body is None:
            # organization_guid and space_guid: deprecated for `context`, still required in v2.17.
            body = {"service_id": OSB_SERVICE_ID, "plan_id": plan_id, "organization_guid": "org-1", "space_guid": "space-1",
                    "context": {"platform": "cloudfoundry", "organization_guid": "org-1", "space_guid": "space-1"}}
            if parameters is not None:
                body["parameters"] = parameters
        return self.request("PUT", self.instance_path(instance_id), json_body=body,
                            query=self._incomplete(accepts_incomplete), **kw)

    def update(self, instance_id: str, body: dict, **kw) -> requests.Response:
        return self.request("PATCH", self.instance_path(instance_id), json_body=body, **kw)

    def fetch(self, instance_id: str, **kw) -> requests.Response:
        return self.request("GET", self.instance_path(instance_id), **kw)

    def deprovision(self, instance_id: str, *, accepts_incomplete: bool | None = None,
                    plan_id: str = OSB_DEFAULT_PLAN_ID, **kw) -> requests.Response:
        query = {"service_id": OSB_SERVICE_ID, "plan_id": plan_id, **self._incomplete(accepts_incomplete)}
        return self.request("DELETE", self.instance_path(instance_id), query=query, **kw)

    def last_operation(self, instance_id: str, operation: str | None = None, **kw) -> requests.Response:
        """`operation`: what Warren's 202 said (`provision`, `deprovision`), as a platform sends it back."""
        query = {} if operation is None else {"operation": operation}
        return self.request("GET", self.instance_path(instance_id) + "/last_operation", query=query, **kw)

    def bind(self, instance_id: str, binding_id: str, parameters: dict | None = None, *,
             predecessor: str | None = None, **kw) -> requests.Response:
        body = {"service_id": OSB_SERVICE_ID, "plan_id": OSB_DEFAULT_PLAN_ID,
                "bind_resource": {"app_guid": "app-1"}}
        if parameters is not None:
            body["parameters"] = parameters
        if predecessor is not None:
            body["predecessor_binding_id"] = predecessor
        return self.request("PUT", self.binding_path(instance_id, binding_id), json_body=body, **kw)

    def fetch_binding(self, instance_id: str, binding_id: str, **kw) -> requests.Response:
        return self.request("GET", self.binding_path(instance_id, binding_id), **kw)

    def unbind(self, instance_id: str, binding_id: str, **kw) -> requests.Response:
        query = {"service_id": OSB_SERVICE_ID, "plan_id": OSB_DEFAULT_PLAN_ID}
        return self.request("DELETE", self.binding_path(instance_id, binding_id), query=query, **kw)

    def binding_last_operation(self, instance_id: str, binding_id: str, **kw) -> requests.Response:
        return self.request("GET", self.binding_path(instance_id, binding_id) + "/last_operation", **kw)

    def poll(self, instance_id: str, timeout: float = 30, operation: str | None = None) -> requests.Response:
        """Polls last_operation as a platform does (with the `operation` of Warren's 202) until the
        state is no longer `in progress` (or the instance is gone after a deprovision: 410);
        returns that answer."""
        def done():
            resp = self.last_operation(instance_id, operation)
            assert resp.status_code in (200, 410), f"last_operation: {resp.status_code} {resp.text[:500]}"
            # In a list: a Response is falsy when its status is 4xx, and 410 is an answer here.
            return [resp] if resp.status_code == 410 or resp.json()["state"] != "in progress" else None
        return wait_for(done, timeout=timeout, interval=0.1, what=f"last_operation of {instance_id} settles")[0]


def assert_osb_error(resp: requests.Response, status: int, error: str | None = None) -> dict:
    """Asserts an OSB error answer: the status, application/json, `{"error", "description"}`."""
    where = f"{resp.request.method} {resp.request.path_url}"
    assert resp.status_code == status, f"{where}: expected {status}, got {resp.status_code}: {resp.text[:1000]}"
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    assert ctype == "application/json", f"{where}: Content-Type {ctype!r}, expected application/json"
    body = resp.json()
    assert isinstance(body.get("description"), str) and body["description"], f"{where}: no description: {body}"
    assert isinstance(body.get("error"), str) and body["error"], f"{where}: no error code: {body}"
    if error is not None:
        assert body["error"] == error, f"{where}: error {body['error']!r}, expected {error!r}: {body}"
    return body


def osb_environment_name(instance_id: str) -> str:
    """The environment name Warren gives an instance id (see OSBNaming): `osb-{id}` when that is
    a valid name, else `osb-` and 32 hex digits of the id's SHA-256."""
    direct = "osb-" + instance_id
    if re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", direct):
        return direct
    return "osb-" + hashlib.sha256(instance_id.encode()).hexdigest()[:32]

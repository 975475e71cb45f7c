"""A Python client generated from openapi.yaml, used against a real Warren and a real broker.

Portals do not write HTTP calls against Warren by hand: they generate a client from
openapi.yaml, and openapi-python-client (the version pinned in requirements.txt) is the one
they reach for first. A document that validates can still be one a generator misreads: a
schema it cannot type is dropped with a warning, and the portal is left with an operation
that returns `None` for the status it cares about, or with a model missing the fields it
needs. Nothing else in the suite would notice, since every other test speaks raw JSON.

This module generates the client once, from the repository's current openapi.yaml, and

- fails if the generator reports anything (a warning means something was dropped), if an
  operation of the document has no generated function, or if a documented response with a
  body is not parsed by the generated code;
- drives a whole round trip with the generated functions and models only, bodies built with
  the models' constructors: create (name only, and the full form with queues, dead-lettering,
  bindings, roles and limits), get, list, PATCH, credential rotation (the new credentials
  publish and consume with pika), the 409 and 404 problems, delete, the queues' figures and the
  KEDA manifests (with a 404 and a 400 problem), blueprints, the health
  endpoints, and an Open Service Broker conversation (catalog, provision, bind, pika with the
  binding's credentials, unbind, deprovision, the vhost gone from the broker);
- asserts every answer is the generated model (isinstance, fields read as attributes, the
  values of the types the document promises), never `None`, and that the model carries
  everything Warren answered: `to_dict()` of the parsed model equals the JSON body, so a field
  the document leaves out of a schema is caught too.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import inspect
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import httpx
import pika
import pytest

from conftest import OSB_BLUEPRINTS, SPEC_PATH
from warren_support import (HTTP_TIMEOUT, OSB_DEFAULT_PLAN_ID, amqp_params, amqp_params_from_uri,
                            osb_environment_name, publish_and_get, record_response_secrets, vhost_of)

PACKAGE = "warren_client"
OSB_VERSION = "2.17"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# --------------------------------------------------------------------------------------------
# Generating and importing the client


def generate_client(spec_path: Path, out_dir: Path) -> str:
    """Runs openapi-python-client on spec_path into out_dir (a package directory) as a portal
    would, and asserts it succeeded and reported nothing: no warning, no error. Returns its
    output."""
    env = dict(os.environ)
    # The generator formats its output with ruff (one of its own dependencies, installed beside
    # this interpreter); without it on PATH it warns "Skipping Integration", which is about this
    # machine, not the document.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    cmd = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec_path),
           "--meta", "none", "--output-path", str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env,
                          cwd=str(out_dir.parent))
    output = (proc.stdout or "") + (proc.stderr or "")
    where = f"`{' '.join(cmd)}` (exit status {proc.returncode}):\n{output[-6000:]}"
    assert proc.returncode == 0, f"the generator failed: {where}"
    for marker in ("Warning(s) encountered", "WARNING parsing", "Error(s) encountered", "Unable to parse",
                   "will not be generated", "will be omitted", "Skipping Integration"):
        assert marker not in output, f"the generator dropped part of openapi.yaml ({marker!r}): {where}"
    # On success it prints "Generating <dir>" and nothing else: anything more is a report.
    extra = [line for line in output.splitlines() if line.strip() and line.strip() != f"Generating {out_dir}"]
    assert not extra, f"the generator reported something about openapi.yaml: {where}"
    assert (out_dir / "__init__.py").is_file(), f"no package at {out_dir}: {where}"
    return output


def _forget_package() -> None:
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def snake(operation_id: str) -> str:
    """The generator's module name for an operationId (`osbCatalog` -> `osb_catalog`)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", operation_id).lower()


class Generated:
    """The imported client: its models, its operations by (tag, operationId), its clients."""

    def __init__(self, root: Path):
        self.root = root
        self.package = importlib.import_module(PACKAGE)
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.client_module = importlib.import_module(f"{PACKAGE}.client")
        self.types = importlib.import_module(f"{PACKAGE}.types")

    def op(self, tag: str, operation_id: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.api.{tag.replace('-', '_')}.{snake(operation_id)}")

    @staticmethod
    def _httpx_args() -> dict:
        # Every password Warren issues to this client is remembered, so the session's check of
        # the warren logs (conftest.no_secrets_in_logs) covers this module too.
        def remember(response: httpx.Response) -> None:
            response.read()
            record_response_secrets(response.content)

        return {"event_hooks": {"response": [remember]}}

    def bearer(self, base_url: str, token: str):
        return self.client_module.AuthenticatedClient(base_url=base_url, token=token,
                                                      timeout=httpx.Timeout(HTTP_TIMEOUT),
                                                      httpx_args=self._httpx_args())

    def basic(self, base_url: str, user: str, password: str):
        # openapi-python-client has no HTTP basic scheme: its AuthenticatedClient sends
        # `{prefix} {token}`, so a portal passes the base64 credentials with prefix "Basic".
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.client_module.AuthenticatedClient(base_url=base_url, token=token, prefix="Basic",
                                                      timeout=httpx.Timeout(HTTP_TIMEOUT),
                                                      httpx_args=self._httpx_args())

    def anonymous(self, base_url: str):
        return self.client_module.Client(base_url=base_url, timeout=httpx.Timeout(HTTP_TIMEOUT),
                                         httpx_args=self._httpx_args())


@pytest.fixture(scope="module")
def wc(tmp_path_factory) -> Generated:
    """The client generated from the repository's openapi.yaml, imported as `warren_client`.
    Whatever `warren_client` an earlier run in this process imported is forgotten first, and
    this one is forgotten (and its directory taken off sys.path) afterwards."""
    root = tmp_path_factory.mktemp("generated-python-client")
    generate_client(SPEC_PATH, root / PACKAGE)
    _forget_package()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        generated = Generated(root)
        loaded_from = Path(generated.package.__file__).resolve().parent
        assert loaded_from == (root / PACKAGE).resolve(), f"imported {loaded_from}, not the client just generated"
        yield generated
    finally:
        if str(root) in sys.path:
            sys.path.remove(str(root))
        _forget_package()


# --------------------------------------------------------------------------------------------
# Typed answers


def _as_datetime(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


def _same(raw, typed, path: str = "$") -> None:
    """Asserts the JSON body (raw) equals the parsed model's to_dict() (typed): the same keys
    everywhere, the same values of the same JSON types (date-times compared as instants)."""
    if isinstance(raw, dict):
        assert isinstance(typed, dict), f"{path}: an object was answered, the model gives {typed!r}"
        assert set(raw) == set(typed), (f"{path}: the model dropped {sorted(set(raw) - set(typed))} "
                                        f"or invented {sorted(set(typed) - set(raw))}")
        for key in raw:
            _same(raw[key], typed[key], f"{path}.{key}")
    elif isinstance(raw, list):
        assert isinstance(typed, list) and len(raw) == len(typed), f"{path}: {raw!r} answered, the model gives {typed!r}"
        for i, (a, b) in enumerate(zip(raw, typed)):
            _same(a, b, f"{path}[{i}]")
    elif isinstance(raw, str) and isinstance(typed, str) and raw != typed:
        a, b = _as_datetime(raw), _as_datetime(typed)
        assert a is not None and a == b, f"{path}: {raw!r} answered, the model gives {typed!r}"
    else:
        assert raw == typed and type(raw) is type(typed), f"{path}: {raw!r} answered, the model gives {typed!r}"


def expect(resp, status: int, model: type):
    """Asserts a generated sync_detailed() answer: the status, a parsed body (never None) of the
    generated model, and a model that carries all of the body. Returns the parsed model."""
    where = f"{resp.status_code} {resp.content[:1500]!r}"
    assert resp.status_code == status, f"expected {status}, got {where}"
    assert resp.parsed is not None, f"the generated client did not parse a documented {status}: {where}"
    assert isinstance(resp.parsed, model), (f"parsed as {type(resp.parsed).__name__}, expected "
                                            f"{model.__name__}: {where}")
    _same(json.loads(resp.content), resp.parsed.to_dict())
    return resp.parsed


def expect_no_body(resp, status: int) -> None:
    """A documented answer without a body (204): the generated client parses it as None."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code} {resp.content[:1500]!r}"
    assert resp.content == b"", f"{status} with a body: {resp.content[:500]!r}"


def check_problem(wc: Generated, resp, status: int, slug: str):
    problem = expect(resp, status, wc.models.Problem)
    assert problem.status == status and isinstance(problem.status, int), problem
    assert problem.type_ == f"urn:warren:problem:{slug}", problem
    assert isinstance(problem.title, str) and problem.title, problem
    return problem


def check_credentials(wc: Generated, creds, vhost: str, role=None):
    M = wc.models
    assert isinstance(creds, M.Credentials), creds
    assert isinstance(creds.username, str) and creds.username.startswith(vhost + "."), creds.username
    assert isinstance(creds.password, str) and len(creds.password) >= 32
    if role is not None:
        assert creds.role == role and isinstance(creds.role, str), creds.role


def check_connection(wc: Generated, connection, vhost: str, settings):
    assert isinstance(connection, wc.models.Connection), connection
    assert connection.vhost == vhost
    assert isinstance(connection.port, int) and connection.port == settings.amqp_port
    assert isinstance(connection.host, str) and connection.host
    assert connection.uri.startswith("amqp://"), connection.uri


def queue_names(queues) -> list[str]:
    return [q.name for q in queues]


def binding_keys(bindings) -> set[tuple[str, str]]:
    return {(b.queue, b.routing_key) for b in bindings}


# --------------------------------------------------------------------------------------------
# The generated code itself


def test_every_operation_and_every_documented_response_is_generated(wc, spec):
    """An operation the generator skipped has no module; a response it dropped has no branch in
    the module's _parse_response (its status then parses as None); a body it could not type is
    parsed as nothing."""
    problems = []
    count = 0
    for path, item in spec.doc["paths"].items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            count += 1
            what = f"{method.upper()} {path} ({operation['operationId']})"
            try:
                module = wc.op(operation["tags"][0], operation["operationId"])
            except ImportError as e:
                problems.append(f"{what}: no generated module ({e})")
                continue
            if not callable(getattr(module, "sync_detailed", None)):
                problems.append(f"{what}: no sync_detailed")
                continue
            source = inspect.getsource(module._parse_response)
            branches = dict(re.findall(r"if response\.status_code == (\d{3}):(.*?)(?=\n    if |\Z)", source, re.S))
            for status, response in operation["responses"].items():
                if not re.fullmatch(r"\d{3}", status):
                    problems.append(f"{what}: response {status!r} (not a status code) is not checked here")
                    continue
                response = spec.deref(response)
                if status not in branches:
                    problems.append(f"{what}: documented {status} is not parsed by the generated client")
                elif response.get("content") and "cast(Any, None)" in branches[status]:
                    problems.append(f"{what}: documented {status} has a body the generated client drops")
    assert count >= 20, f"only {count} operations found in openapi.yaml"
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# /v1: the round trip


def test_environment_round_trip_with_the_typed_client(wc, warren, tokens, new_name, settings):
    M = wc.models
    envs = "environments"
    create = wc.op(envs, "createEnvironment").sync_detailed
    get = wc.op(envs, "getEnvironment").sync_detailed
    client = wc.bearer(warren.url, tokens["team-a"])

    # 1. The simple form: a name only.
    simple_name = new_name("gen-simple")
    resp = create(client=client, body=M.CreateEnvironmentRequest(name=simple_name))
    simple = expect(resp, 201, M.EnvironmentCreated)
    assert resp.headers.get("Location") == f"/v1/environments/{simple_name}"
    assert (simple.id, simple.name, simple.team) == (simple_name, simple_name, "team-a")
    assert simple.status == M.EnvironmentStatus.READY and isinstance(simple.status, M.EnvironmentStatus)
    assert simple.vhost == vhost_of("team-a", simple_name)
    assert isinstance(simple.created_at, dt.datetime) and simple.created_at.tzinfo is not None
    assert isinstance(simple.exchange, M.Exchange) and simple.exchange.type_ == M.ExchangeType.DIRECT
    assert isinstance(simple.queue, M.Queue) and simple.queue.type_ == M.QueueType.QUORUM
    assert simple.exchange.durable is True and simple.queue.durable is True
    assert simple.routing_key == simple_name
    check_credentials(wc, simple.credentials, simple.vhost)
    check_connection(wc, simple.connection, simple.vhost, settings)
    assert isinstance(simple.limits, M.LimitsInForce) and isinstance(simple.limits.max_queues, int)

    # 2. The full form: several queues (one dead-lettering, with a delivery limit), bindings
    # with routing keys, producer and consumer credentials, limits.
    full_name = new_name("gen-full")
    asked_bindings = [M.Binding(queue="jobs", routing_key="jobs.#"),
                      M.Binding(queue="results", routing_key="results.*"),
                      M.Binding(queue="audit", routing_key="audit.#")]
    body = M.CreateEnvironmentRequest(
        name=full_name,
        exchange=M.ExchangeSpec(type_=M.ExchangeType.TOPIC),
        queues=[M.QueueSpec(name="jobs", dead_letter=True, delivery_limit=3),
                M.QueueSpec(name="results", type_=M.QueueType.CLASSIC),
                M.QueueSpec(name="audit")],
        bindings=asked_bindings,
        roles=[M.AdditionalRole.PRODUCER, M.AdditionalRole.CONSUMER],
        agents=[M.Agent(name="planner", publish=["jobs.*"], consume=["results"])],
        limits=M.Limits(max_queues=10, max_connections=5),
    )
    full = expect(create(client=client, body=body), 201, M.EnvironmentCreated)
    assert full.status == M.EnvironmentStatus.READY
    assert full.exchange.name == full_name and full.exchange.type_ == M.ExchangeType.TOPIC
    assert all(isinstance(q, M.Queue) for q in full.queues)
    assert queue_names(full.queues) == ["jobs", "results", "audit"]
    jobs, results, audit = full.queues
    assert jobs.type_ == M.QueueType.QUORUM and jobs.delivery_limit == 3 and jobs.dead_letter_queue == "jobs.dlq"
    assert results.type_ == M.QueueType.CLASSIC and isinstance(results.dead_letter_queue, wc.types.Unset)
    assert audit.type_ == M.QueueType.QUORUM
    assert full.queue.name == "jobs", "the first queue is the primary one"
    assert all(isinstance(b, M.Binding) for b in full.bindings)
    assert binding_keys(full.bindings) == binding_keys(asked_bindings)
    assert isinstance(full.role_credentials, M.EnvironmentCreatedRoleCredentials)
    roles = full.role_credentials.additional_properties
    assert set(roles) == {"producer", "consumer", "planner"}, roles
    check_credentials(wc, roles["producer"], full.vhost, "producer")
    check_credentials(wc, roles["consumer"], full.vhost, "consumer")
    check_credentials(wc, roles["planner"], full.vhost, "planner")
    assert [(a.name, a.publish, a.consume) for a in full.agents] == [("planner", ["jobs.*"], ["results"])]
    check_credentials(wc, full.credentials, full.vhost)
    usernames = {full.credentials.username, roles["producer"].username, roles["consumer"].username, roles["planner"].username}
    assert len(usernames) == 4, usernames
    check_connection(wc, full.connection, full.vhost, settings)
    assert isinstance(full.limits, M.LimitsInForce)
    assert (full.limits.max_queues, full.limits.max_connections) == (10, 5), full.limits

    # 3. Get and list.
    got = expect(get(full_name, client=client), 200, M.Environment)
    assert got.status == M.EnvironmentStatus.READY and got.missing == []
    assert isinstance(got.resources, M.Resources)
    assert all(getattr(got.resources, k) is True for k in ("vhost", "exchange", "queue", "binding", "user"))
    assert set(got.users) == usernames
    assert isinstance(got.user_roles, M.EnvironmentUserRoles)
    assert dict(got.user_roles.additional_properties) == {
        full.credentials.username: "full", roles["producer"].username: "producer",
        roles["consumer"].username: "consumer", roles["planner"].username: "planner"}
    assert all(isinstance(r, str) for r in got.user_roles.additional_properties.values())
    assert queue_names(got.queues) == ["jobs", "results", "audit"]
    assert binding_keys(got.bindings) == binding_keys(asked_bindings)
    assert isinstance(got.connection, M.Connection) and "@" not in got.connection.uri, "GET shows no password"

    listed = expect(wc.op(envs, "listEnvironments").sync_detailed(client=client), 200, M.EnvironmentList)
    assert all(isinstance(item, M.EnvironmentSummary) for item in listed.items)
    by_name = {item.name: item for item in listed.items}
    assert {simple_name, full_name} <= set(by_name), sorted(by_name)
    assert queue_names(by_name[full_name].queues) == ["jobs", "results", "audit"]
    assert isinstance(by_name[simple_name].created_at, dt.datetime)

    # 4. PATCH: a queue and its binding added.
    addition = M.EnvironmentAddition(queues=[M.QueueSpec(name="extra", type_=M.QueueType.CLASSIC)],
                                     bindings=[M.Binding(queue="extra", routing_key="extra.*")])
    patched = expect(wc.op(envs, "updateEnvironment").sync_detailed(full_name, client=client, body=addition),
                     200, M.Environment)
    assert queue_names(patched.queues) == ["jobs", "results", "audit", "extra"]
    assert ("extra", "extra.*") in binding_keys(patched.bindings)
    assert binding_keys(asked_bindings) <= binding_keys(patched.bindings)

    # 5. Rotation: a new set of credentials, which publishes and consumes.
    issue = wc.op(envs, "issueCredentials").sync_detailed
    rotated = expect(issue(full_name, client=client, body=M.CredentialsRequest(role="full")),
                     201, M.CredentialsIssued)
    check_credentials(wc, rotated.credentials, full.vhost, "full")
    assert rotated.credentials.password != full.credentials.password
    assert rotated.credentials.username not in usernames
    assert isinstance(rotated.revocations, M.CredentialsIssuedRevocations)
    assert rotated.revocations.additional_properties == {}, "no revocation was asked for"
    check_connection(wc, rotated.connection, full.vhost, settings)
    c = rotated.connection
    conn = pika.BlockingConnection(amqp_params(c.host, c.port, c.vhost, rotated.credentials.username,
                                               rotated.credentials.password))
    try:
        message = f"typed {secrets.token_hex(6)}".encode()
        assert publish_and_get(conn, full.exchange.name, "extra.new", "extra", message) == message
    finally:
        conn.close()

    # 7. Delete: 204, and the environment is gone.
    delete = wc.op(envs, "deleteEnvironment").sync_detailed
    for name in (simple_name, full_name):
        expect_no_body(delete(name, client=client), 204)
        check_problem(wc, get(name, client=client), 404, "not-found")


def test_problems_are_typed(wc, warren, tokens, new_name):
    """6. A 409 (the same name, another spec) and a 404 (an unknown name) as the typed Problem."""
    M = wc.models
    client = wc.bearer(warren.url, tokens["team-a"])
    create = wc.op("environments", "createEnvironment").sync_detailed
    name = new_name("gen-conflict")
    expect(create(client=client, body=M.CreateEnvironmentRequest(name=name)), 201, M.EnvironmentCreated)
    other = M.CreateEnvironmentRequest(name=name, exchange=M.ExchangeSpec(type_=M.ExchangeType.FANOUT))
    conflict = check_problem(wc, create(client=client, body=other), 409, "conflict")
    assert all(isinstance(e, M.ValidationError) for e in conflict.errors)
    assert "exchange.type" in {e.field for e in conflict.errors}, conflict.errors

    unknown = new_name("gen-never-made")
    missing = check_problem(wc, wc.op("environments", "getEnvironment").sync_detailed(unknown, client=client),
                            404, "not-found")
    assert isinstance(missing.detail, str)
    expect_no_body(wc.op("environments", "deleteEnvironment").sync_detailed(name, client=client), 204)


def test_queue_depths_and_keda_manifests_are_typed(wc, warren, tokens, new_name):
    """What autoscalers read: the queues' figures and the KEDA manifests, as the generated
    models (the manifests' camelCase keys mapped to attributes); an unknown queue and a bad
    parameter as the typed Problem."""
    M = wc.models
    envs = "environments"
    client = wc.bearer(warren.url, tokens["team-a"])
    name = new_name("gen-keda")
    body = M.CreateEnvironmentRequest(name=name, queues=[M.QueueSpec(name="jobs", dead_letter=True)],
                                      roles=[M.AdditionalRole.CONSUMER])
    created = expect(wc.op(envs, "createEnvironment").sync_detailed(client=client, body=body), 201, M.EnvironmentCreated)

    depths = expect(wc.op(envs, "getQueueDepths").sync_detailed(name, client=client), 200, M.QueueDepths)
    assert all(isinstance(q, M.QueueDepth) for q in depths.queues)
    assert [q.name for q in depths.queues] == ["jobs", "jobs.dlq"]
    for q in depths.queues:
        assert all(isinstance(v, int) for v in (q.messages, q.messages_ready, q.messages_unacknowledged, q.consumers))
        assert isinstance(q.publish_rate, (int, float)) and isinstance(q.deliver_rate, (int, float))

    keda = wc.op(envs, "getKedaManifests").sync_detailed
    manifests = expect(keda(name, client=client, queue="jobs", deployment="worker", target=4, max_replicas=6),
                       200, M.KedaManifests)
    scaled = manifests.scaled_object
    assert isinstance(scaled, M.KedaScaledObject) and scaled.kind == "ScaledObject"
    assert isinstance(scaled.spec, M.KedaScaledObjectSpec) and scaled.spec.scale_target_ref.name == "worker"
    assert (scaled.spec.min_replica_count, scaled.spec.max_replica_count) == (0, 6)
    trigger = scaled.spec.triggers[0]
    assert isinstance(trigger, M.KedaRabbitMQTrigger) and isinstance(trigger.metadata, M.KedaRabbitMQTriggerMetadata)
    assert (trigger.metadata.protocol, trigger.metadata.queue_name, trigger.metadata.value) == ("amqp", "jobs", "4")
    assert trigger.metadata.vhost_name == created.vhost
    auth = manifests.trigger_authentication
    assert isinstance(auth, M.KedaTriggerAuthentication) and auth.metadata.name == trigger.authentication_ref.name
    assert isinstance(auth.spec.secret_target_ref[0], M.KedaSecretTargetRef)
    assert isinstance(manifests.secret, M.KedaSecret) and manifests.secret.name == auth.metadata.name

    check_problem(wc, keda(name, client=client, queue="no-such-queue"), 404, "not-found")
    invalid = check_problem(wc, keda(name, client=client, queue="jobs", min_replicas=3, max_replicas=2), 400, "invalid-field")
    assert {e.field for e in invalid.errors} == {"max_replicas"}, invalid.errors
    expect_no_body(wc.op(envs, "deleteEnvironment").sync_detailed(name, client=client), 204)


def test_blueprints_and_health_are_typed(wc, osb_warren, tokens, settings):
    """8. The blueprints (of a warren that has some) and the health endpoints, without a token."""
    M = wc.models
    client = wc.bearer(osb_warren.url, tokens["team-a"])
    listed = expect(wc.op("environments", "listBlueprints").sync_detailed(client=client),
                    200, M.BlueprintList)
    assert all(isinstance(b, M.Blueprint) for b in listed.items)
    assert [b.name for b in listed.items] == sorted(OSB_BLUEPRINTS)
    jobs = listed.items[0]
    assert jobs.description == OSB_BLUEPRINTS["jobs"]["description"]
    assert all(isinstance(q, M.Queue) for q in jobs.queues)
    assert queue_names(jobs.queues) == [q["name"] for q in OSB_BLUEPRINTS["jobs"]["queues"]]
    assert all(isinstance(b, M.Binding) for b in jobs.bindings)
    assert isinstance(jobs.exchange, M.BlueprintExchange)

    anonymous = wc.anonymous(osb_warren.url)
    health = expect(wc.op("health", "getHealth").sync_detailed(client=anonymous), 200, M.Health)
    assert health.status == "ok"
    ready = expect(wc.op("health", "getReadiness").sync_detailed(client=anonymous), 200, M.Readiness)
    assert ready.status == "ready" and isinstance(ready.broker, M.ReadinessBroker)
    assert ready.broker.rabbitmq_version == settings.broker["BROKER_VERSION"]
    assert isinstance(ready.alarms, list) and all(isinstance(a, str) for a in ready.alarms)
    metrics = wc.op("health", "getMetrics").sync_detailed(client=anonymous)
    assert metrics.status_code == 200 and isinstance(metrics.parsed, str), metrics.content[:300]
    assert "warren_http_request_duration_seconds" in metrics.parsed


# --------------------------------------------------------------------------------------------
# /v2: a platform's conversation


@pytest.fixture
def osb_instance(mgmt):
    """A fresh instance id (team-a's, through platform cf-a); whatever its environment left on
    the broker is removed afterwards."""
    instance_id = str(uuid.uuid4())
    yield instance_id
    mgmt.purge_environment(vhost_of("team-a", osb_environment_name(instance_id)))


def test_open_service_broker_conversation_with_the_typed_client(wc, osb_warren, osb_credentials, osb_instance,
                                                                mgmt, spec):
    """9. Catalog, provision, bind (pika with the binding's credentials), unbind, deprovision."""
    M = wc.models
    osb = "open-service-broker"
    user, password = osb_credentials["cf-a"]
    platform = wc.basic(osb_warren.url, user, password)
    version = {"x_broker_api_version": OSB_VERSION}
    vhost = vhost_of("team-a", osb_environment_name(osb_instance))

    catalog = expect(wc.op(osb, "osbCatalog").sync_detailed(client=platform, **version), 200, M.OSBCatalog)
    assert len(catalog.services) == 1 and isinstance(catalog.services[0], M.OSBCatalogServicesItem)
    service = catalog.services[0]
    stated = spec.doc["components"]["schemas"]["OSBServiceId"]["enum"]
    assert isinstance(service.id, M.OSBServiceId) and [service.id.value] == stated, (service.id, stated)
    assert service.name == "rabbitmq-environment" and service.bindable is True
    assert all(isinstance(p, M.OSBCatalogServicesItemPlansItem) for p in service.plans)
    plans = {p.name: p for p in service.plans}
    assert set(plans) == {"default"} | set(OSB_BLUEPRINTS), sorted(plans)
    plan_id = plans["default"].id
    assert plan_id == OSB_DEFAULT_PLAN_ID

    context = M.OSBProvisionRequestContext()
    context["platform"] = "cloudfoundry"
    body = M.OSBProvisionRequest(service_id=service.id, plan_id=plan_id, organization_guid="org-1",
                                 space_guid="space-1", context=context,
                                 parameters=M.OSBProvisionParameters(routing_key="orders"))
    expect(wc.op(osb, "osbProvision").sync_detailed(osb_instance, client=platform, body=body, **version),
           201, M.OSBEmpty)
    fetched = expect(wc.op(osb, "osbFetchInstance").sync_detailed(osb_instance, client=platform, **version),
                     200, M.OSBInstance)
    assert fetched.service_id == service.id and fetched.plan_id == plan_id
    assert isinstance(fetched.parameters, M.OSBInstanceParameters)

    resource = M.OSBBindRequestBindResource()
    resource["app_guid"] = "app-1"
    bind = M.OSBBindRequest(service_id=service.id, plan_id=plan_id, bind_resource=resource)
    binding = expect(wc.op(osb, "osbBind").sync_detailed(osb_instance, "binding-1", client=platform, body=bind,
                                                         **version), 201, M.OSBBinding)
    creds = binding.credentials
    assert isinstance(creds, M.OSBBindingCredentials)
    assert creds.vhost == vhost and creds.username.startswith(vhost + ".")
    assert creds.role == "full" and creds.routing_key == "orders"
    assert isinstance(creds.port, int) and isinstance(creds.queues, list) and creds.queues
    conn = pika.BlockingConnection(amqp_params_from_uri(creds.uri))
    try:
        message = f"bound {secrets.token_hex(6)}".encode()
        assert publish_and_get(conn, creds.exchange, creds.routing_key, creds.queues[0], message) == message
    finally:
        conn.close()

    ids = {"service_id": service.id, "plan_id": plan_id}
    expect(wc.op(osb, "osbUnbind").sync_detailed(osb_instance, "binding-1", client=platform, **ids, **version),
           200, M.OSBEmpty)
    assert mgmt.user(creds.username) is None, "the binding's user outlived its unbind"
    expect(wc.op(osb, "osbDeprovision").sync_detailed(osb_instance, client=platform, **ids, **version),
           200, M.OSBEmpty)
    assert mgmt.vhost(vhost) is None, f"{vhost} is still on the broker after the deprovision"
    assert mgmt.users_with_prefix(vhost + ".") == set()
    gone = expect(wc.op(osb, "osbFetchInstance").sync_detailed(osb_instance, client=platform, **version),
                  404, M.OSBError)
    assert isinstance(gone.error, str) and gone.error and isinstance(gone.description, str) and gone.description

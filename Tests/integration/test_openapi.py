"""openapi.yaml: a valid OpenAPI 3.1 document that says what the contract says, and what the
live server answers matches it.

(Every request the `Api` client makes is also checked against the spec, in every test file;
these tests make the check explicit for each kind of answer.)
"""

import time

import pytest
import yaml
from openapi_spec_validator import validate

import cases
from warren_support import assert_problem, unique_name


def test_spec_is_valid_openapi_3_1(spec):
    assert spec.doc["openapi"] == "3.1.0"
    validate(spec.doc)  # raises with the exact location of any error


OPERATIONS = {
    ("get", "/healthz"): ("getHealth", {"200"}),
    ("get", "/readyz"): ("getReadiness", {"200", "503"}),
    ("post", "/v1/environments"): ("createEnvironment",
                                   {"200", "201", "202", "400", "401", "409", "413", "415", "502", "503"}),
    ("get", "/v1/environments"): ("listEnvironments", {"200", "401", "502", "503"}),
    ("get", "/v1/environments/{id}"): ("getEnvironment", {"200", "401", "404", "502", "503"}),
    ("delete", "/v1/environments/{id}"): ("deleteEnvironment", {"202", "204", "401", "404", "502", "503"}),
    ("get", "/v1/environments/{id}/queues"): ("getQueueDepths", {"200", "401", "404", "502", "503"}),
    ("get", "/v1/environments/{id}/keda"): ("getKedaManifests", {"200", "400", "401", "404", "502", "503"}),
}


@pytest.mark.parametrize("method,path", sorted(OPERATIONS), ids=lambda v: v)
def test_spec_declares_operation(spec, method, path):
    operation_id, statuses = OPERATIONS[(method, path)]
    op = spec.doc["paths"][path][method]
    assert op["operationId"] == operation_id
    missing = statuses - set(op["responses"])
    assert not missing, f"{method.upper()} {path} does not declare responses {sorted(missing)}"
    public = path in ("/healthz", "/readyz")
    assert (op.get("security") == []) == public, "only the probes are public"
    for status, response in op["responses"].items():
        response = spec.deref(response)
        if status.startswith(("4", "5")):
            assert list(response["content"]) == ["application/problem+json"], (method, path, status)
        if status == "401":
            assert "WWW-Authenticate" in response["headers"]
        if status == "503":
            assert spec.deref(response["headers"]["Retry-After"])["required"] is True


def test_spec_security_is_bearer(spec):
    scheme = spec.doc["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"
    assert spec.doc["security"] == [{"bearerAuth": []}]


def test_spec_create_has_location_and_links(spec):
    responses = spec.doc["paths"]["/v1/environments"]["post"]["responses"]
    location = responses["201"]["headers"]["Location"]
    assert location["required"] is True
    for status in ("200", "201"):
        links = {name: spec.deref(link) for name, link in responses[status]["links"].items()}
        targets = {link["operationId"]: link["parameters"] for link in links.values()}
        assert targets == {**{op: {"id": "$response.body#/id"} for op in (
            "getEnvironment", "deleteEnvironment", "updateEnvironment", "reconcileEnvironment", "issueCredentials",
            "getQueueDepths")}, "getKedaManifests": {"id": "$response.body#/id", "queue": "$response.body#/queue/name"}}


def test_spec_components(spec):
    schemas = spec.doc["components"]["schemas"]
    for name in ("CreateEnvironmentRequest", "Environment", "EnvironmentSummary", "EnvironmentList",
                 "EnvironmentCreated", "Credentials", "Connection", "Problem", "ValidationError"):
        assert name in schemas, f"components.schemas.{name} missing"
    assert schemas["CreateEnvironmentRequest"]["additionalProperties"] is False
    assert schemas["CreateEnvironmentRequest"]["required"] == ["name"]
    # No password outside the create answer.
    for name in ("Environment", "EnvironmentSummary"):
        assert "credentials" not in schemas[name]["properties"]
        assert schemas[name]["additionalProperties"] is False


def _reachable(doc: dict, roots) -> set[str]:
    """The component schemas reachable by $ref from `roots`."""
    seen: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                target = doc
                for part in ref[2:].split("/"):
                    target = target[part]
                if ref.startswith("#/components/schemas/") and ref.count("/") == 3:
                    if ref in seen:
                        return
                    seen.add(ref)
                walk(target)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(roots)
    return {ref.split("/")[-1] for ref in seen}


def test_spec_answers_are_open_to_new_fields_and_requests_are_closed(spec):
    """A client generated from an earlier openapi.yaml must read a later Warren's answers: no
    schema reached from answers alone says `additionalProperties: false` (the Swift generator
    refuses unknown keys where one does); those that list every field Warren sends say
    `x-warren-closed` instead, which the tests read as closed. Every object schema a /v1 request reaches stays closed (an unknown field: 400)."""
    doc = yaml.safe_load(spec.path.read_text())  # as published, not as the tests close it
    operations = [op for item in doc["paths"].values() for key, op in item.items() if key != "parameters"]
    asked = _reachable(doc, [[op.get("requestBody", {}), op.get("parameters", [])] for op in operations]
                       + [item.get("parameters", []) for item in doc["paths"].values()])
    answered = _reachable(doc, [op.get("responses", {}) for op in operations])
    schemas = doc["components"]["schemas"]
    for name in sorted(answered - asked):
        assert schemas[name].get("additionalProperties") is not False, f"{name}: an answer's schema is closed to new fields"
    marked = {name for name, schema in schemas.items() if schema.get("x-warren-closed")}
    assert marked and marked <= answered - asked, f"x-warren-closed on a request's schema: {sorted(marked - (answered - asked))}"
    assert {"Environment", "EnvironmentCreated", "EnvironmentSummary", "Connection", "Credentials", "CredentialsIssued",
            "Queue", "KubernetesSecret"} <= marked
    # /v1's requests; the Open Service Broker's are open by its specification (platforms add fields).
    v1 = [op for path, item in doc["paths"].items() if path.startswith("/v1/") for key, op in item.items() if key != "parameters"]
    for name in sorted(_reachable(doc, [[op.get("requestBody", {}), op.get("parameters", [])] for op in v1])):
        schema = schemas[name]
        if "properties" in schema:
            assert schema.get("additionalProperties") is False, f"{name}: a request's schema takes unknown fields"


@pytest.mark.parametrize("case_id,body,field", cases.INVALID, ids=[c[0] for c in cases.INVALID])
def test_spec_rejects_invalid_request(spec, case_id, body, field):
    assert not spec.is_valid("CreateEnvironmentRequest", cases.fill(body, "fine-name")), (
        f"openapi.yaml accepts {body}, which the contract rejects ({field})")


@pytest.mark.parametrize("case_id,body", cases.VALID, ids=[c[0] for c in cases.VALID])
def test_spec_accepts_valid_request(spec, case_id, body):
    spec.check_component("CreateEnvironmentRequest", cases.fill(body, "fine-name"))


def test_spec_accepts_63_char_name(spec):
    spec.check_component("CreateEnvironmentRequest", {"name": "a" * 63})


# ---- live answers against the spec's schemas -------------------------------------------------


def test_live_create_get_list_match_schemas(api_a, new_name, spec):
    name = new_name("oas")
    resp = api_a.create({"name": name}, check_spec=False)
    assert resp.status_code == 201, resp.text
    spec.conform(resp, "POST", "/v1/environments")
    spec.check_component("EnvironmentCreated", resp.json())

    again = api_a.create({"name": name}, check_spec=False)
    assert again.status_code == 200, again.text
    spec.conform(again, "POST", "/v1/environments")
    spec.check_component("EnvironmentCreated", again.json())

    got = api_a.get(name, check_spec=False)
    assert got.status_code == 200, got.text
    spec.conform(got, "GET", f"/v1/environments/{name}")
    spec.check_component("Environment", got.json())

    listed = api_a.list(check_spec=False)
    assert listed.status_code == 200, listed.text
    spec.conform(listed, "GET", "/v1/environments")
    spec.check_component("EnvironmentList", listed.json())
    for item in listed.json()["items"]:
        spec.check_component("EnvironmentSummary", item)

    deleted = api_a.delete(name, check_spec=False)
    assert deleted.status_code == 204, deleted.text
    spec.conform(deleted, "DELETE", f"/v1/environments/{name}")


def test_live_problems_match_schemas(api_a, anon, spec, warren):
    answers = [
        ("GET", f"/v1/environments/{unique_name('absent')}", api_a, 404, "not-found"),
        ("GET", "/v1/environments", anon, 401, "unauthorized"),
        ("POST", "/v1/environments", api_a, 400, "invalid-field"),
        ("PATCH", "/v1/environments", api_a, 405, "method-not-allowed"),
        ("GET", "/v1/no-such-path", api_a, 404, "not-found"),
    ]
    for method, path, api, status, slug in answers:
        body = {"name": "Not Valid"} if method == "POST" else None
        kw = {"json_body": body} if body is not None else {}
        resp = api.request(method, path, check_spec=False, **kw)
        assert_problem(resp, status, slug)
        spec.conform(resp, method, path)
        spec.check_component("Problem", resp.json())
    for path in ("/healthz", "/readyz"):
        resp = anon.request("GET", path, check_spec=False)
        assert resp.status_code == 200, resp.text
        spec.conform(resp, "GET", path)


# ---- asynchronous operations (Prefer: respond-async), status, platform -----------------------


def _created_body(spec, status: str) -> dict:
    return {"id": "fraud", "name": "fraud", "team": "team-a", "status": status, "created_at": "2026-11-29T10:00:00Z",
            "protected": False, "vhost": "warren.team-a.fraud", "exchange": {"name": "fraud", "type": "direct", "durable": True},
            "queue": {"name": "fraud", "type": "quorum", "durable": True}, "routing_key": "fraud",
            "credentials": {"username": "warren.team-a.fraud.5d1c09aa3f9a2c1e", "password": "p" * 32},
            "connection": {"host": "127.0.0.1", "port": 5672, "vhost": "warren.team-a.fraud",
                           "uri": "amqp://127.0.0.1:5672/warren.team-a.fraud"}}


@pytest.mark.parametrize("path,method", [("/v1/environments", "post"), ("/v1/environments/{id}", "delete")])
def test_spec_async_operations_take_prefer_and_answer_202(spec, path, method):
    op = spec.doc["paths"][path][method]
    params = [spec.deref(p) for p in op.get("parameters", [])]
    prefer = [p for p in params if p["name"] == "Prefer"]
    assert prefer and prefer[0]["in"] == "header" and prefer[0]["required"] is False, params
    # Any preference may be sent (RFC 7240: unknown ones are ignored), so the schema takes any string.
    assert spec.validator(prefer[0]["schema"]).is_valid("respond-async, wait=10")
    accepted = op["responses"]["202"]
    headers = {name: spec.deref(h) for name, h in accepted["headers"].items()}
    assert headers["Location"]["required"] is True
    assert headers["Preference-Applied"]["required"] is True
    applied = spec.validator(headers["Preference-Applied"]["schema"])
    assert applied.is_valid("respond-async") and not applied.is_valid("wait=10")
    if method == "delete":
        assert "content" not in accepted, "an asynchronous DELETE answers without a body"


def test_spec_async_create_body_is_a_201_body_with_status_creating(spec):
    responses = spec.doc["paths"]["/v1/environments"]["post"]["responses"]
    accepted = spec.validator(responses["202"]["content"]["application/json"]["schema"])
    created = spec.validator(responses["201"]["content"]["application/json"]["schema"])
    assert accepted.is_valid(_created_body(spec, "creating"))
    assert not accepted.is_valid(_created_body(spec, "ready"))
    without_credentials = _created_body(spec, "creating")
    del without_credentials["credentials"]
    assert not accepted.is_valid(without_credentials), "the 202 body carries the credentials"
    assert created.is_valid(_created_body(spec, "ready")) and not created.is_valid(_created_body(spec, "creating"))
    assert set(responses["202"]["links"]) == set(responses["201"]["links"])


def test_spec_status_values_and_failed_reason(spec):
    assert spec.doc["components"]["schemas"]["EnvironmentStatus"]["enum"] == [
        "creating", "ready", "degraded", "deleting", "failed"]
    env = {"id": "fraud", "name": "fraud", "team": "team-a", "vhost": "warren.team-a.fraud",
           "exchange": {"name": "fraud", "type": "direct", "durable": True},
           "queue": {"name": "fraud", "type": "quorum", "durable": True}, "routing_key": "fraud",
           "created_at": "2026-11-29T10:00:00Z", "protected": False, "users": [], "missing": [],
           "resources": {"vhost": True, "exchange": True, "queue": True, "binding": True, "user": False},
           "connection": {"host": "127.0.0.1", "port": 5672, "vhost": "warren.team-a.fraud",
                          "uri": "amqp://127.0.0.1:5672/warren.team-a.fraud"}}
    for status in ("creating", "ready", "degraded", "deleting"):
        spec.check_component("Environment", dict(env, status=status))
    assert not spec.is_valid("Environment", dict(env, status="failed")), "failed comes with a reason"
    spec.check_component("Environment", dict(env, status="failed", reason="declare queue: the broker refused"))
    assert not spec.is_valid("Environment", dict(env, status="gone"))
    summary = {k: v for k, v in env.items() if k not in ("users", "missing", "resources", "connection")}
    spec.check_component("EnvironmentSummary", summary)
    spec.check_component("EnvironmentSummary", dict(summary, status="creating"))
    assert not spec.is_valid("EnvironmentSummary", dict(summary, status="failed"))


def test_spec_platform_instance_on_every_environment_view(spec):
    platform = {"instance_id": "7f0c9a9e-2d7b-4c53-9d59-0c7f2f1b8a11", "platform": "cf-prod", "plan_id": "small"}
    for name in ("EnvironmentSummary", "Environment", "EnvironmentCreated", "EnvironmentReconciled"):
        properties = spec.doc["components"]["schemas"][name]["properties"]
        assert spec.deref(properties["platform"]) is spec.doc["components"]["schemas"]["PlatformInstance"], name
        assert "platform" not in spec.doc["components"]["schemas"][name].get("required", []), name
    schema = spec.component("PlatformInstance")
    assert schema.is_valid(platform)
    for field in platform:
        assert not schema.is_valid({k: v for k, v in platform.items() if k != field}), field
        assert not schema.is_valid(dict(platform, **{field: 7})), field
    assert not schema.is_valid(dict(platform, secret="x")), "nothing else is shown"


def test_live_prefer_respond_async_is_answered_as_the_spec_says(api_a, new_name, spec):
    """Whether or not this Warren honours the preference, its answers are ones the spec declares
    for it: 201 or 202 (with Preference-Applied and status creating) for a create, 204 or 202
    for a delete; a preference it does not know changes nothing."""
    name = new_name("prefer")
    created = api_a.request("POST", "/v1/environments", json_body={"name": name},
                            headers={"Prefer": "respond-async, wait=5"}, check_spec=False)
    assert created.status_code in (201, 202), created.text
    spec.conform(created, "POST", "/v1/environments")
    if created.status_code == 202:
        assert created.headers["Preference-Applied"] == "respond-async"
        assert created.json()["status"] == "creating"
    else:
        assert "Preference-Applied" not in created.headers
    assert created.headers["Location"] == f"/v1/environments/{name}"
    for _ in range(100):
        if api_a.get_ok(name)["status"] != "creating":
            break
        time.sleep(0.1)
    unknown = api_a.request("POST", "/v1/environments", json_body={"name": name}, headers={"Prefer": "handling=lenient"},
                            check_spec=False)
    assert unknown.status_code == 200 and "Preference-Applied" not in unknown.headers, unknown.text
    deleted = api_a.request("DELETE", f"/v1/environments/{name}", headers={"Prefer": "respond-async"}, check_spec=False)
    assert deleted.status_code in (202, 204), deleted.text
    spec.conform(deleted, "DELETE", f"/v1/environments/{name}")
    if deleted.status_code == 202:
        assert deleted.headers["Preference-Applied"] == "respond-async" and not deleted.content
    # The delete finishes in the background: the environment is gone before the test ends (and
    # before the fixture's clean-up, whose own DELETE of the vhost would race it: RabbitMQ 4.3
    # answers a DELETE of a vhost being deleted with 500).
    for _ in range(300):
        if api_a.get(name).status_code == 404:
            break
        time.sleep(0.1)
    assert api_a.get(name).status_code == 404, "the asynchronous delete did not finish within 30 s"


def test_spec_patch_body_is_the_update_parameters_not_empty(spec):
    """The PATCH body (`EnvironmentChange`) is a copy of `EnvironmentAddition` (an OSB update's
    parameters, which may be empty) with `minProperties: 1` and `protected` (a platform does not
    protect instances: docs/osb.md): a copy, not a `$ref` narrowed by a keyword beside it, which
    schemathesis's generator misreads (docs/openapi-rules.md). The two must not drift apart."""
    schemas = spec.doc["components"]["schemas"]
    change, addition = dict(schemas["EnvironmentChange"]), dict(schemas["EnvironmentAddition"])
    assert change.pop("minProperties") == 1 and "minProperties" not in addition
    change.pop("description"), addition.pop("description")
    change["properties"] = dict(change["properties"])
    assert change["properties"].pop("protected")["type"] == "boolean"
    assert change == addition
    assert spec.is_valid("EnvironmentChange", {"protected": False})
    for name in ("EnvironmentAddition", "OSBProvisionParameters"):
        assert not spec.is_valid(name, {"protected": True}), f"{name} takes protected"
    patch = spec.doc["paths"]["/v1/environments/{id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert patch == {"$ref": "#/components/schemas/EnvironmentChange"}
    assert not spec.is_valid("EnvironmentChange", {}) and spec.is_valid("EnvironmentAddition", {})
    # Each queue of a full form, a PATCH or an update names itself; the single-queue form need not.
    for name in ("EnvironmentChange", "EnvironmentAddition", "CreateEnvironmentRequest", "OSBProvisionParameters"):
        body = {"queues": [{"type": "classic"}]}
        if name == "CreateEnvironmentRequest":
            body["name"] = "fraud"
        assert not spec.is_valid(name, body), f"{name} takes a queue without a name"
        assert spec.is_valid(name, {**body, "queues": [{"name": "jobs", "type": "classic"}]}), name
    assert spec.is_valid("CreateEnvironmentRequest", {"name": "fraud", "queue": {"type": "classic"}})

"""openapi.yaml: a valid OpenAPI 3.1 document that says what the contract says, and what the
live server answers matches it.

(Every request the `Api` client makes is also checked against the spec, in every test file;
these tests make the check explicit for each kind of answer.)
"""

import pytest
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
                                   {"200", "201", "400", "401", "409", "413", "415", "502", "503"}),
    ("get", "/v1/environments"): ("listEnvironments", {"200", "401", "502", "503"}),
    ("get", "/v1/environments/{id}"): ("getEnvironment", {"200", "401", "404", "502", "503"}),
    ("delete", "/v1/environments/{id}"): ("deleteEnvironment", {"204", "401", "404", "502", "503"}),
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
        assert targets == {op: {"id": "$response.body#/id"} for op in (
            "getEnvironment", "deleteEnvironment", "updateEnvironment", "reconcileEnvironment", "issueCredentials")}


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

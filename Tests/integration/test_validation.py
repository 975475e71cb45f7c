"""POST /v1/environments input checking: 400 / 413 / 415, and that none of them touches the broker;
and the contract: openapi.yaml's request schemas and Warren take and refuse the same bodies."""

import json
import re

import pytest

import cases
from schemathesis_hooks import BEYOND_SCHEMA, beyond_schema
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


# --------------------------------------------------------------------------------------------
# The contract: openapi.yaml and Warren judge every body alike. Each case is judged twice, by
# the schema (jsonschema, against openapi.yaml) and by a live Warren, and both must give the
# verdict the case states: a drift on either side fails here. Every rule that moved into the
# schema has a case on each side of it.

OK = cases.OK
LONG = 251  # the longest name of a queue or exchange that dead-letters ("{name}.dlq", ".dlx")

# (id, body, the one field the 400 names): the schema refuses it, and so does Warren.
SCHEMA_REFUSES = [
    # the three forms do not mix
    ("blueprint-with-queues", {"name": OK, "blueprint": "jobs", "queues": [{"name": "jobs"}]}, "blueprint"),
    ("blueprint-with-exchange", {"name": OK, "blueprint": "jobs", "exchange": {"type": "topic"}}, "blueprint"),
    ("blueprint-with-limits", {"name": OK, "blueprint": "jobs", "limits": {"max_connections": 5}}, "blueprint"),
    ("blueprint-with-super-streams", {"name": OK, "blueprint": "jobs", "super_streams": [{"name": "orders", "partitions": 2}]},
     "blueprint"),
    ("queue-with-queues", {"name": OK, "queue": {"name": "a"}, "queues": [{"name": "b"}]}, "queue"),
    ("routing-key-with-queues", {"name": OK, "routing_key": "k", "queues": [{"name": "b"}]}, "routing_key"),
    ("queue-with-bindings", {"name": OK, "queue": {"type": "classic"}, "bindings": [{"queue": OK}]}, "queue"),
    ("routing-key-with-bindings", {"name": OK, "routing_key": "k", "bindings": [{"queue": OK}]}, "routing_key"),
    ("blueprint-not-a-name", {"name": OK, "blueprint": "No Such"}, "blueprint"),
    ("roles-full", {"name": OK, "roles": ["full"]}, "roles[0]"),
    # names reserved for Warren's own objects
    ("exchange-name-warren", {"name": OK, "exchange": {"name": "warren.x"}}, "exchange.name"),
    ("queue-name-warren", {"name": OK, "queue": {"name": "warren.q"}}, "queue.name"),
    ("queues-name-warren", {"name": OK, "queues": [{"name": "warren.jobs"}]}, "queues[0].name"),
    ("queue-name-dot", {"name": OK, "queue": {"name": "."}}, "queue.name"),
    ("queues-name-dotdot", {"name": OK, "queues": [{"name": "jobs"}, {"name": ".."}]}, "queues[1].name"),
    ("exchange-name-dotdot", {"name": OK, "exchange": {"name": ".."}}, "exchange.name"),
    ("binding-queue-amq", {"name": OK, "queues": [{"name": "jobs"}], "bindings": [{"queue": "amq.jobs"}]},
     "bindings[0].queue"),
    # a queue's settings together
    ("delivery-limit-classic", {"name": OK, "queue": {"type": "classic", "delivery_limit": 3}}, "queue.delivery_limit"),
    ("queues-delivery-limit-classic", {"name": OK, "queues": [{"name": "jobs", "type": "classic", "delivery_limit": 3}]},
     "queues[0].delivery_limit"),
    ("overflow-without-max-length", {"name": OK, "queue": {"overflow": "drop-head"}}, "queue.overflow"),
    ("reject-publish-dlx-default-quorum", {"name": OK, "queue": {"max_length": 10, "overflow": "reject-publish-dlx"}},
     "queue.overflow"),
    ("reject-publish-dlx-quorum", {"name": OK, "queues": [{"name": "jobs", "type": "quorum", "max_length": 10,
                                                           "overflow": "reject-publish-dlx"}]}, "queues[0].overflow"),
    ("dead-letter-queue-name-252", {"name": OK, "queues": [{"name": "q" * (LONG + 1), "dead_letter": True}]},
     "queues[0].name"),
    ("dead-letter-single-queue-name-252", {"name": OK, "queue": {"name": "q" * (LONG + 1), "dead_letter": True}},
     "queue.name"),
    ("dead-letter-exchange-name-252", {"name": OK, "exchange": {"name": "e" * (LONG + 1)},
                                       "queues": [{"name": "jobs"}, {"name": "more", "dead_letter": True}]},
     "exchange.name"),
    ("dead-letter-single-exchange-name-252", {"name": OK, "exchange": {"name": "e" * (LONG + 1)},
                                              "queue": {"dead_letter": True}}, "exchange.name"),
    # binding arguments: a headers exchange's, and AMQP's sizes
    ("arguments-on-default-direct", {"name": OK, "queues": [{"name": "jobs"}],
                                     "bindings": [{"queue": "jobs", "arguments": {"format": "pdf"}}]},
     "bindings[0].arguments"),
    ("arguments-on-topic", {"name": OK, "exchange": {"type": "topic"}, "queues": [{"name": "jobs"}],
                            "bindings": [{"queue": "jobs", "arguments": {"format": "pdf"}}]}, "bindings[0].arguments"),
    ("x-match-none", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                      "bindings": [{"queue": "jobs", "arguments": {"x-match": "none"}}]}, "bindings[0].arguments"),
    ("header-name-empty", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                           "bindings": [{"queue": "jobs", "arguments": {"": "pdf"}}]}, "bindings[0].arguments"),
    ("header-name-not-ascii", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                               "bindings": [{"queue": "jobs", "arguments": {"r\u00e9gion": "eu"}}]}, "bindings[0].arguments"),
    ("header-name-control", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                             "bindings": [{"queue": "jobs", "arguments": {"a\nb": "eu"}}]}, "bindings[0].arguments"),
    ("header-name-256", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                         "bindings": [{"queue": "jobs", "arguments": {"h" * 256: "eu"}}]}, "bindings[0].arguments"),
    ("header-value-256", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                          "bindings": [{"queue": "jobs", "arguments": {"h": "\u00e9" * 256}}]}, "bindings[0].arguments"),
    ("header-value-number", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                             "bindings": [{"queue": "jobs", "arguments": {"h": 1}}]}, "bindings[0].arguments"),
    # sizes, counted as sent
    ("bindings-65-alike", {"name": OK, "bindings": [{"queue": OK}] * 65}, "bindings"),
    ("queues-33", {"name": OK, "queues": [{"name": f"q{i}"} for i in range(33)]}, "queues"),
]

# Bodies the schema takes, and so does Warren (201).
SCHEMA_ACCEPTS = [
    ("binding-listed-twice", {"name": OK, "queues": [{"name": "jobs"}],
                              "bindings": [{"queue": "jobs"}, {"queue": "jobs", "routing_key": ""}]}),
    ("bindings-64-alike", {"name": OK, "bindings": [{"queue": OK, "routing_key": "k"}] * 64}),
    ("headers-exchange", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}, {"name": "all"}],
                          "bindings": [{"queue": "jobs", "arguments": {"x-match": "any", "format": "pdf", "Kind": "a b"}},
                                       {"queue": "all"}]}),
    ("header-value-255-not-ascii", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                                    "bindings": [{"queue": "jobs", "arguments": {"h" * 255: "\u00e9" * 255}}]}),
    ("empty-arguments-on-direct", {"name": OK, "queues": [{"name": "jobs"}],
                                   "bindings": [{"queue": "jobs", "arguments": {}}]}),
    ("bindings-without-queues", {"name": OK, "bindings": [{"queue": OK, "routing_key": "a.b"}]}),
    ("dead-letter-names-251", {"name": OK, "exchange": {"name": "e" * LONG},
                               "queues": [{"name": "q" * LONG, "dead_letter": True}]}),
    ("exchange-255-without-dead-letter", {"name": OK, "exchange": {"name": "e" * 255}, "queues": [{"name": "jobs"}]}),
    ("delivery-limit-quorum", {"name": OK, "queue": {"type": "quorum", "delivery_limit": 3}}),
    ("delivery-limit-default-type", {"name": OK, "queues": [{"name": "jobs", "delivery_limit": 3}]}),
    ("reject-publish-dlx-classic", {"name": OK, "queue": {"type": "classic", "max_length": 10,
                                                          "overflow": "reject-publish-dlx"}}),
    ("whole-number-as-float", {"name": OK, "queue": {"max_length": 10.0, "overflow": "drop-head"}}),
    ("roles-twice", {"name": OK, "roles": ["producer", "producer", "consumer"]}),
    ("near-reserved-names", {"name": OK, "exchange": {"name": "warren"}, "queue": {"name": "Warren.jobs"}}),
    ("dots-in-names", {"name": OK, "exchange": {"name": "..."}, "queues": [{"name": ".a"}, {"name": "..b"}]}),
    ("control-characters-in-a-header-value", {"name": OK, "exchange": {"type": "headers"}, "queues": [{"name": "jobs"}],
                                              "bindings": [{"queue": "jobs", "arguments": {"h": "a\u0000b\u001b[31m"}}]}),
    ("max-queues-at-its-floor", {"name": OK, "queues": [{"name": "jobs", "dead_letter": True}],
                                 "limits": {"max_queues": 3}}),
]

# Schema-valid bodies that break a rule the schema cannot state (schemathesis_hooks.BEYOND_SCHEMA):
# (id, body, the field the 400 names, the index of the rule in BEYOND_SCHEMA["POST ..."]).
CREATE = "POST /v1/environments"
BEYOND_CREATE = [
    ("unknown-blueprint", {"name": OK, "blueprint": "no-such-blueprint"}, "blueprint", 0),
    ("binding-to-no-queue", {"name": OK, "queues": [{"name": "jobs"}], "bindings": [{"queue": "jbos"}]},
     "bindings[0].queue", 1),
    ("queue-named-twice", {"name": OK, "queues": [{"name": "jobs"}, {"name": "jobs", "type": "classic"}]},
     "queues[1].name", 2),
    ("queue-named-as-a-dead-letter-queue", {"name": OK, "queues": [{"name": "jobs", "dead_letter": True},
                                                                  {"name": "jobs.dlq"}]}, "queues[1].name", 2),
    ("max-queues-below-its-floor", {"name": OK, "queues": [{"name": "a"}, {"name": "b"}],
                                    "limits": {"max_queues": 2}}, "limits.max_queues", 3),
    # The default ceiling of connections per environment (WARREN_CEILING_CONNECTIONS) is 100.
    ("above-the-operators-ceiling", {"name": OK, "limits": {"max_connections": 101}}, "limits.max_connections", 4),
    ("super-stream-named-as-the-exchange", {"name": OK, "exchange": {"name": "x"}, "super_streams": [{"name": "x", "partitions": 1}]},
     "super_streams[0].name", 5),
    ("super-stream-partition-named-as-a-queue", {"name": OK, "queues": [{"name": "o-0"}], "super_streams": [{"name": "o", "partitions": 1}]},
     "super_streams[0].name", 5),
    # 1 MiB of bytes over 4 queues: a share of 256 KiB.
    ("stream-retention-above-its-share", {"name": OK, "queues": [{"name": "s", "type": "stream", "max_length_bytes": 262145}],
                                          "limits": {"max_bytes": 1048576, "max_queues": 4}}, "queues[0].max_length_bytes", 6),
    # The default ceiling of users per environment (WARREN_CEILING_USERS) is 16.
    ("agents-above-the-users-ceiling", {"name": OK, "roles": ["producer", "consumer"],
                                        "agents": [{"name": f"a{i}", "consume": [OK]} for i in range(14)]}, "agents", 4),
    ("agent-named-twice", {"name": OK, "agents": [{"name": "a", "consume": [OK]}, {"name": "a", "consume": [OK]}]},
     "agents[1].name", 7),
    ("agent-publishing-on-a-direct-exchange", {"name": OK, "agents": [{"name": "a", "publish": ["x"]}]},
     "agents[0].publish", 8),
    ("agent-reading-no-queue", {"name": OK, "agents": [{"name": "a", "consume": ["nowhere"]}]},
     "agents[0].consume[0]", 9),
    ("agent-pattern-with-three-hashes", {"name": OK, "exchange": {"type": "topic"},
                                         "agents": [{"name": "a", "publish": ["#.a.#.b.#"]}]}, "agents[0].publish[0]", 10),
]


def _create_schema_valid(spec, body) -> bool:
    return spec.is_valid("CreateEnvironmentRequest", body)


@pytest.mark.parametrize("case_id,body,field", SCHEMA_REFUSES, ids=[c[0] for c in SCHEMA_REFUSES])
def test_contract_schema_and_warren_refuse_alike(spec, api_a, new_name, broker_unchanged, case_id, body, field):
    body = cases.fill(body, new_name("refuse"))
    assert not _create_schema_valid(spec, body), f"openapi.yaml takes {json.dumps(body)[:300]}"
    problem = assert_problem(api_a.create(body), 400, "invalid-field")
    assert problem_fields(problem) == {field}, f"errors[] must name exactly {field!r}, got {problem['errors']}"
    broker_unchanged(f"400 for {case_id}")


@pytest.mark.parametrize("case_id,body", SCHEMA_ACCEPTS, ids=[c[0] for c in SCHEMA_ACCEPTS])
def test_contract_schema_and_warren_accept_alike(spec, api_a, mgmt, new_name, case_id, body):
    name = new_name("accept")
    body = cases.fill(body, name)
    spec.check_component("CreateEnvironmentRequest", body)
    env = api_a.create_ok(body)
    assert mgmt.exchange(env["vhost"], env["exchange"]["name"]) is not None
    for queue in env["queues"]:
        assert mgmt.queue(env["vhost"], queue["name"]) is not None, queue
    # A binding listed twice is one binding, made once.
    bindings = [(b["queue"], b["routing_key"], json.dumps(b.get("arguments", {}), sort_keys=True)) for b in env["bindings"]]
    assert len(bindings) == len(set(bindings)), env["bindings"]
    if case_id in ("binding-listed-twice", "bindings-64-alike"):
        assert len(env["bindings"]) == 1, env["bindings"]
    if case_id == "roles-twice":
        assert sorted(env["role_credentials"]) == ["consumer", "producer"], env["role_credentials"]


@pytest.mark.parametrize("case_id,body,field,rule", BEYOND_CREATE, ids=[c[0] for c in BEYOND_CREATE])
def test_contract_rules_beyond_the_schema_create(spec, api_a, new_name, broker_unchanged, case_id, body, field, rule):
    """Each rule the schemathesis run takes a 400 for: the schema cannot refuse the body, Warren
    does, naming exactly that rule. Fails when the schema learns to state the rule (drop it from
    BEYOND_SCHEMA then) or when Warren stops refusing it."""
    body = cases.fill(body, new_name("beyond"))
    spec.check_component("CreateEnvironmentRequest", body)
    problem = assert_problem(api_a.create(body), 400, "invalid-field")
    assert problem_fields(problem) == {field}, problem["errors"]
    pattern_field, pattern_reason, _ = BEYOND_SCHEMA[CREATE][rule]
    for error in problem["errors"]:
        assert re.fullmatch(pattern_field, error["field"]) and re.fullmatch(pattern_reason, error["reason"]), (
            f"{error} is not the rule {BEYOND_SCHEMA[CREATE][rule][:2]}")
    assert beyond_schema(CREATE, problem)
    broker_unchanged(f"400 for {case_id}")


def test_contract_every_rule_beyond_the_schema_is_pinned():
    """BEYOND_SCHEMA lists no rule without a case above that shows it (here and for PATCH;
    BEFORE_RABBITMQ_4's by test_contract_delivery_limit_with_priorities_follows_the_broker_release)."""
    assert {c[3] for c in BEYOND_CREATE} == set(range(len(BEYOND_SCHEMA[CREATE])))
    assert {c[4] for c in BEYOND_PATCH} == set(range(len(BEYOND_SCHEMA[PATCH])))


def test_contract_beyond_the_schema_takes_no_other_400():
    """The schemathesis hook's matcher: a 400 is taken only when every error is a listed rule."""
    ok = {"type": "urn:warren:problem:invalid-field",
          "errors": [{"field": "bindings[3].queue", "reason": "must name one of the environment's queues"}]}
    assert beyond_schema(CREATE, ok)
    assert not beyond_schema(CREATE, dict(ok, errors=ok["errors"] + [{"field": "queue.type", "reason": "x"}]))
    assert not beyond_schema(CREATE, dict(ok, errors=[]))
    assert not beyond_schema(CREATE, dict(ok, type="urn:warren:problem:malformed-json"))
    assert not beyond_schema(CREATE, {"type": ok["type"], "errors": [
        {"field": "bindings[0].arguments", "reason": "only a headers exchange takes binding arguments"}]})
    assert not beyond_schema("POST /v1/environments/{id}/credentials", ok)


KEDA = "GET /v1/environments/{id}/keda"


def test_contract_rules_beyond_the_schema_keda(spec, api_a, new_name, broker_unchanged):
    """The one rule between the KEDA manifests' query parameters (BEYOND_SCHEMA[KEDA][0]): each
    value is valid for its own schema, and Warren refuses the pair, naming exactly that rule,
    before it looks for the environment; equal values are no refusal."""
    assert len(BEYOND_SCHEMA[KEDA]) == 1, "each rule of the KEDA query needs a case here"
    parameters = {p["name"]: p for p in spec.doc["paths"]["/v1/environments/{id}/keda"]["get"]["parameters"]}
    query = {"queue": "jobs", "min_replicas": 5, "max_replicas": 2}
    for name, value in query.items():
        assert spec.validator(parameters[name]["schema"]).is_valid(value), name
    name = new_name("kedarule")
    problem = assert_problem(
        api_a.request("GET", f"/v1/environments/{name}/keda?queue=jobs&min_replicas=5&max_replicas=2"), 400, "invalid-field")
    assert problem_fields(problem) == {"max_replicas"}, problem["errors"]
    pattern_field, pattern_reason, _ = BEYOND_SCHEMA[KEDA][0]
    for error in problem["errors"]:
        assert re.fullmatch(pattern_field, error["field"]) and re.fullmatch(pattern_reason, error["reason"]), error
    assert beyond_schema(KEDA, problem)
    # Equal is fine: past the parameters, the environment is looked for (there is none).
    assert_problem(api_a.request("GET", f"/v1/environments/{name}/keda?queue=jobs&min_replicas=5&max_replicas=5"),
                   404, "not-found")
    broker_unchanged("400 for the KEDA query")


# ---- PATCH: the body's schema, and the rules that depend on the environment ----------------

PATCH = "PATCH /v1/environments/{id}"


def _patch_schema_valid(spec, body) -> bool:
    schema = spec.doc["paths"]["/v1/environments/{id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    return spec.validator(schema).is_valid(body)


def _unindexed(fields):
    return {re.sub(r"\[\d+\]", "[]", f) for f in fields}


# (id, body, the field the 400 names, positions left out): the PATCH schema refuses it, and so does Warren.
PATCH_SCHEMA_REFUSES = [
    ("empty", {}, "queues"),
    ("queues-33", {"queues": [{"name": f"q{i}"} for i in range(33)]}, "queues"),
    ("queues-33-alike", {"queues": [{"name": "jobs"}] * 33}, "queues"),
    ("bindings-65-alike", {"bindings": [{"queue": OK}] * 65}, "bindings"),
    ("queue-name-warren", {"queues": [{"name": "warren.jobs"}]}, "queues[].name"),
    ("header-name-not-ascii", {"bindings": [{"queue": OK, "arguments": {"\u00e9": "x"}}]}, "bindings[].arguments"),
    ("delivery-limit-classic", {"queues": [{"name": "jobs", "type": "classic", "delivery_limit": 2}]},
     "queues[].delivery_limit"),
    ("unknown-field", {"queues": [], "exchange": {"type": "topic"}}, "exchange"),
]

# (id, what the environment is made with, the PATCH, the field the 400 names, rule index in BEYOND_SCHEMA[PATCH])
BEYOND_PATCH = [
    ("binding-to-no-queue", {}, {"bindings": [{"queue": "nope"}]}, "bindings[1].queue", 0),
    ("dead-letter-queue-named-twice", {}, {"queues": [{"name": "jobs.dlq"}, {"name": "jobs", "dead_letter": True}]},
     "queues[2].name", 1),
    ("max-queues-below-its-floor", {}, {"limits": {"max_queues": 2}, "queues": [{"name": "jobs"}]}, "limits.max_queues", 2),
    ("arguments-on-a-direct-exchange", {}, {"queues": [{"name": "jobs"}],
                                            "bindings": [{"queue": "jobs", "arguments": {"format": "pdf"}}]},
     "bindings[1].arguments", 3),
    ("dead-letter-with-a-long-exchange", {"exchange": {"name": "e" * (LONG + 1)}},
     {"queues": [{"name": "jobs", "dead_letter": True}]}, "exchange.name", 4),
    ("a-33rd-queue", {"queues": [{"name": f"q{i}"} for i in range(32)]}, {"queues": [{"name": "one-more"}]}, "queues", 5),
    ("a-65th-binding", {"bindings": [{"queue": OK, "routing_key": f"k{i}"} for i in range(64)]},
     {"bindings": [{"queue": OK, "routing_key": "one-more"}]}, "bindings", 6),
    ("above-the-operators-ceiling", {}, {"limits": {"max_bytes": (1 << 30) + 1}}, "limits.max_bytes", 7),
    # The default ceilings give each queue 1 GiB / 64 = 16 MiB.
    ("stream-retention-above-its-share", {}, {"queues": [{"name": "s", "type": "stream", "max_length_bytes": (16 << 20) + 1}]},
     "queues[1].max_length_bytes", 8),
]


@pytest.mark.parametrize("case_id,body,field", PATCH_SCHEMA_REFUSES, ids=[c[0] for c in PATCH_SCHEMA_REFUSES])
def test_contract_patch_schema_and_warren_refuse_alike(spec, api_a, new_name, case_id, body, field):
    name = new_name("patch-refuse")
    before = api_a.create_ok({"name": name})
    body = cases.fill(body, name)
    assert not _patch_schema_valid(spec, body), f"openapi.yaml takes PATCH {json.dumps(body)[:300]}"
    problem = assert_problem(api_a.request("PATCH", f"/v1/environments/{name}", json_body=body), 400, "invalid-field")
    assert _unindexed(problem_fields(problem)) == {field}, problem["errors"]
    after = api_a.get_ok(name)
    assert (after["queues"], after["bindings"]) == (before["queues"], before["bindings"]), "a 400 PATCH changed it"


@pytest.mark.parametrize("case_id,made,body,field,rule", BEYOND_PATCH, ids=[c[0] for c in BEYOND_PATCH])
def test_contract_rules_beyond_the_schema_patch(spec, api_a, mgmt, new_name, case_id, made, body, field, rule):
    """A PATCH body the schema takes, refused because of what the environment already is."""
    name = new_name("patch-beyond")
    before = api_a.create_ok(cases.fill({"name": OK, **made}, name))
    body = cases.fill(body, name)
    assert _patch_schema_valid(spec, body), f"openapi.yaml refuses PATCH {json.dumps(body)[:300]}"
    problem = assert_problem(api_a.request("PATCH", f"/v1/environments/{name}", json_body=body), 400, "invalid-field")
    assert problem_fields(problem) == {field}, problem["errors"]
    pattern_field, pattern_reason, _ = BEYOND_SCHEMA[PATCH][rule]
    for error in problem["errors"]:
        assert re.fullmatch(pattern_field, error["field"]) and re.fullmatch(pattern_reason, error["reason"]), (
            f"{error} is not the rule {BEYOND_SCHEMA[PATCH][rule][:2]}")
    assert beyond_schema(PATCH, problem)
    after = api_a.get_ok(name)
    assert (after["queues"], after["bindings"], after.get("limits")) == (
        before["queues"], before["bindings"], before.get("limits")), "a 400 PATCH changed it"
    for queue in ("jobs", "jobs.dlq", "one-more"):
        assert mgmt.queue(before["vhost"], queue) is None, f"a 400 PATCH declared {queue}"


def _broker_major(api) -> int:
    ready = api.request("GET", "/readyz")
    assert ready.status_code == 200, ready.text
    return int(ready.json()["broker"]["rabbitmq_version"].split(".")[0])


@pytest.mark.parametrize("form", ["queues", "queue"])
def test_contract_delivery_limit_with_priorities_follows_the_broker_release(spec, api_a, new_name, broker_unchanged, form):
    """BEFORE_RABBITMQ_4's rule. Before 4.0 a queue with max_priority is made classic, which has no
    delivery limit: 400, nothing made (this create used to make the environment and then find
    its own record invalid: 409 record-invalid, the environment stuck). From 4.0: 201, ready."""
    name = new_name("prio-limit")
    settings = {"max_priority": 5, "delivery_limit": 3}
    body = {"name": name, "queues": [{"name": "jobs", **settings}]} if form == "queues" else {"name": name, "queue": settings}
    spec.check_component("CreateEnvironmentRequest", body)
    if _broker_major(api_a) < 4:
        problem = assert_problem(api_a.create(body), 400, "invalid-field")
        assert problem_fields(problem) == {"queues[0].delivery_limit" if form == "queues" else "queue.delivery_limit"}
        assert beyond_schema(CREATE, problem, broker_major=3) and not beyond_schema(CREATE, problem, broker_major=4)
        broker_unchanged("400 for delivery_limit with max_priority before RabbitMQ 4")
    else:
        env = api_a.create_ok(body)
        assert (env["queue"]["type"], env["queue"]["delivery_limit"]) == ("quorum", 3), env["queue"]
        got = api_a.get_ok(name)
        assert got["status"] == "ready" and "reason" not in got, got

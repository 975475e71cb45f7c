"""schemathesis hooks for test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

openapi.yaml states every rule of Warren's request bodies that a JSON schema can state. A few
rules it cannot: they compare one value of the body with another, or with something that is
not in the body (the environment a PATCH changes, the operators' blueprints). A schema-valid
body can break them, and Warren answers it 400 `invalid-field`, by design.

So for the two operations with such rules, schemathesis's `positive_data_acceptance` is
replaced by `positive_data_acceptance_beyond_the_schema`: the same check (it calls the
built-in), except that a 400 is taken when every error in it is one of the rules listed in
BEYOND_SCHEMA for that operation, named by field and reason. Any other 400, or a 400 without
`errors`, still fails. Each rule is pinned by a test in test_validation.py that shows a
schema-valid body breaking it and Warren naming exactly it, so the list cannot outlive the
rule (if the schema learns to state one, or Warren stops refusing it, that test fails).
"""

from __future__ import annotations

import json
import os
import re

# (field pattern, reason pattern, why the schema cannot state it)
_REFERENCE = (r"bindings\[\d+\]\.queue", r"must name one of the environment's queues",
              "a binding names a queue given elsewhere (in the body, or the environment's): a "
              "reference between two values, which JSON Schema cannot compare")
_TWICE = (r"queues\[\d+\]\.name", r".+ is named twice \(dead-letter queues are \"\{queue\}\.dlq\"\)",
          "queue names are unique, counting the dead-letter queues {queue}.dlq: uniqueItems "
          "compares whole items, not one property of them, and cannot derive a suffixed name")
_MAX_QUEUES = (r"limits\.max_queues", r"must be from \d+ \(the queues Warren makes here, its claim queue included\) to 10000",
               "the floor is the number of queues Warren makes (queues, their dead-letter queues, "
               "one claim queue): a count over the body's items, which JSON Schema cannot compare with a value")

BEYOND_SCHEMA: dict[str, list[tuple[str, str, str]]] = {
    "POST /v1/environments": [
        (r"blueprint", r"no such blueprint; GET /v1/blueprints lists them",
         "blueprints are the operators' configuration (WARREN_BLUEPRINTS_FILE), not part of the "
         "contract; the schema states their names' form only"),
        _REFERENCE, _TWICE, _MAX_QUEUES,
    ],
    # A PATCH is checked as the environment will be after it: these depend on the environment.
    "PATCH /v1/environments/{id}": [
        _REFERENCE, _TWICE, _MAX_QUEUES,
        (r"bindings\[\d+\]\.arguments", r"only a headers exchange takes binding arguments",
         "the exchange's type is the environment's, not in the PATCH body"),
        (r"exchange\.name", r"must be at most 251 characters when a queue dead-letters \(\"\{exchange\}\.dlx\" is made\)",
         "the exchange's name is the environment's, not in the PATCH body"),
        (r"queues", r"may have at most 32 queues", "the environment's queues count, not the body's only"),
        (r"bindings", r"may have at most 64 bindings", "the environment's bindings count, not the body's only"),
    ],
}


# Only on a broker before RabbitMQ 4.0: a queue with max_priority is made classic there, and a
# classic queue takes no delivery limit. The broker's release is not in the contract.
BEFORE_RABBITMQ_4 = [
    (r"(queues\[\d+\]|queue)\.delivery_limit", r"needs a quorum queue(; before RabbitMQ 4\.0 a queue with max_priority is made classic)?",
     "before RabbitMQ 4.0 a queue with max_priority is classic, so delivery_limit and max_priority do "
     "not go together there; from 4.0 they do: a rule of the broker's release"),
]


def rules_for(operation: str, broker_major: int | None = None) -> list[tuple[str, str, str]]:
    """The rules a 400 for `operation` may name on a broker of that major release."""
    rules = list(BEYOND_SCHEMA.get(operation, []))
    if operation in BEYOND_SCHEMA and broker_major is not None and broker_major < 4:
        rules += BEFORE_RABBITMQ_4
    return rules


def beyond_schema(operation: str, problem, broker_major: int | None = None) -> bool:
    """True when `problem` (a decoded 400 body) names only rules of BEYOND_SCHEMA[operation]
    (and BEFORE_RABBITMQ_4 on such a broker)."""
    rules = rules_for(operation, broker_major)
    if not isinstance(problem, dict) or problem.get("type") != "urn:warren:problem:invalid-field":
        return False
    errors = problem.get("errors")
    if not isinstance(errors, list) or not errors:
        return False
    return all(isinstance(e, dict) and any(re.fullmatch(f, str(e.get("field"))) and re.fullmatch(r, str(e.get("reason")))
                                           for f, r, _ in rules)
               for e in errors)


try:
    import schemathesis
    from schemathesis.openapi.checks import RejectedPositiveData
    from schemathesis.specs.openapi.checks import positive_data_acceptance as _builtin
except ImportError:  # imported by the pytest side for BEYOND_SCHEMA alone
    schemathesis = None

def _journal(entry: dict) -> None:
    """One line per judged response to WARREN_ST_HOOK_JOURNAL, so the test can show the check
    ran and what it took (shrinking may judge a response twice: counts are approximate)."""
    path = os.environ.get("WARREN_ST_HOOK_JOURNAL")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


if schemathesis is not None:
    @schemathesis.check
    def positive_data_acceptance_beyond_the_schema(ctx, response, case):
        """`positive_data_acceptance` for the operations of BEYOND_SCHEMA (where the built-in is
        disabled by test_schemathesis.py's config), taking a 400 that names only their rules."""
        operation = case.operation.label
        if operation not in BEYOND_SCHEMA:
            return None  # the built-in check judges every other operation
        try:
            result = _builtin(ctx, response, case)
        except RejectedPositiveData:
            if response.status_code == 400:
                try:
                    problem = json.loads(response.content)
                except ValueError:
                    problem = None
                major = os.environ.get("WARREN_ST_BROKER_MAJOR")
                if beyond_schema(operation, problem, int(major) if major else None):
                    _journal({"operation": operation, "status": 400,
                              "fields": sorted({e["field"] for e in problem["errors"]})})
                    return None
            _journal({"operation": operation, "status": response.status_code, "refused": True,
                      "body": response.content[:2000].decode(errors="replace")})
            raise
        if case.meta is not None and case.meta.generation.mode.is_positive:
            _journal({"operation": operation, "status": response.status_code})
        return result

"""schemathesis against a running warren and the real broker: every operation of openapi.yaml,
its examples, coverage and fuzzing phases, and the stateful phase along the spec's links
(createEnvironment -> get/delete). Every check, `positive_data_acceptance` included: zero
server errors, zero responses that break the spec (status, content type, headers, body
schema), zero schema-invalid bodies taken and zero schema-valid bodies refused.

Runs as its own team with a token of its own, so the generated environments never meet other
tests' (and are all removed afterwards). Bounded in cases (WARREN_SCHEMATHESIS_MAX_EXAMPLES), with
a time limit against a hang only (WARREN_SCHEMATHESIS_MAX_TIME, 900 s by default); the seed is
fixed for a reproducible CI (WARREN_SCHEMATHESIS_SEED to change it).
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import pika
import pytest
import requests

from schemathesis_hooks import BEYOND_SCHEMA
from schemathesis_runner import MAX_TIME, SEED, judged_positive_answers, run_schemathesis
from warren_support import (WarrenProcess, amqp_params_from_uri, assert_problem, record_response_secrets, record_secret, seg,
                            sha256_hex, tail)


# Every check (schemathesis runs all of them unless told otherwise). For the two operations
# whose bodies have rules a JSON schema cannot state (a binding names one of the queues, no
# queue name twice, max_queues counts the queues, a blueprint exists; PATCH: the same, judged
# on the environment as it will be; before RabbitMQ 4, delivery_limit not with max_priority),
# and the one whose query parameters do (the KEDA manifests: max_replicas not below min_replicas),
# the built-in positive_data_acceptance is replaced by schemathesis_hooks.py's
# positive_data_acceptance_beyond_the_schema: the built-in check, except that a 400 naming only
# those rules (schemathesis_hooks.BEYOND_SCHEMA, each pinned by a test in test_validation.py)
# is taken. Every other rule is in openapi.yaml, so a schema-valid body that breaks it cannot
# be generated. The checks are chosen here, not with `--checks all` on the command line: a
# check named there overrides the per-operation `enabled = false` below.
CHECKS_CONFIG = """
[checks]
enabled = true

[[operations]]
include-operation-id = ["createEnvironment", "updateEnvironment", "getKedaManifests", "issueCredentials"]
checks.positive_data_acceptance.enabled = false

# After a DELETE with `Prefer: respond-async` (202: accepted, not done), a GET of the environment
# answers `"status": "deleting"` until it is gone: `use_after_free` is replaced there by
# schemathesis_hooks.py's use_after_free_but_deprovisioning, which takes that answer and no other.
[[operations]]
include-operation-id = "getEnvironment"
checks.use_after_free.enabled = false
"""
# Operations on an existing environment that no link of the spec leads to: a second run gives
# them one the test made, so they reach Warren's logic instead of a 404 for a generated id.
ON_SEED = ["updateEnvironment", "reconcileEnvironment", "issueCredentials", "revokeCredentials", "getQueueDepths",
           "getKedaManifests"]


@pytest.fixture
def st_team(workdir):
    team = f"st{secrets.token_hex(3)}"
    token = secrets.token_urlsafe(32)
    record_secret(token, f"bearer token of {team}")
    path = workdir / f"tokens-{team}"
    path.write_text(f"{team} {sha256_hex(token)}\n")
    return team, token, path


@pytest.fixture
def st_warren(settings, warren_env, workdir, st_team, mgmt):
    team, _, tokens_path = st_team
    env = dict(warren_env, WARREN_TOKENS_FILE=str(tokens_path))
    proc = WarrenProcess(settings.warren_bin, env, workdir, f"schemathesis-{team}").start()
    yield proc
    try:
        proc.stop_cleanly()
    finally:
        prefix = f"warren.{team}."
        # Generated bodies protect some environments from deletion (on RabbitMQ 4.1+ on the
        # broker too): purge_environment lifts that first.
        for vhost in sorted(v for v in mgmt.vhost_names() if v.startswith(prefix)):
            mgmt.purge_environment(vhost)
        for user in mgmt.users_with_prefix(prefix):
            mgmt.delete(f"users/{seg(user)}")


def _run(label: str, warren: WarrenProcess, token: str, workdir: Path, extra: list[str], budget: int,
         config: Path, broker_major: int) -> dict:
    return run_schemathesis(label, warren.url, ["--header", f"Authorization: Bearer {token}"], workdir, extra, budget, config,
                            {"WARREN_ST_BROKER_MAJOR": str(broker_major)})


def test_schemathesis_finds_no_server_error_and_no_spec_violation(st_warren, st_team, tmp_path, report):
    team, token, _ = st_team
    # 1. Every operation, every phase, the stateful one along the spec's links.
    ready = requests.get(f"{st_warren.url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    broker_major = int(ready.json()["broker"]["rabbitmq_version"].split(".")[0])
    checks_config = tmp_path / "checks.toml"
    checks_config.write_text(CHECKS_CONFIG)
    full = _run("all-operations", st_warren, token, tmp_path,
                ["--phases", "examples,coverage,fuzzing,stateful"], MAX_TIME, config=checks_config,
                broker_major=broker_major)
    # 2. The operations on an existing environment, against one made here.
    headers = {"Authorization": f"Bearer {token}"}
    created = requests.post(f"{st_warren.url}/v1/environments", json={"name": "st-seed"}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    record_response_secrets(created.content)
    username = created.json()["credentials"]["username"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(CHECKS_CONFIG + f"""
[[operations]]
include-operation-id = ["updateEnvironment", "reconcileEnvironment", "issueCredentials"]
parameters = {{ id = "st-seed" }}

[[operations]]
include-operation-id = "revokeCredentials"
parameters = {{ id = "st-seed", username = "{username}" }}

[[operations]]
include-operation-id = "getQueueDepths"
parameters = {{ id = "st-seed" }}

[[operations]]
include-operation-id = "getKedaManifests"
parameters = {{ id = "st-seed", queue = "st-seed" }}
""")
    seeded = _run("seeded", st_warren, token, tmp_path,
                  ["--phases", "examples,coverage,fuzzing",
                   *[arg for op in ON_SEED for arg in ("--include-operation-id", op)]], MAX_TIME, config=config,
                  broker_major=broker_major)

    for run in (full, seeded):
        report("schemathesis", f"{run['label']}: {run['cases']} generated cases in {run['elapsed']:.0f} s "
                               f"(seed {SEED}), exit {run['rc']}, {run['passwords']} responses with passwords")
    # The replacement check ran, on positive cases of both operations, and what it took.
    judged = judged_positive_answers(tmp_path / "hook-journal.jsonl", BEYOND_SCHEMA, report)
    for op, entries in judged.items():
        assert entries, f"positive_data_acceptance_beyond_the_schema never judged {op}: is the hook loaded?"
    for run in (full, seeded):
        assert run["rc"] == 0, (f"schemathesis ({run['label']}) found problems (exit {run['rc']}). Its output:\n"
                                f"{run['output'][-12000:]}\nwarren's log:\n{tail(st_warren.log_path, 30)}")
    output = full["output"]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", output), f"phase {phase} did not pass:\n{output[-3000:]}"
    assert full["cases"] + seeded["cases"] >= 300, f"only {full['cases']} + {seeded['cases']} cases were generated"
    assert st_warren.running, f"warren died during the run:\n{tail(st_warren.log_path)}"


# --------------------------------------------------------------------------------------------
# What schemathesis found, pinned down as plain regression tests


@pytest.mark.parametrize("limits", [{"max_queues": 5}, {}], ids=["raise-max-queues", "remove-limits"])
def test_patch_that_loosens_limits_and_adds_a_queue_is_not_a_5xx(api_a, new_name, mgmt, limits):
    """Found by schemathesis (seeded run): with max_queues at its floor, a PATCH that raises or
    removes the limit and adds a queue in the same body was answered 502 ("the broker failed to
    declare queue"): the new queue was declared while the old vhost limit still held."""
    name = new_name("limits")
    env = api_a.create_ok({"name": name})
    tight = api_a.request("PATCH", f"/v1/environments/{name}", json_body={"limits": {"max_queues": 2}})
    assert tight.status_code == 200, tight.text
    resp = api_a.request("PATCH", f"/v1/environments/{name}",
                         json_body={"limits": limits, "queues": [{"name": "more"}]})
    assert resp.status_code < 500, f"PATCH {limits} + a queue: {resp.status_code} {resp.text[:500]}"
    if resp.status_code == 200:
        body = resp.json()
        assert "more" in [q["name"] for q in body["queues"]], body
        assert mgmt.queue(env["vhost"], "more") is not None, "the answer lists a queue the broker lacks"
        on_broker = mgmt.get_json(f"vhost-limits/{seg(env['vhost'])}") or [{}]
        value = on_broker[0].get("value", {}) if on_broker else {}
        # Limits left out are the operator's ceilings, never unlimited.
        assert value.get("max-queues") == body["limits"]["max_queues"] == limits.get("max_queues", body["limits"]["max_queues"]), (value, limits)
        assert value.get("max-queues", -1) > 0 and value.get("max-connections", -1) > 0, value


def test_delete_with_a_single_active_consumer_quorum_queue_is_not_a_5xx(api_a, new_name, mgmt):
    """Found by schemathesis on RabbitMQ 4.3 (stateful phase: a create, then its DELETE): RabbitMQ 4
    refuses basic.get on a quorum queue with a single active consumer (RESOURCE_LOCKED), which
    the DELETE's check that the queues are empty used: 502, and such an environment could only
    go with force=true, unchecked. The queue's statistics answer for it now (on RabbitMQ 3 the
    queue is still asked itself)."""
    queues = [{"name": "jobs", "single_active_consumer": True}, {"name": "other"}]
    empty = new_name("sac-empty")
    api_a.create_ok({"name": empty, "queues": queues})
    resp = api_a.delete(empty)
    assert resp.status_code == 204, f"DELETE of an empty environment: {resp.status_code} {resp.text[:300]}"

    name = new_name("sac-full")
    env = api_a.create_ok({"name": name, "queues": queues})
    conn = pika.BlockingConnection(amqp_params_from_uri(env["connection"]["uri"]))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(env["exchange"]["name"], "jobs", b"keep me", mandatory=True)
    finally:
        conn.close()
    deadline = time.monotonic() + 30
    while (mgmt.queue(env["vhost"], "jobs") or {}).get("messages", 0) < 1:  # the statistics lag
        assert time.monotonic() < deadline, "the queue's statistics never showed the message"
        time.sleep(0.5)
    refused = api_a.delete(name)
    assert_problem(refused, 409, "messages-pending")
    assert mgmt.queue(env["vhost"], "jobs")["messages"] == 1, "a refused DELETE lost the message"
    forced = api_a.request("DELETE", f"/v1/environments/{name}?force=true")
    assert forced.status_code == 204, forced.text

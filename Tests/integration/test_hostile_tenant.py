"""A hostile tenant, with its own full credentials from a create, against Warren's own objects.

Warren keeps an environment's record in two places a tenant must never write: the vhost's
description (administrators only) and the arguments of the claim queue `warren.claim` inside the
tenant's own vhost. A tenant's full credentials are `^(?!warren\\.).*` for configure, write and
read, so the broker itself refuses (AMQP 403 ACCESS_REFUSED) every delete, redeclare (with a
forged `x-warren-record`), purge, bind and consume of the claim queue, and the declaration of
any other `warren.`-named object.

Older environments gave full users `.*`. Such a legacy tenant could replace the claim and its
record, and an operator's mistake can leave a forged record in a description. So the record is
validated against the vhost it is found in, and these tests simulate both through the
management API as `guest` (wide permissions, forged records naming team-b's environment, state
`deleting`, revocations of `guest` - the broker admin and Warren's own user here - and an empty
spec), then drive Warren (repeated creates, reconcile, PATCH, rotation, GET, DELETE, a janitor
sweeping every second) and check that:

- team-b's environment still exists and works with pika; `guest` still exists and works;
- every warren is alive and answering;
- the tenant's environment is reported `degraded` with a `reason` (or repaired), and each
  mutating call answers 409 `record-invalid`;
- a legacy full user is regranted the narrow permissions by the janitor and by reconcile.

Each test would fail without the protection it checks: with `.*` permissions the pika calls in
the first test succeed (the legacy test does exactly that as its control), and a Warren that
trusted a forged record would delete team-b's vhost, revoke `guest`, or crash/answer 5xx.
"""

from __future__ import annotations

import json
import time

import pika
import pika.exceptions
import pytest
import requests

from warren_support import (SWEEPING_WARREN, Api, amqp_params, assert_problem, log_lines,
                            publish_and_get, seg, vhost_of, wait_for)

CLAIM = "warren.claim"
RECORD_ARG = "x-warren-record"
NARROW = "^(?!warren\\.).*"
SWEEPS_TO_WATCH = 4.0  # seconds of a janitor sweeping every second


# --------------------------------------------------------------------------------------------
# helpers


def connect(env: dict, creds: dict | None = None) -> pika.BlockingConnection:
    c, creds = env["connection"], creds or env["credentials"]
    return pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"],
                                               creds["password"]))


def refused_code(conn: pika.BlockingConnection, action) -> int | None:
    """Runs action(channel) on a fresh channel: the broker's reply code when it closes the
    channel, None when the action went through."""
    ch = conn.channel()
    try:
        action(ch)
    except pika.exceptions.ChannelClosedByBroker as e:
        return e.reply_code
    try:
        ch.close()
    except pika.exceptions.AMQPError:
        pass
    return None


def record_of(mgmt, vhost: str) -> dict:
    return json.loads(mgmt.vhost(vhost)["description"])


def forged_from(real_record: dict, **changes) -> dict:
    forged = json.loads(json.dumps(real_record))
    forged.update(changes)
    return forged


def hostile_revocations(*users: str) -> dict:
    return {u: "2000-01-01T00:00:00Z" for u in users}


def assert_other_team_intact(api_b: Api, mgmt, env_b: dict) -> None:
    """team-b's environment exists, is ready, its user exists and pika works with it."""
    got = api_b.get(env_b["id"], check_spec=False)
    assert got.status_code == 200 and got.json()["status"] == "ready", got.text[:1000]
    assert mgmt.vhost(env_b["vhost"]) is not None, "team-b's vhost is gone"
    assert mgmt.user(env_b["credentials"]["username"]) is not None, "team-b's user is gone"
    conn = connect(env_b)
    try:
        body = f"b-still-works-{time.monotonic()}".encode()
        assert publish_and_get(conn, env_b["exchange"]["name"], env_b["routing_key"],
                               env_b["queue"]["name"], body) == body
    finally:
        conn.close()


def assert_guest_intact(settings) -> None:
    resp = requests.get(f"{settings.management_url}/api/whoami", auth=("guest", "guest"), timeout=10)
    assert resp.status_code == 200 and resp.json()["name"] == "guest", (
        f"the broker admin / Warren's own user 'guest' no longer works: {resp.status_code} {resp.text[:200]}")


def assert_alive(*procs) -> None:
    for proc in procs:
        assert proc.running, f"{proc.describe()} died; its log ends with:\n" + open(proc.log_path).read()[-3000:]
        assert requests.get(f"{proc.url}/healthz", timeout=5).status_code == 200, proc.describe()
        assert requests.get(f"{proc.url}/readyz", timeout=10).status_code == 200, proc.describe()


def full_permissions(mgmt, user: str, vhost: str) -> tuple[str, str, str] | None:
    for p in mgmt.user_permissions(user):
        if p["vhost"] == vhost:
            return p["configure"], p["write"], p["read"]
    return None


def set_wide_permissions(mgmt, user: str, vhost: str) -> None:
    mgmt.put_json(f"permissions/{seg(vhost)}/{seg(user)}", {"configure": ".*", "write": ".*", "read": ".*"})


def write_description(mgmt, vhost: str, description: str) -> None:
    info = mgmt.vhost(vhost)
    mgmt.put_json(f"vhosts/{seg(vhost)}", {"description": description, "tags": "warren",
                                           "default_queue_type": info.get("default_queue_type") or "quorum"})


def drive_warren(api: Api, env: dict) -> dict[str, requests.Response]:
    """Every call a user makes on the environment; the answers by call."""
    name = env["id"]
    answers = {}
    for i in range(3):
        answers[f"create#{i}"] = api.create({"name": name}, check_spec=False)
    answers["reconcile"] = api.request("POST", f"/v1/environments/{name}/reconcile", check_spec=False)
    answers["patch"] = api.request("PATCH", f"/v1/environments/{name}", check_spec=False,
                                   json_body={"queues": [{"name": "added", "type": "classic"}]})
    answers["rotate"] = api.request("POST", f"/v1/environments/{name}/credentials", check_spec=False,
                                    json_body={"revoke_others_after_seconds": 0})
    answers["get"] = api.get(name, check_spec=False)
    answers["list"] = api.list(check_spec=False)
    answers["delete"] = api.delete(name, check_spec=False)
    return answers


def describe(answers: dict[str, requests.Response]) -> str:
    return "\n".join(f"  {k}: {r.status_code} {r.text[:300]}" for k, r in answers.items())


@pytest.fixture
def client(warren, tokens):
    """client(team, proc=None) -> Api WITHOUT the OpenAPI check (see
    test_degraded_answer_for_an_invalid_record_conforms_to_openapi for the contract): this file
    checks behaviour, and a contract mismatch must not hide it."""

    def make(team: str, proc=None) -> Api:
        return Api((proc or warren).url, tokens[team])

    return make


@pytest.fixture
def api_a(client) -> Api:
    return client("team-a")


@pytest.fixture
def sweeper(warren_factory):
    """A warren whose janitor sweeps every second."""
    return warren_factory("hostile", **SWEEPING_WARREN)


@pytest.fixture
def victim(client, sweeper, new_name):
    """team-b's environment: what a forged record names."""
    api_b = client("team-b", sweeper)
    env_b = api_b.create_ok({"name": new_name("victim"), "queue": {"type": "classic"}})
    return api_b, env_b


# --------------------------------------------------------------------------------------------
# the broker refuses the tenant


def test_tenant_cannot_touch_the_claim_queue(client, sweeper, victim, new_name, mgmt, settings):
    api_b, env_b = victim
    api = client("team-a", sweeper)
    env = api.create_ok({"name": new_name("hostile"), "queue": {"type": "classic"}})
    vhost, user = env["vhost"], env["credentials"]["username"]
    assert full_permissions(mgmt, user, vhost) == (NARROW, NARROW, NARROW)
    claim_before = mgmt.queue(vhost, CLAIM)
    assert claim_before is not None, "no claim queue to attack"
    args = claim_before["arguments"]
    real_b = record_of(mgmt, env_b["vhost"])
    forged_b = forged_from(real_b, state="deleting",
                           revocations=hostile_revocations("guest", env_b["credentials"]["username"]))
    forged_empty = forged_from(json.loads(args[RECORD_ARG]), spec={"queues": []})

    conn = connect(env)
    try:
        attacks = {
            "delete": lambda ch: ch.queue_delete(CLAIM),
            "redeclare with team-b's deleting record": lambda ch: ch.queue_declare(
                CLAIM, durable=True, arguments={**{k: v for k, v in args.items() if k != RECORD_ARG},
                                                RECORD_ARG: json.dumps(forged_b)}),
            "redeclare with an empty spec": lambda ch: ch.queue_declare(
                CLAIM, durable=True, arguments={**{k: v for k, v in args.items() if k != RECORD_ARG},
                                                RECORD_ARG: json.dumps(forged_empty)}),
            "purge": lambda ch: ch.queue_purge(CLAIM),
            "bind": lambda ch: ch.queue_bind(CLAIM, env["exchange"]["name"], "steal"),
            "consume": lambda ch: ch.basic_consume(CLAIM, lambda *a: None),
            "get": lambda ch: ch.basic_get(CLAIM),
            "declare another warren. queue": lambda ch: ch.queue_declare("warren.mine", durable=True),
            "declare a warren. exchange": lambda ch: ch.exchange_declare("warren.x", "direct", durable=True),
        }
        codes = {what: refused_code(conn, attack) for what, attack in attacks.items()}
        # Control: the same connection still does ordinary work in its own vhost.
        assert refused_code(conn, lambda ch: ch.queue_declare("tenant-own", durable=True)) is None
    finally:
        conn.close()
    not_refused = {what: code for what, code in codes.items() if code != 403}
    assert not not_refused, f"the broker did not refuse (403) these: {not_refused}"

    claim_after = mgmt.queue(vhost, CLAIM)
    assert claim_after is not None and claim_after["arguments"] == args, claim_after
    assert mgmt.queue(vhost, "warren.mine") is None and mgmt.exchange(vhost, "warren.x") is None
    got = api.get_ok(env["id"])
    assert got["status"] == "ready", got
    assert_other_team_intact(api_b, mgmt, env_b)
    assert_guest_intact(settings)


@pytest.mark.parametrize("kind", ["queue", "exchange"])
def test_the_api_refuses_warren_names(api_a, new_name, broker_unchanged, kind):
    name = new_name("reserved")
    body = {"name": name, kind: {"name": "warren.claim" if kind == "queue" else "warren.x"}}
    assert_problem(api_a.create(body), 400, "invalid-field")
    broker_unchanged("a create naming a warren. resource")


# --------------------------------------------------------------------------------------------
# a legacy tenant (full user with `.*`) replaces the claim


def test_legacy_tenant_forging_the_claim_hurts_nobody_and_is_regranted(
        client, sweeper, warren, victim, new_name, mgmt, settings):
    api_b, env_b = victim
    api = client("team-a", sweeper)
    env = api.create_ok({"name": new_name("legacy"), "queue": {"type": "classic"}})
    vhost, user = env["vhost"], env["credentials"]["username"]
    args = mgmt.queue(vhost, CLAIM)["arguments"]
    forged_b = forged_from(record_of(mgmt, env_b["vhost"]), state="deleting",
                           revocations=hostile_revocations("guest", env_b["credentials"]["username"]))

    # A janitor sweeping every second would regrant at once: do the attack inside one AMQP
    # session right after widening, and check the attack itself worked (the control: this is
    # what the narrow regexes prevent).
    set_wide_permissions(mgmt, user, vhost)
    conn = connect(env)
    try:
        deleted = refused_code(conn, lambda ch: ch.queue_delete(CLAIM))
        redeclared = refused_code(conn, lambda ch: ch.queue_declare(
            CLAIM, durable=True, arguments={**{k: v for k, v in args.items() if k != RECORD_ARG},
                                            RECORD_ARG: json.dumps(forged_b)}))
    finally:
        conn.close()
    if deleted is not None or redeclared is not None:
        pytest.fail(f"control failed: with '.*' permissions the tenant could not replace the claim "
                    f"(delete {deleted}, redeclare {redeclared}); did the janitor regrant within "
                    f"milliseconds?")
    assert json.loads(mgmt.queue(vhost, CLAIM)["arguments"][RECORD_ARG])["team"] == "team-b"

    answers = drive_warren(api, env)
    time.sleep(SWEEPS_TO_WATCH)

    server_errors = {k: r.status_code for k, r in answers.items() if r.status_code >= 500}
    assert not server_errors, f"5xx answers:\n{describe(answers)}"
    assert_alive(sweeper, warren)
    assert_other_team_intact(api_b, mgmt, env_b)
    assert_guest_intact(settings)
    assert mgmt.user(env_b["credentials"]["username"]) is not None
    # The tenant's environment: repaired, or degraded with a reason, or (the DELETE above) gone.
    got = api.get(env["id"], check_spec=False)
    assert got.status_code in (200, 404), got.text[:500]
    if got.status_code == 200:
        body = got.json()
        assert body["status"] == "ready" or (body["status"] == "degraded" and body.get("reason")), body
    # And its full user no longer has '.*' (the janitor regranted it, or it is gone).
    perms = full_permissions(mgmt, user, vhost)
    assert perms is None or ".*" not in perms, (
        f"after {SWEEPS_TO_WATCH:.0f} s of sweeps the legacy user still has {perms}:\n{describe(answers)}")


def test_legacy_permissions_are_regranted_by_reconcile(client, warren_factory, new_name, mgmt):
    # No periodic sweeps here (only the one at start-up, before the environment exists), so
    # only reconcile can be what regrants.
    proc = warren_factory("no-sweep", WARREN_SWEEP_INTERVAL_SECONDS="3600")
    api = client("team-a", proc)
    env = api.create_ok({"name": new_name("legacy-rec")})
    vhost, user = env["vhost"], env["credentials"]["username"]
    set_wide_permissions(mgmt, user, vhost)
    assert full_permissions(mgmt, user, vhost) == (".*", ".*", ".*")
    resp = api.request("POST", f"/v1/environments/{env['id']}/reconcile")
    assert resp.status_code == 200, resp.text[:500]
    assert full_permissions(mgmt, user, vhost) == (NARROW, NARROW, NARROW)
    conn = connect(env)
    try:
        assert refused_code(conn, lambda ch: ch.queue_delete(CLAIM)) == 403
    finally:
        conn.close()


def test_legacy_permissions_are_regranted_by_the_janitor(client, sweeper, new_name, mgmt):
    api = client("team-a", sweeper)
    env = api.create_ok({"name": new_name("legacy-jan")})
    vhost, user = env["vhost"], env["credentials"]["username"]
    set_wide_permissions(mgmt, user, vhost)
    wait_for(lambda: full_permissions(mgmt, user, vhost) == (NARROW, NARROW, NARROW), timeout=10,
             what="the janitor (sweeping every second) regrants the legacy full user")


# --------------------------------------------------------------------------------------------
# forged records in the vhost description


def _forgeries(real: dict, env_b: dict, user_b: str) -> dict[str, str]:
    return {
        "team-b's record, deleting, revoking guest": json.dumps(forged_from(
            json.loads(env_b["record"]), state="deleting", revocations=hostile_revocations("guest", user_b))),
        "own name, deleting, revoking guest and team-b's user": json.dumps(forged_from(
            real, state="deleting", revocations=hostile_revocations("guest", user_b))),
        "own name, empty spec": json.dumps(forged_from(real, spec={"queues": []})),
        "own name, creating, ten minutes old, revoking guest": json.dumps(forged_from(
            real, state="creating", created_at="2000-01-01T00:00:00Z",
            revocations=hostile_revocations("guest"))),
        "garbage with warren_format": '{"warren_format": 1, "team": ',
    }


FORGERY_KINDS = ["team-b's record, deleting, revoking guest",
                 "own name, deleting, revoking guest and team-b's user",
                 "own name, empty spec",
                 "own name, creating, ten minutes old, revoking guest",
                 "garbage with warren_format"]


@pytest.mark.parametrize("kind", FORGERY_KINDS)
def test_forged_record_in_the_description(kind, client, sweeper, warren, victim, new_name, mgmt,
                                          settings):
    api_b, env_b = victim
    env_b = {**env_b, "record": mgmt.vhost(env_b["vhost"])["description"]}
    api = client("team-a", sweeper)
    env = api.create_ok({"name": new_name("forged"), "queue": {"type": "classic"}})
    vhost, user = env["vhost"], env["credentials"]["username"]
    forged = _forgeries(record_of(mgmt, vhost), env_b, env_b["credentials"]["username"])[kind]
    set_wide_permissions(mgmt, user, vhost)  # a legacy environment, too
    write_description(mgmt, vhost, forged)

    answers = drive_warren(api, env)
    time.sleep(SWEEPS_TO_WATCH)

    problems = []
    for call in ("create#0", "create#1", "create#2", "reconcile", "patch", "rotate", "delete"):
        r = answers[call]
        if r.status_code != 409 or r.json().get("type") != "urn:warren:problem:record-invalid":
            problems.append(f"{call}: expected 409 record-invalid, got {r.status_code} {r.text[:300]}")
    get = answers["get"]
    if get.status_code != 200 or get.json().get("status") != "degraded" or not get.json().get("reason"):
        problems.append(f"get: expected 200 degraded with a reason, got {get.status_code} {get.text[:500]}")
    if answers["list"].status_code != 200:
        problems.append(f"list: {answers['list'].status_code} {answers['list'].text[:300]}")
    assert not problems, "\n".join(problems) + f"\nall answers:\n{describe(answers)}"

    assert_alive(sweeper, warren)
    assert_other_team_intact(api_b, mgmt, env_b)
    assert_guest_intact(settings)
    # The janitor left it alone: the vhost and its parts are still there, the record untouched,
    # and it said so at error level.
    assert mgmt.vhost(vhost) is not None and mgmt.vhost(vhost)["description"] == forged
    assert mgmt.queue(vhost, env["queue"]["name"]) is not None
    assert mgmt.user(user) is not None
    errors = [l for l in log_lines(sweeper.log_path, "error") if vhost in json.dumps(l)]
    assert errors, f"no error-level log line names {vhost} (the janitor must report an invalid record)"

    # ?force=true removes this vhost and its users, and nothing of team-b's.
    forced = api.request("DELETE", f"/v1/environments/{env['id']}?force=true", check_spec=False)
    assert forced.status_code == 204, forced.text[:500]
    assert mgmt.vhost(vhost) is None and not mgmt.users_with_prefix(vhost + ".")
    assert api.get(env["id"], check_spec=False).status_code == 404
    time.sleep(2)  # two more sweeps
    assert_other_team_intact(api_b, mgmt, env_b)
    assert_guest_intact(settings)
    assert_alive(sweeper, warren)


def test_get_of_env_whose_record_is_invalid_is_200_degraded_not_a_crash(api_a, warren, new_name, mgmt):
    env = api_a.create_ok({"name": new_name("invalid-get")})
    vhost = env["vhost"]
    real = record_of(mgmt, vhost)
    for description in (json.dumps(forged_from(real, team="team-b")),
                        json.dumps(forged_from(real, spec={"queues": []})),
                        json.dumps(forged_from(real, incarnation="NOT-HEX!")),
                        '{"warren_format": 1}'):
        write_description(mgmt, vhost, description)
        resp = api_a.get(env["id"], check_spec=False)
        assert resp.status_code == 200, f"{description[:120]}: {resp.status_code} {resp.text[:500]}"
        body = resp.json()
        assert body["status"] == "degraded" and isinstance(body.get("reason"), str) and body["reason"], body
        listed = api_a.list(check_spec=False)
        assert listed.status_code == 200, listed.text[:500]
        assert warren.running and requests.get(f"{warren.url}/healthz", timeout=5).status_code == 200
    write_description(mgmt, vhost, json.dumps(real))
    assert api_a.get_ok(env["id"])["status"] == "ready"


def test_degraded_answer_for_an_invalid_record_conforms_to_openapi(warren, tokens, new_name, mgmt, spec):
    """The degraded answer (with `reason`) must still be one openapi.yaml declares."""
    api_a = Api(warren.url, tokens["team-a"])
    env = api_a.create_ok({"name": new_name("invalid-spec")})
    write_description(mgmt, env["vhost"], json.dumps(forged_from(record_of(mgmt, env["vhost"]), team="team-b")))
    resp = api_a.get(env["id"], check_spec=False)
    assert resp.status_code == 200 and resp.json()["status"] == "degraded", resp.text[:500]
    spec.conform(resp, "GET", f"/v1/environments/{env['id']}")

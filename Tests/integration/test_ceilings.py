"""The operator's ceilings (WARREN_CEILING_*): what a request may ask, what the broker enforces on
every environment (tenants' own queues included), what a full queue does with one more message,
Warren's own queues, and the users and credentials per minute a team may have."""

import json
import time

import pika
import pika.exceptions
import pytest

from warren_support import Api, WarrenProcess, amqp_params, assert_problem, seg

CEILINGS = {
    "WARREN_CEILING_CONNECTIONS": "4",
    "WARREN_CEILING_QUEUES": "4",
    "WARREN_CEILING_ENVIRONMENT_BYTES": str(4 * 65536),
    "WARREN_CEILING_QUEUE_LENGTH": "20",
    "WARREN_CEILING_USER_CHANNELS": "3",
    "WARREN_CEILING_USERS": "4",
    "WARREN_CEILING_ROTATIONS_PER_MINUTE": "6",
}


@pytest.fixture(scope="module")
def capped(settings, warren_env, workdir):
    proc = WarrenProcess(settings.warren_bin, {**warren_env, **CEILINGS}, workdir, "ceilings").start()
    yield proc
    proc.stop_cleanly()


@pytest.fixture
def api(capped, tokens, spec) -> Api:
    return Api(capped.url, tokens["team-a"], spec)


def connect(env: dict, creds: dict | None = None) -> pika.BlockingConnection:
    c, creds = env["connection"], creds or env["credentials"]
    return pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"]))


def publish_until_refused(ch, queue: str, body: bytes, most: int) -> int:
    """Publishes with confirms to `queue` until the broker nacks; returns how many were confirmed."""
    for sent in range(most):
        try:
            ch.basic_publish("", queue, body, properties=pika.BasicProperties(delivery_mode=2))
        except pika.exceptions.NackError:
            return sent
    return most


@pytest.mark.parametrize("limits, field", [
    ({"max_connections": 5}, "limits.max_connections"),
    ({"max_connections": -1}, "limits.max_connections"),
    ({"max_queues": 5}, "limits.max_queues"),
    ({"max_bytes": 4 * 65536 + 1}, "limits.max_bytes"),
], ids=["connections", "unlimited", "queues", "bytes"])
def test_asking_above_a_ceiling_is_a_400_naming_it(api, new_name, mgmt, limits, field):
    name = new_name("over")
    problem = assert_problem(api.create({"name": name, "limits": limits}), 400, "invalid-field")
    errors = {e["field"]: e["reason"] for e in problem["errors"]}
    assert field in errors, problem
    if limits.get("max_connections", 0) != -1:
        assert "ceiling" in errors[field] and str(CEILINGS["WARREN_CEILING_" + {"limits.max_connections": "CONNECTIONS", "limits.max_queues": "QUEUES", "limits.max_bytes": "ENVIRONMENT_BYTES"}[field]]) in errors[field], errors
    assert mgmt.vhost(f"warren.team-a.{name}") is None, "a refused create made a vhost"
    # A queue's own max_length above the ceiling, and a topology needing more queues than it.
    body = {"name": name, "queue": {"max_length": 21}}
    assert "queue.max_length" in {e["field"] for e in assert_problem(api.create(body), 400, "invalid-field")["errors"]}
    many = {"name": name, "queues": [{"name": f"q{i}", "dead_letter": True} for i in range(2)]}
    assert "queues" in {e["field"] for e in assert_problem(api.create(many), 400, "invalid-field")["errors"]}


def test_limits_in_force_are_in_the_answer_and_on_the_broker(api, new_name, mgmt):
    env = api.create_ok({"name": new_name("inforce"), "limits": {"max_queues": 2}})
    limits = env["limits"]
    assert limits == {"max_queues": 2, "max_connections": 4, "max_bytes": 4 * 65536, "max_queue_bytes": 2 * 65536,
                      "max_queue_length": 20, "max_users": 4, "max_user_connections": 4, "max_user_channels": 3}
    vhost = seg(env["vhost"])
    assert mgmt.get_json(f"vhost-limits/{vhost}")[0]["value"] == {"max-queues": 2, "max-connections": 4}
    ceiling = mgmt.get_json(f"operator-policies/{vhost}/warren.ceiling")
    assert ceiling["definition"] == {"max-length": 20, "max-length-bytes": 2 * 65536} and ceiling["pattern"] == ".*"
    user = env["credentials"]["username"]
    assert mgmt.get_json(f"user-limits/{seg(user)}")[0]["value"] == {"max-connections": 4, "max-channels": 3}
    assert api.request("GET", f"/v1/environments/{env['name']}").json()["limits"] == limits
    # PATCH {"limits": {}} is not "unlimited": every limit goes back to its ceiling.
    patched = api.request("PATCH", f"/v1/environments/{env['name']}", json_body={"limits": {}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["limits"]["max_queues"] == 4
    assert mgmt.get_json(f"vhost-limits/{vhost}")[0]["value"] == {"max-queues": 4, "max-connections": 4}


def test_a_full_queue_refuses_publishes_and_keeps_what_it_confirmed(api, new_name):
    env = api.create_ok({"name": new_name("full"), "queue": {"type": "classic"}})
    queue = env["queue"]["name"]
    conn = connect(env)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        # Warren's queue: 20 messages, then a nack (reject-publish), never a dropped head.
        assert publish_until_refused(ch, queue, b"m", 100) == 20
        # A queue the tenant declares itself gets the same ceilings, bytes included.
        ch.queue_declare("mine", durable=True)
        confirmed = publish_until_refused(ch, "mine", b"x" * 30_000, 100)
        assert 1 <= confirmed <= 5, confirmed  # 65536 bytes a queue: at most three such messages
        # Warren's claim queue holds nothing a tenant sends.
        refused = publish_until_refused(ch, "warren.claim", b"x", 5)
        assert refused == 0, "a publish to Warren's claim queue was confirmed"
        for name, expected in ((queue, 20), ("mine", confirmed)):
            assert ch.queue_declare(name, passive=True).method.message_count == expected, name
        assert ch.basic_get(queue, auto_ack=True)[2] == b"m", "the first message confirmed is gone"
    finally:
        conn.close()


def test_connections_channels_and_queues_stop_at_their_ceilings(api, new_name):
    env = api.create_ok({"name": new_name("socket"), "limits": {"max_connections": 2}})
    conns = [connect(env), connect(env)]
    try:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            connect(env).close()
        channels = [conns[0].channel() for _ in range(3)]
        with pytest.raises((pika.exceptions.ConnectionClosedByBroker, pika.exceptions.ChannelClosedByBroker,
                            pika.exceptions.ChannelWrongStateError, pika.exceptions.StreamLostError)):
            conns[0].channel()
            conns[0].process_data_events(1)
        assert channels
        ch = conns[1].channel()
        # Two own queues fit beside the claim's and the environment's in a max_queues of 4.
        ch.queue_declare("extra-1", durable=True)
        ch.queue_declare("extra-2", durable=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare("extra-3", durable=True)
    finally:
        for conn in conns:
            if conn.is_open:
                conn.close()


def test_users_and_credentials_per_minute_stop_at_their_ceilings(capped, tokens, spec, new_name, mgmt):
    api = Api(capped.url, tokens["team-b"], spec)
    env = api.create_ok({"name": new_name("users")})
    path = f"/v1/environments/{env['name']}/credentials"
    for _ in range(3):
        assert api.request("POST", path, json_body={}).status_code == 201
    vhost = seg(env["vhost"])
    before = {p["user"] for p in mgmt.get_json(f"vhosts/{vhost}/permissions")}
    problem = assert_problem(api.request("POST", path, json_body={}), 403, "quota-exceeded")
    assert "ceiling is 4" in problem["detail"], problem
    assert {p["user"] for p in mgmt.get_json(f"vhosts/{vhost}/permissions")} == before, "a refused rotation made a user"
    # Revoking the others at once makes room.
    assert api.request("POST", path, json_body={"role": "full", "revoke_others_after_seconds": 0}).status_code == 201
    # Six credentials a minute (refused ones count too): well within ten asks, one is refused
    # with Retry-After, and nothing was made for it.
    for _ in range(10):
        resp = api.request("POST", path, json_body={"revoke_others_after_seconds": 0})
        if resp.status_code != 201:
            break
    assert_problem(resp, 429, "rate-limited")
    assert int(resp.headers["Retry-After"]) >= 1


def test_a_team_that_reads_too_often_is_slowed_and_no_other_team_is(warren_factory, tokens, spec, new_name):
    """Reads of the broker (GET of an environment, the list, queue depths, KEDA manifests) come
    from the team's budget per minute: past it, 429 `rate-limited` with `Retry-After`, while
    another team reads on. The budget is the smallest there is, one a minute, so the read after
    the first is refused on any machine that answers a local GET within a minute."""
    proc = warren_factory("reads", WARREN_CEILING_READS_PER_MINUTE="1")
    a, b = Api(proc.url, tokens["team-a"], spec), Api(proc.url, tokens["team-b"], spec)
    name = new_name("reads")
    a.create_ok({"name": name, "queue": {"name": "jobs"}})  # a create is not a read
    statuses = [a.request("GET", f"/v1/environments/{name}").status_code for _ in range(3)]
    assert statuses == [200, 429, 429], statuses
    for path in ["/v1/environments", f"/v1/environments/{name}/queues", f"/v1/environments/{name}/keda?queue=jobs"]:
        problem = assert_problem(a.request("GET", path), 429, "rate-limited")
        assert "reads its environments" in problem["detail"], problem
    resp = a.request("GET", f"/v1/environments/{name}")
    assert 1 <= int(resp.headers["Retry-After"]) <= 60, resp.headers
    # A bad request reads nothing and is answered as such, budget or not.
    assert_problem(a.request("GET", f"/v1/environments/{name}/keda"), 400, "invalid-field")
    # Another team has a budget of its own.
    other = new_name("reads")
    b.create_ok({"name": other})
    assert b.request("GET", f"/v1/environments/{other}").status_code == 200


def test_a_blueprint_with_ceilings_is_a_tier(warren_factory, workdir, tokens, spec, new_name, mgmt):
    """A tier the operator gives more than the global ceilings: its environments get the tier's,
    on the broker and in the answer; a create without it gets the global ones."""
    path = workdir / f"tiers-{new_name('t')}.json"
    path.write_text(json.dumps({
        "gpu-inference": {"description": "a tier with more connections", "queues": [{"name": "jobs"}],
                          "ceilings": {"connections": 8, "user_channels": 6}},
        "plain": {"description": "no ceilings of its own", "queues": [{"name": "jobs"}]},
    }))
    proc = warren_factory("tiers", WARREN_BLUEPRINTS_FILE=str(path), **CEILINGS)
    api = Api(proc.url, tokens["team-a"], spec)
    tiered = api.create_ok({"name": new_name("gpu"), "blueprint": "gpu-inference"})
    assert (tiered["limits"]["max_connections"], tiered["limits"]["max_user_channels"]) == (8, 6), tiered["limits"]
    assert mgmt.get_json(f"vhost-limits/{seg(tiered['vhost'])}")[0]["value"]["max-connections"] == 8
    user = tiered["credentials"]["username"]
    assert mgmt.get_json(f"user-limits/{seg(user)}")[0]["value"] == {"max-connections": 8, "max-channels": 6}
    # Beyond the tier is refused as beyond any ceiling; GET keeps showing the tier's.
    resp = api.request("PATCH", f"/v1/environments/{tiered['name']}", json_body={"limits": {"max_connections": 9}})
    assert "limits.max_connections" in {e["field"] for e in assert_problem(resp, 400, "invalid-field")["errors"]}
    assert api.request("GET", f"/v1/environments/{tiered['name']}").json()["limits"]["max_connections"] == 8
    # The same tier's limits are no one else's: a blueprint without ceilings, and a plain create.
    plain = api.create_ok({"name": new_name("plain"), "blueprint": "plain"})
    assert plain["limits"]["max_connections"] == 4
    problem = assert_problem(api.create({"name": new_name("over"), "limits": {"max_connections": 8}}), 400, "invalid-field")
    assert "limits.max_connections" in {e["field"] for e in problem["errors"]}

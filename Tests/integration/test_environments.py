"""Create, read, list, delete: Warren's answers and the broker's state behind them."""

import datetime as dt
import re
import urllib.parse

import pytest

from warren_support import assert_problem, problem_fields, unique_name, vhost_of


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_broker_has(mgmt, vhost, exchange, exchange_type, queue, queue_type, routing_key, users):
    """The broker holds exactly the environment described."""
    v = mgmt.vhost(vhost)
    assert v is not None, f"vhost {vhost} missing on the broker"

    x = mgmt.exchange(vhost, exchange)
    assert x is not None, f"exchange {exchange} missing in {vhost}"
    assert x["type"] == exchange_type, x
    assert x["durable"] is True and x["auto_delete"] is False and x["internal"] is False, x

    q = mgmt.queue(vhost, queue)
    assert q is not None, f"queue {queue} missing in {vhost}"
    assert q["durable"] is True and q["auto_delete"] is False and q["exclusive"] is False, q
    assert q.get("type") == queue_type, f"queue type {q.get('type')!r}, expected {queue_type}"
    if queue_type == "quorum":
        assert q["arguments"].get("x-queue-type") == "quorum", q["arguments"]

    keys = [b["routing_key"] for b in mgmt.bindings(vhost, exchange, queue)]
    assert keys == [routing_key], f"bindings {exchange} -> {queue}: {keys}, expected [{routing_key!r}]"

    for user in users:
        u = mgmt.user(user)
        assert u is not None, f"user {user} missing on the broker"
        tags = u["tags"] if isinstance(u["tags"], list) else [t for t in u["tags"].split(",") if t]
        assert not {"administrator", "management", "policymaker", "monitoring"} & set(tags), (
            f"user {user} must not get management tags: {tags}")
        perms = mgmt.user_permissions(user)
        assert [p["vhost"] for p in perms] == [vhost], (
            f"user {user} must have permissions on {vhost} only: {perms}")
        assert mgmt.get_json(f"users/{urllib.parse.quote(user, safe='')}/topic-permissions") in ([], None)


def test_create_with_defaults(api_a, mgmt, settings, new_name):
    name = new_name("defaults")
    vhost = vhost_of("team-a", name)
    before = dt.datetime.now(dt.timezone.utc)
    resp = api_a.create({"name": name})
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"] == f"/v1/environments/{name}"
    assert resp.headers["Content-Type"].split(";")[0] == "application/json"
    env = resp.json()

    assert env["id"] == name and env["name"] == name and env["team"] == "team-a"
    assert env["status"] == "ready"
    assert env["vhost"] == vhost
    assert env["exchange"] == {"name": name, "type": "direct", "durable": True}
    # RabbitMQ 4 limits a quorum queue to 20 deliveries unless told otherwise: Warren says so.
    default_limit = {"delivery_limit": 20} if int(settings.broker["BROKER_VERSION"].split(".")[0]) >= 4 else {}
    assert env["queue"] == {"name": name, "type": "quorum", "durable": True, **default_limit}
    assert env["routing_key"] == name
    created = parse_time(env["created_at"])
    assert created.utcoffset() == dt.timedelta(0), "created_at must be UTC"
    assert before - dt.timedelta(minutes=2) <= created <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)

    creds = env["credentials"]
    assert re.fullmatch(re.escape(vhost) + r"\.[0-9a-f]{16}", creds["username"]), creds["username"]
    password = creds["password"]
    assert len(password) >= 32 and len(set(password)) >= 10, "password looks weak"
    assert name not in password and "team-a" not in password

    conn = env["connection"]
    assert conn["host"] == "127.0.0.1" and conn["port"] == settings.amqp_port and conn["vhost"] == vhost
    uri = urllib.parse.urlsplit(conn["uri"])
    assert uri.scheme == "amqp" and uri.hostname == "127.0.0.1" and uri.port == settings.amqp_port
    assert urllib.parse.unquote(uri.username) == creds["username"]
    assert urllib.parse.unquote(uri.password) == password
    assert urllib.parse.unquote(uri.path[1:]) == vhost
    assert not re.search(r"[^A-Za-z0-9._~%-]", uri.password or ""), "password must be percent-encoded in the uri"

    assert_broker_has(mgmt, vhost, name, "direct", name, "quorum", name, [creds["username"]])

    got = api_a.get_ok(name)
    assert got["status"] == "ready"
    assert got["resources"] == {"vhost": True, "exchange": True, "queue": True, "binding": True, "user": True}
    assert got["missing"] == []
    assert got["users"] == [creds["username"]]
    assert got["created_at"] == env["created_at"]
    for key in ("id", "name", "team", "vhost", "exchange", "queue", "routing_key"):
        assert got[key] == env[key], key
    assert got["connection"] == {"host": "127.0.0.1", "port": settings.amqp_port, "vhost": vhost,
                                 "uri": f"amqp://127.0.0.1:{settings.amqp_port}/{vhost}"}
    assert "credentials" not in got
    assert password not in api_a.get(name).text and password not in api_a.list().text


@pytest.mark.parametrize("exchange_type", ["direct", "topic", "fanout", "headers"])
def test_create_full_spec(api_a, mgmt, new_name, exchange_type):
    name = new_name(f"full-{exchange_type}")
    vhost = vhost_of("team-a", name)
    body = {"name": name,
            "exchange": {"name": f"orders.{exchange_type}", "type": exchange_type},
            "queue": {"name": "orders:eu_1", "type": "classic"},
            "routing_key": "orders.*.eu" if exchange_type == "topic" else "orders.new-eu"}
    env = api_a.create_ok(body)
    assert env["exchange"] == {"name": f"orders.{exchange_type}", "type": exchange_type, "durable": True}
    assert env["queue"] == {"name": "orders:eu_1", "type": "classic", "durable": True}
    assert env["routing_key"] == body["routing_key"]
    assert_broker_has(mgmt, vhost, f"orders.{exchange_type}", exchange_type, "orders:eu_1", "classic",
                      body["routing_key"], [env["credentials"]["username"]])
    got = api_a.get_ok(name)
    assert got["status"] == "ready" and got["missing"] == []
    assert got["exchange"] == env["exchange"] and got["queue"] == env["queue"]


def test_list_is_sorted_and_per_team(api_a, api_b, new_name):
    # Created out of order on purpose.
    names = [new_name("list-c"), new_name("list-a"), new_name("list-b")]
    for name in names:
        api_a.create_ok({"name": name, "queue": {"type": "classic"}})
    items = api_a.list_ok()
    listed = [item["name"] for item in items]
    assert listed == sorted(listed), f"not sorted by name: {listed}"
    assert [n for n in listed if n in names] == sorted(names)
    for item in items:
        assert item["team"] == "team-a" and item["id"] == item["name"]
        assert item["vhost"] == vhost_of("team-a", item["name"])
        assert "credentials" not in item and "users" not in item
    mine = {item["name"]: item for item in items}
    one = mine[names[0]]
    assert one["queue"] == {"name": names[0], "type": "classic", "durable": True}
    assert one["exchange"] == {"name": names[0], "type": "direct", "durable": True}
    assert one["routing_key"] == names[0]

    others = [item["name"] for item in api_b.list_ok()]
    assert not set(names) & set(others), "team-b sees team-a's environments"
    assert all(item["team"] == "team-b" for item in api_b.list_ok())


def test_other_team_gets_404_and_cannot_delete(api_a, api_b, mgmt, new_name):
    name = new_name("private")
    env = api_a.create_ok({"name": name})
    assert_problem(api_b.get(name), 404, "not-found")
    assert_problem(api_b.delete(name), 404, "not-found")
    assert mgmt.vhost(env["vhost"]) is not None, "team-b's DELETE removed team-a's vhost"
    assert mgmt.user(env["credentials"]["username"]) is not None, "team-b's DELETE removed a user"
    got = api_a.get_ok(name)
    assert got["status"] == "ready"


def test_same_name_in_two_teams_are_separate(api_a, api_b, mgmt, new_name):
    name = new_name("shared")
    a = api_a.create_ok({"name": name})
    b = api_b.create_ok({"name": name, "queue": {"type": "classic"}})  # a different spec is fine
    assert a["vhost"] == vhost_of("team-a", name) and b["vhost"] == vhost_of("team-b", name)
    assert b["team"] == "team-b" and b["credentials"]["username"].startswith(b["vhost"] + ".")
    assert api_b.delete(name).status_code == 204
    assert mgmt.vhost(b["vhost"]) is None
    assert mgmt.vhost(a["vhost"]) is not None
    assert api_a.get_ok(name)["status"] == "ready"


def test_unknown_environment_404(api_a):
    name = unique_name("absent")
    assert_problem(api_a.get(name), 404, "not-found")
    assert_problem(api_a.delete(name), 404, "not-found")


def test_repeat_with_same_spec_issues_new_credentials(api_a, mgmt, new_name):
    name = new_name("repeat")
    first = api_a.create_ok({"name": name})
    second = api_a.create_ok({"name": name}, expect=200)
    # The same spec spelled out with its defaults is the same spec.
    third = api_a.create_ok({"name": name, "exchange": {"name": name, "type": "direct"},
                             "queue": {"name": name, "type": "quorum"}, "routing_key": name},
                            expect=200)
    users = [r["credentials"]["username"] for r in (first, second, third)]
    passwords = [r["credentials"]["password"] for r in (first, second, third)]
    assert len(set(users)) == 3, f"each create must issue a new user: {users}"
    assert len(set(passwords)) == 3, "each create must issue a new password"
    for r in (second, third):
        assert r["id"] == name and r["status"] == "ready" and r["created_at"] == first["created_at"]
        assert r["vhost"] == first["vhost"] and r["exchange"] == first["exchange"]
        assert r["queue"] == first["queue"] and r["routing_key"] == first["routing_key"]
    assert sorted(api_a.get_ok(name)["users"]) == sorted(users)
    assert_broker_has(mgmt, first["vhost"], name, "direct", name, "quorum", name, users)


def test_conflict_on_same_name_with_different_spec(api_a, mgmt, new_name):
    name = new_name("conflict")
    env = api_a.create_ok({"name": name, "exchange": {"type": "topic"}, "routing_key": "a.#"})
    users_before = mgmt.users_with_prefix(env["vhost"] + ".")
    differing = [
        ({"queue": {"type": "classic"}}, "queue.type"),
        ({"exchange": {"type": "direct"}}, "exchange.type"),
        ({"exchange": {"name": "other", "type": "topic"}}, "exchange.name"),
        ({"queue": {"name": "other"}}, "queue.name"),
        ({"routing_key": "b.#"}, "routing_key"),
    ]
    for change, field in differing:
        body = {"name": name, "exchange": {"type": "topic"}, "routing_key": "a.#"}
        for key, value in change.items():
            body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
        resp = api_a.create(body)
        problem = assert_problem(resp, 409, "conflict")
        # The differing field is named in errors[] (as openapi.yaml says) or at least in detail.
        fields = problem_fields(problem)
        if fields:
            assert fields == {field}, f"409 for {change} must name exactly {field}: {problem}"
        else:
            assert re.search(rf"(?<![\w.]){re.escape(field)}(?!\w)", problem.get("detail", "")), (
                f"409 for {change} must name {field}: {problem}")
        assert "credentials" not in problem
    assert mgmt.users_with_prefix(env["vhost"] + ".") == users_before, "a 409 created a user"
    assert mgmt.queue(env["vhost"], name)["type"] == "quorum"
    assert mgmt.exchange(env["vhost"], name)["type"] == "topic"
    assert api_a.get_ok(name)["status"] == "ready"


def test_delete_removes_everything(api_a, mgmt, new_name):
    name = new_name("delete")
    first = api_a.create_ok({"name": name})
    second = api_a.create_ok({"name": name}, expect=200)
    vhost = first["vhost"]
    assert len(mgmt.users_with_prefix(vhost + ".")) == 2

    resp = api_a.delete(name)
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert mgmt.vhost(vhost) is None, "vhost survived DELETE"
    left = mgmt.users_with_prefix(vhost + ".")
    assert not left, f"users survived DELETE: {left}"
    for r in (first, second):
        assert mgmt.user(r["credentials"]["username"]) is None
    assert_problem(api_a.get(name), 404, "not-found")
    assert_problem(api_a.delete(name), 404, "not-found")
    assert name not in [item["name"] for item in api_a.list_ok()]

    # The name is free again.
    again = api_a.create_ok({"name": name, "queue": {"type": "classic"}})
    assert again["queue"]["type"] == "classic"


def test_drift_queue_deleted_by_hand_then_repaired(api_a, mgmt, new_name):
    name = new_name("drift-queue")
    env = api_a.create_ok({"name": name})
    mgmt.delete_queue(env["vhost"], name)

    got = api_a.get_ok(name)
    assert got["status"] == "degraded"
    assert got["resources"]["queue"] is False
    assert got["resources"]["vhost"] is True and got["resources"]["exchange"] is True
    assert got["resources"]["user"] is True
    assert "queue" in got["missing"]
    assert sorted(got["missing"]) == sorted(k for k, v in got["resources"].items() if not v)
    assert "vhost" not in got["missing"] and "exchange" not in got["missing"]
    assert name in [item["name"] for item in api_a.list_ok()], "a degraded environment is still listed"

    # Repeating the create with the same spec re-ensures the topology.
    api_a.create_ok({"name": name}, expect=200)
    got = api_a.get_ok(name)
    assert got["status"] == "ready" and got["missing"] == [], got
    assert mgmt.queue(env["vhost"], name)["type"] == "quorum"
    assert [b["routing_key"] for b in mgmt.bindings(env["vhost"], name, name)] == [name]


def test_drift_binding_deleted_by_hand(api_a, mgmt, new_name):
    name = new_name("drift-binding")
    env = api_a.create_ok({"name": name})
    mgmt.delete_binding(env["vhost"], name, name)
    got = api_a.get_ok(name)
    assert got["status"] == "degraded"
    assert got["missing"] == ["binding"], got
    assert got["resources"] == {"vhost": True, "exchange": True, "queue": True, "binding": False,
                                "user": True}


def test_drift_user_deleted_by_hand(api_a, mgmt, new_name):
    name = new_name("drift-user")
    env = api_a.create_ok({"name": name})
    mgmt.delete(f"users/{urllib.parse.quote(env['credentials']['username'], safe='')}",
                missing_ok=False)
    got = api_a.get_ok(name)
    assert got["status"] == "degraded"
    assert got["missing"] == ["user"], got
    assert got["users"] == []
    # A repeat create issues a working user again.
    api_a.create_ok({"name": name}, expect=200)
    got = api_a.get_ok(name)
    assert got["status"] == "ready" and len(got["users"]) == 1

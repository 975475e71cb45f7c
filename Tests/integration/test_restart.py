"""Warren keeps no state of its own: a restart, or a second replica, sees the same environments."""

from warren_support import amqp_params_from_uri, publish_and_get

import pika


def test_environment_survives_restart(warren_factory, client, new_name, mgmt):
    proc = warren_factory("restart")
    api = client("team-a", proc)
    name = new_name("restart")
    env = api.create_ok({"name": name, "exchange": {"type": "fanout"}, "queue": {"type": "classic"}})

    proc.stop_cleanly()  # SIGTERM -> exit 0 (asserted)
    assert mgmt.vhost(env["vhost"]) is not None, "stopping warren must not remove environments"
    proc.start()
    api = client("team-a", proc)

    listed = {item["name"]: item for item in api.list_ok()}
    assert name in listed, "the environment is gone from the list after a restart"
    assert listed[name]["exchange"] == {"name": name, "type": "fanout", "durable": True}
    assert listed[name]["queue"] == {"name": name, "type": "classic", "durable": True}
    assert listed[name]["created_at"] == env["created_at"]
    got = api.get_ok(name)
    assert got["status"] == "ready"
    assert got["users"] == [env["credentials"]["username"]]

    # The credentials issued before the restart still work.
    conn = pika.BlockingConnection(amqp_params_from_uri(env["connection"]["uri"]))
    try:
        assert publish_and_get(conn, name, "anything", name, b"after restart") == b"after restart"
    finally:
        conn.close()

    # And the new process can still tear it down.
    assert api.delete(name).status_code == 204
    assert mgmt.vhost(env["vhost"]) is None


def test_two_replicas_share_the_broker(warren_factory, client, new_name):
    one = client("team-a", warren_factory("replica-1"))
    two = client("team-a", warren_factory("replica-2"))
    name = new_name("replica")
    first = one.create_ok({"name": name})
    assert two.get_ok(name)["status"] == "ready"
    second = two.create_ok({"name": name}, expect=200)
    assert sorted(one.get_ok(name)["users"]) == sorted(
        [first["credentials"]["username"], second["credentials"]["username"]])
    assert two.delete(name).status_code == 204
    assert one.get(name).status_code == 404

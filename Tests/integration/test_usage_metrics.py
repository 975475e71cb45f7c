"""What /metrics shows of the broker and of each team's use, gathered in the background every
WARREN_USAGE_INTERVAL_SECONDS: a tenant's connections and message bytes appear for its team,
beside the team's ceilings, within a bounded wait, and another team's numbers do not move.
/readyz answers 200 while no node is in an alarm (an alarm itself is tested elsewhere)."""

from __future__ import annotations


import pika
import requests

from warren_support import Api, amqp_params, metric, wait_for

CONNECTIONS = 3
MESSAGES = 5
BODY = b"x" * 4000
# The broker's statistics lag by its collection interval (5 s by default), then one round of
# the collector (1 s here): 30 s is well clear of both.
WAIT = 30
# The ceilings this test's warren has, per environment (set, not the defaults, so the test
# does not follow them).
PER_ENVIRONMENT = {"connections": 50, "queues": 20, "message_bytes": 64 << 20, "users": 8}
CEILINGS = {"WARREN_CEILING_CONNECTIONS": "50", "WARREN_CEILING_QUEUES": "20",
            "WARREN_CEILING_ENVIRONMENT_BYTES": str(64 << 20), "WARREN_CEILING_USERS": "8"}


def scrape(proc) -> str:
    resp = requests.get(f"{proc.url}/metrics", timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.text


def team(text: str, name: str) -> dict[str, float | None]:
    keys = ["environments", *PER_ENVIRONMENT, *[f"{k}_ceiling" for k in PER_ENVIRONMENT]]
    return {k: metric(text, f"warren_team_{k}", team=name) for k in keys}


def test_a_teams_connections_and_bytes_show_beside_its_ceilings(warren_factory, tokens, spec, new_name, mgmt):
    proc = warren_factory("usage", WARREN_USAGE_INTERVAL_SECONDS="1", **CEILINGS)
    api_a = Api(proc.url, tokens["team-a"], spec)
    api_b = Api(proc.url, tokens["team-b"], spec)
    env_b = api_b.create_ok({"name": new_name("usage-b")})
    before_b = wait_for(lambda: (t := team(scrape(proc), "team-b"))["environments"] and t, WAIT, what="team-b's usage")

    env = api_a.create_ok({"name": new_name("usage-a")})
    c = env["connection"]
    creds = env["credentials"]
    conns = [pika.BlockingConnection(amqp_params(c["host"], c["port"], c["vhost"], creds["username"], creds["password"]))
             for _ in range(CONNECTIONS)]
    try:
        ch = conns[0].channel()
        ch.confirm_delivery()
        for _ in range(MESSAGES):
            ch.basic_publish(env["exchange"]["name"], env["routing_key"], BODY,
                             properties=pika.BasicProperties(delivery_mode=2), mandatory=True)

        def shown():
            t = team(scrape(proc), "team-a")
            ok = (t["connections"] or 0) >= CONNECTIONS and (t["message_bytes"] or 0) >= MESSAGES * len(BODY)
            return ok and t

        a = wait_for(shown, WAIT, interval=0.5, what="team-a's connections and message bytes in /metrics")
        environments = a["environments"]
        assert environments >= 1
        for key, per in PER_ENVIRONMENT.items():
            assert a[f"{key}_ceiling"] == environments * per, (key, a)
        # The environment's queue and Warren's claim queue; its one user.
        assert a["queues"] >= 2 and a["users"] >= 1, a

        after_b = team(scrape(proc), "team-b")
        assert after_b == before_b, (before_b, after_b)
        assert env_b["vhost"] != env["vhost"]
    finally:
        for conn in conns:
            conn.close()

    text = scrape(proc)
    node = mgmt.overview()["node"]
    assert metric(text, "warren_broker_alarm", node=node, resource="memory") == 0
    assert metric(text, "warren_broker_alarm", node=node, resource="disk") == 0
    assert (metric(text, "warren_broker_memory_limit_bytes", node=node) or 0) > 0
    assert (metric(text, "warren_broker_disk_free_bytes", node=node) or 0) > 0
    ready = requests.get(f"{proc.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text

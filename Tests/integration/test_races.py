"""Concurrent calls: the broker's create-if-absent is not race-free (see the management API notes)."""

import threading

import pika

from warren_support import Api, amqp_params_from_uri


def run_concurrently(n, fn):
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # reported by the assertions below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a request hung"
    return results


def test_concurrent_creates_of_one_name(warren, tokens, spec, new_name, mgmt):
    name = new_name("race-same")
    n = 5
    results = run_concurrently(n, lambda i: Api(warren.url, tokens["team-a"], spec).create({"name": name}))
    for r in results:
        assert not isinstance(r, Exception), repr(r)
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {200, 201} and 201 in statuses, [(r.status_code, r.text[:300]) for r in results]
    bodies = [r.json() for r in results]
    users = {b["credentials"]["username"] for b in bodies}
    assert len(users) == n, "every create issues its own user"
    assert len({b["created_at"] for b in bodies}) == 1

    api = Api(warren.url, tokens["team-a"], spec)
    got = api.get_ok(name)
    assert got["status"] == "ready" and sorted(got["users"]) == sorted(users)
    for b in bodies:
        pika.BlockingConnection(amqp_params_from_uri(b["connection"]["uri"])).close()
    assert api.delete(name).status_code == 204
    assert not mgmt.users_with_prefix(bodies[0]["vhost"] + ".")
    assert mgmt.vhost(bodies[0]["vhost"]) is None


def test_concurrent_creates_of_different_names(warren, tokens, spec, new_name):
    names = [new_name(f"race-{i}") for i in range(6)]
    results = run_concurrently(len(names), lambda i: Api(warren.url, tokens["team-a"], spec)
                               .create({"name": names[i]}))
    for r in results:
        assert not isinstance(r, Exception), repr(r)
        assert r.status_code == 201, r.text[:500]
    api = Api(warren.url, tokens["team-a"], spec)
    listed = {item["name"] for item in api.list_ok()}
    assert set(names) <= listed
    for name in names:
        assert api.get_ok(name)["status"] == "ready"

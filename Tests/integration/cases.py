"""Request bodies shared by the spec tests and the live validation tests.

INVALID: (id, body, the field the 400 invalid-field problem must name). The env name "ok-name" is
replaced by a fresh unique name before the request is sent, so a bug that accepts the body
cannot collide with another test.
"""

OK = "ok-name"  # placeholder for a valid, unique environment name

INVALID = [
    # name
    ("name-missing", {}, "name"),
    ("name-null", {"name": None}, "name"),
    ("name-number", {"name": 5}, "name"),
    ("name-array", {"name": ["a"]}, "name"),
    ("name-empty", {"name": ""}, "name"),
    ("name-uppercase", {"name": "Fraud"}, "name"),
    ("name-underscore", {"name": "fraud_scoring"}, "name"),
    ("name-dot", {"name": "fraud.scoring"}, "name"),
    ("name-slash", {"name": "a/b"}, "name"),
    ("name-dotdot", {"name": ".."}, "name"),
    ("name-space", {"name": "a b"}, "name"),
    ("name-leading-hyphen", {"name": "-abc"}, "name"),
    ("name-64-chars", {"name": "a" * 64}, "name"),
    ("name-unicode", {"name": "caf\u00e9"}, "name"),
    ("name-percent", {"name": "a%2fb"}, "name"),
    # exchange
    ("exchange-type-x", {"name": OK, "exchange": {"type": "x"}}, "exchange.type"),
    ("exchange-type-upper", {"name": OK, "exchange": {"type": "DIRECT"}}, "exchange.type"),
    ("exchange-type-null", {"name": OK, "exchange": {"type": None}}, "exchange.type"),
    ("exchange-string", {"name": OK, "exchange": "direct"}, "exchange"),
    ("exchange-null", {"name": OK, "exchange": None}, "exchange"),
    ("exchange-name-amq", {"name": OK, "exchange": {"name": "amq.direct"}}, "exchange.name"),
    ("exchange-name-empty", {"name": OK, "exchange": {"name": ""}}, "exchange.name"),
    ("exchange-name-slash", {"name": OK, "exchange": {"name": "a/b"}}, "exchange.name"),
    ("exchange-name-256", {"name": OK, "exchange": {"name": "x" * 256}}, "exchange.name"),
    ("exchange-unknown-field", {"name": OK, "exchange": {"durable": False}}, "exchange.durable"),
    # queue
    ("queue-type-x", {"name": OK, "queue": {"type": "x"}}, "queue.type"),
    ("queue-type-lazy", {"name": OK, "queue": {"type": "lazy"}}, "queue.type"),
    ("stream-dead-letter", {"name": OK, "queue": {"type": "stream", "dead_letter": True}}, "queue.dead_letter"),
    ("stream-message-ttl", {"name": OK, "queue": {"type": "stream", "message_ttl_ms": 5}}, "queue.message_ttl_ms"),
    ("max-age-quorum", {"name": OK, "queue": {"type": "quorum", "max_age_seconds": 60}}, "queue.max_age_seconds"),
    ("max-age-zero", {"name": OK, "queue": {"type": "stream", "max_age_seconds": 0}}, "queue.max_age_seconds"),
    ("super-stream-partitions-0", {"name": OK, "super_streams": [{"name": "s", "partitions": 0}]}, "super_streams[0].partitions"),
    ("queue-type-number", {"name": OK, "queue": {"type": 1}}, "queue.type"),
    ("queue-name-amq", {"name": OK, "queue": {"name": "amq.x"}}, "queue.name"),
    ("queue-name-space", {"name": OK, "queue": {"name": "a b"}}, "queue.name"),
    ("queue-name-256", {"name": OK, "queue": {"name": "q" * 256}}, "queue.name"),
    ("queue-name-number", {"name": OK, "queue": {"name": 7}}, "queue.name"),
    ("queue-array", {"name": OK, "queue": []}, "queue"),
    # routing key
    ("routing-key-space", {"name": OK, "routing_key": "a b"}, "routing_key"),
    ("routing-key-slash", {"name": OK, "routing_key": "a/b"}, "routing_key"),
    ("routing-key-256", {"name": OK, "routing_key": "k" * 256}, "routing_key"),
    ("routing-key-number", {"name": OK, "routing_key": 5}, "routing_key"),
    ("routing-key-null", {"name": OK, "routing_key": None}, "routing_key"),
    # unknown fields
    ("unknown-field", {"name": OK, "foo": 1}, "foo"),
    ("unknown-field-null", {"name": OK, "foo": None}, "foo"),
]

# Bodies that must be accepted (with OK replaced by a fresh name).
VALID = [
    ("name-only", {"name": OK}),
    ("all-fields", {"name": OK, "exchange": {"name": "Ex.a_b:c-1", "type": "topic"},
                    "queue": {"name": "Q.a_b:c-1", "type": "classic"},
                    "routing_key": "a.*.#:_-Z9"}),
    ("empty-objects", {"name": OK, "exchange": {}, "queue": {}}),
    ("routing-key-empty", {"name": OK, "routing_key": ""}),
    ("resource-names-255", {"name": OK, "exchange": {"name": "e" * 255},
                            "queue": {"name": "q" * 255}, "routing_key": "k" * 255}),
    ("amq-not-prefix", {"name": OK, "queue": {"name": "xamq.q"}, "exchange": {"name": "amq"}}),
    ("stream", {"name": OK, "queue": {"type": "stream", "max_age_seconds": 3600, "stream_max_segment_size_bytes": 65536}}),
]

# Not JSON, or JSON that is not an object: 400 malformed-json.
MALFORMED = [
    ("empty", b""),
    ("truncated", b'{"name": "abc"'),
    ("trailing-comma", b'{"name": "abc",}'),
    ("single-quotes", b"{'name': 'abc'}"),
    ("garbage", b"name=abc"),
    ("array", b'[{"name": "abc"}]'),
    ("string", b'"abc"'),
    ("number", b"42"),
    ("null", b"null"),
    ("trailing-data", b'{"name": "abc"} {}'),
    ("invalid-utf8", b'{"name": "\xff\xfe"}'),
]


def fill(body, name):
    """A deep copy of body with the OK placeholder replaced by name."""
    if isinstance(body, dict):
        return {k: fill(v, name) for k, v in body.items()}
    if isinstance(body, list):
        return [fill(v, name) for v in body]
    return name if body == OK else body

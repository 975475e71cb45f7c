#!/usr/bin/env python3
"""A job worker that uses only what Warren returned.

    curl -s -X POST http://127.0.0.1:8080/v1/environments \
         -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
         -d '{"name": "scoring", "queues": [{"name": "jobs", "delivery_limit": 3, "dead_letter": true}]}' > env.json
    python3 examples/worker.py env.json publish 5     # enqueue five jobs
    python3 examples/worker.py env.json work          # process them; Ctrl-C to stop

A job that fails is requeued and retried; after `delivery_limit` deliveries RabbitMQ moves it
to the dead-letter queue (`jobs.dlq`), where `python3 examples/worker.py env.json dead` shows it.
Needs `pip install pika`.
"""

import json
import sys

import pika


def connect(env: dict) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(env["connection"]["uri"]))


def publish(env: dict, count: int) -> None:
    conn = connect(env)
    channel = conn.channel()
    channel.confirm_delivery()  # the broker acknowledges each job once it is safely queued
    for n in range(count):
        job = {"id": n, "input": f"transaction {n}", "poison": n == 0}
        channel.basic_publish(env["exchange"]["name"], env["routing_key"], json.dumps(job).encode(),
                              properties=pika.BasicProperties(delivery_mode=2, content_type="application/json"),
                              mandatory=True)
    conn.close()
    print(f"published {count} jobs to {env['exchange']['name']} with key {env['routing_key']}")


def work(env: dict) -> None:
    conn = connect(env)
    channel = conn.channel()
    channel.basic_qos(prefetch_count=1)  # one job at a time per worker

    def handle(ch, method, _properties, body):
        job = json.loads(body)
        if job.get("poison"):
            print(f"job {job['id']} failed (delivery {'re' if method.redelivered else ''}tried); requeueing")
            # reject, not nack: from RabbitMQ 4.3 only a reject counts towards the delivery limit.
            ch.basic_reject(method.delivery_tag, requeue=True)
            return
        print(f"job {job['id']} done: scored {job['input']!r}")
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(env["queue"]["name"], handle)
    print(f"waiting for jobs on {env['queue']['name']} (Ctrl-C to stop)")
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        channel.stop_consuming()
    conn.close()


def dead(env: dict) -> None:
    queue = env["queue"].get("dead_letter_queue")
    if not queue:
        sys.exit("this environment's queue has no dead-letter queue")
    conn = connect(env)
    channel = conn.channel()
    while True:
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        print(f"dead letter: {body.decode()}")
    conn.close()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        environment = json.load(f)
    command = sys.argv[2]
    if command == "publish":
        publish(environment, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    elif command == "work":
        work(environment)
    elif command == "dead":
        dead(environment)
    else:
        sys.exit(__doc__)

"""Celery on a Warren environment: the whole configuration is the URI Warren returned.

    WARREN_URI='amqp://...'  celery -A celery_app worker --pool=solo      # the worker
    WARREN_URI='amqp://...'  python3 -c 'import celery_app; print(celery_app.add.delay(2, 3).get(timeout=30))'

With the environment's full credentials nothing else is needed: Celery declares its own queue
(`celery`, classic: Warren sets no default queue type on the vhost) and its own exchanges, and
`rpc://` carries the results back.

With role credentials (a `producer` for whoever sends jobs, a `consumer` for the workers), Celery
may touch only the environment's exchange and queues: set WARREN_ROLE=1 and the environment's
names (WARREN_EXCHANGE, WARREN_QUEUE, WARREN_ROUTING_KEY, from the create answer). Celery then
declares nothing, routes every task through the environment's exchange, keeps no results, and
runs without remote control, events, gossip, mingle and heartbeats (start the worker with
`--without-gossip --without-mingle --without-heartbeat`). Its native delayed delivery is then
unavailable (the worker logs a warning): it needs exchanges of its own.
"""

import os

from celery import Celery
from kombu import Exchange, Queue

app = Celery("celery_app", broker=os.environ["WARREN_URI"], backend=None if os.environ.get("WARREN_ROLE") else "rpc://")

if os.environ.get("WARREN_ROLE"):
    exchange, queue, key = os.environ["WARREN_EXCHANGE"], os.environ["WARREN_QUEUE"], os.environ["WARREN_ROUTING_KEY"]
    queue_type = os.environ.get("WARREN_QUEUE_TYPE", "quorum")
    app.conf.update(
        # The queue as Warren made it (its type tells Celery not to ask for global QoS).
        task_queues=[Queue(queue, Exchange(exchange, type="direct", no_declare=True), routing_key=key,
                           queue_arguments={"x-queue-type": queue_type}, no_declare=True)],
        task_default_queue=queue,
        # Through the environment's exchange: Celery would otherwise publish to the default
        # exchange, which a producer may not use.
        task_routes={"*": {"exchange": exchange, "routing_key": key}},
        task_create_missing_queues=False,
        task_ignore_result=True,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
    )


@app.task
def add(x, y):
    return x + y


@app.task
def append(path, text):
    """Leaves a trace a test can read (role credentials keep no results)."""
    with open(path, "a") as f:
        f.write(text + "\n")

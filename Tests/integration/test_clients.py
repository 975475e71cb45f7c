"""The task frameworks teams run work on what Warren makes, with nothing but what it returned.

A real Celery worker process (pip `celery`, its default prefork pool replaced by `solo` only to
keep the test light) and a real client round-trip a task with `broker=connection.uri` and
`backend="rpc://"` on a default environment: the case that broke when Warren gave every vhost
a quorum default queue type (Celery's own `celery` queue became a quorum queue, and its
consumer's global QoS was refused, so the worker looped on NOT_IMPLEMENTED). With role
credentials, a producer client and a consumer worker run with the settings of
examples/celery_app.py (the one docs/api.md shows): the task runs, and nothing outside the environment's own
exchange and queues is needed. Dramatiq's default worker (pip `dramatiq`, its RabbitmqBroker
with the same URI) processes a message too. These run on every broker of the matrix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from warren_support import wait_for

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPO / "examples" / "celery_app.py"


def role_uri(env: dict, role: str) -> str:
    c, creds = env["connection"], env["role_credentials"][role]
    quote = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
    return f"amqp://{quote(creds['username'])}:{quote(creds['password'])}@{c['host']}:{c['port']}/{quote(c['vhost'])}"


class Worker:
    """A task-framework worker in a process of its own, stopped (and its log kept) at the end."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.log = log
        self.proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=cwd, stdout=log.open("w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, needle: str, timeout: float = 45.0) -> None:
        wait_for(lambda: needle in self.text() or self.proc.poll() is not None, timeout=timeout, interval=0.2,
                 what=f"'{needle}' in {self.log.name}")
        assert self.proc.poll() is None, f"worker exited ({self.proc.returncode}):\n{self.text()[-3000:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def run_python(code: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> str:
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"client failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def app_dir(tmp_path) -> Path:
    (tmp_path / "celery_app.py").write_text(EXAMPLE.read_text())
    return tmp_path


def celery_worker(app_dir: Path, env: dict[str, str], *extra: str) -> Worker:
    return Worker([sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo", "--loglevel=INFO", *extra],
                  env, app_dir, app_dir / "celery-worker.log")


def test_celery_round_trip_on_a_default_environment(api_a, new_name, app_dir):
    env = api_a.create_ok({"name": new_name("celery")})
    settings = {"WARREN_URI": env["connection"]["uri"]}
    worker = celery_worker(app_dir, settings)
    try:
        worker.wait_for_line("ready.")
        out = run_python("import celery_app; print(celery_app.add.delay(2, 3).get(timeout=45))", settings, app_dir)
        assert out.strip().splitlines()[-1] == "5", out
        assert "NOT_IMPLEMENTED" not in worker.text(), worker.text()[-3000:]
    finally:
        worker.stop()


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_celery_with_role_credentials(api_a, new_name, app_dir, queue_type):
    env = api_a.create_ok({"name": new_name("celery-roles"), "queue": {"type": queue_type}, "roles": ["producer", "consumer"]})
    names = {"WARREN_ROLE": "1", "WARREN_EXCHANGE": env["exchange"]["name"], "WARREN_QUEUE": env["queue"]["name"],
             "WARREN_ROUTING_KEY": env["routing_key"], "WARREN_QUEUE_TYPE": queue_type}
    trace = app_dir / "trace.txt"
    worker = celery_worker(app_dir, {**names, "WARREN_URI": role_uri(env, "consumer")},
                           "--without-gossip", "--without-mingle", "--without-heartbeat")
    try:
        worker.wait_for_line("ready.")
        run_python(f"import celery_app; celery_app.append.delay({str(trace)!r}, 'ran')",
                   {**names, "WARREN_URI": role_uri(env, "producer")}, app_dir)
        wait_for(lambda: trace.exists() and trace.read_text() == "ran\n", timeout=30, interval=0.2,
                 what="the task run by the consumer worker")
        assert "ACCESS_REFUSED - access to exchange 'amq.default'" not in worker.text()
    finally:
        worker.stop()


def test_dramatiq_default_worker(api_a, new_name, tmp_path):
    env = api_a.create_ok({"name": new_name("dramatiq")})
    trace = tmp_path / "trace.txt"
    (tmp_path / "dramatiq_app.py").write_text(
        "import os, dramatiq\n"
        "from dramatiq.brokers.rabbitmq import RabbitmqBroker\n"
        "dramatiq.set_broker(RabbitmqBroker(url=os.environ['WARREN_URI']))\n"
        "@dramatiq.actor\n"
        "def note(path, text):\n"
        "    with open(path, 'a') as f:\n"
        "        f.write(text + '\\n')\n")
    settings = {"WARREN_URI": env["connection"]["uri"]}
    worker = Worker([sys.executable, "-m", "dramatiq", "dramatiq_app", "--processes", "1", "--threads", "1"],
                    settings, tmp_path, tmp_path / "dramatiq-worker.log")
    try:
        run_python(f"import dramatiq_app; dramatiq_app.note.send({str(trace)!r}, 'ran')", settings, tmp_path)
        wait_for(lambda: trace.exists() and trace.read_text() == "ran\n", timeout=45, interval=0.2,
                 what="the message processed by dramatiq's worker")
        assert worker.proc.poll() is None, worker.text()[-3000:]
    finally:
        worker.stop()

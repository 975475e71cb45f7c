"""Fixtures for Warren's integration and end-to-end tests.

They run against a real RabbitMQ node and a real warren executable, named by two environment
variables (set by `make test`):

  WARREN_BIN              the built warren executable
  WARREN_TEST_BROKER_ENV  the broker.env that `scripts/broker.sh start DIR` wrote

If either is missing the run FAILS (exit status 4) instead of skipping: a suite that silently
skips proves nothing. `pytest --collect-only` works without them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from faultproxy import FaultProxy
from warren_support import (Api, Mgmt, OpenApiSpec, OSBClient, WarrenProcess, parse_env_file, sha256_hex,
                            unique_name, vhost_of)
from warren_support import SECRETS, WARREN_LOGS, leaked_secrets, record_secret

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SPEC_PATH = REPO / "openapi.yaml"
TEAMS = ("team-a", "team-b")


@dataclass(frozen=True)
class Settings:
    warren_bin: str
    broker: dict
    amqp_port: int
    management_url: str


def _load_settings() -> tuple[Settings | None, list[str]]:
    problems: list[str] = []
    warren_bin = os.environ.get("WARREN_BIN", "")
    if not warren_bin:
        problems.append("WARREN_BIN is not set: it must name the built warren executable.")
    elif not (os.path.isfile(warren_bin) and os.access(warren_bin, os.X_OK)):
        problems.append(f"WARREN_BIN={warren_bin!r} is not an executable file.")
    env_file = os.environ.get("WARREN_TEST_BROKER_ENV", "")
    broker: dict = {}
    if not env_file:
        problems.append("WARREN_TEST_BROKER_ENV is not set: it must name the broker.env written by "
                        "`scripts/broker.sh start DIR`.")
    elif not os.path.isfile(env_file):
        problems.append(f"WARREN_TEST_BROKER_ENV={env_file!r} does not exist "
                        "(is the broker started?).")
    else:
        try:
            broker = parse_env_file(env_file)
        except ValueError as e:
            problems.append(f"WARREN_TEST_BROKER_ENV: {e}")
        for key in ("BROKER_AMQP_PORT", "WARREN_MANAGEMENT_URL"):
            if broker and not broker.get(key):
                problems.append(f"{env_file} has no {key}.")
    if problems:
        return None, problems
    settings = Settings(warren_bin=warren_bin, broker=broker,
                        amqp_port=int(broker["BROKER_AMQP_PORT"]),
                        management_url=broker["WARREN_MANAGEMENT_URL"].rstrip("/"))
    try:
        resp = requests.get(f"{settings.management_url}/api/overview?disable_stats=true",
                            auth=("guest", "guest"), timeout=5)
        if resp.status_code != 200:
            problems.append(f"the broker's management API at {settings.management_url} answered "
                            f"{resp.status_code} to guest/guest.")
    except requests.RequestException as e:
        problems.append(f"the broker's management API at {settings.management_url} does not "
                        f"answer: {e}")
    return (None if problems else settings), problems


def _refusal(problems: list[str]) -> str:
    return ("Warren's integration tests cannot run:\n  - " + "\n  - ".join(problems) +
            "\nRun them with `make test`, or start a broker with `scripts/broker.sh start DIR` and "
            "set WARREN_BIN and WARREN_TEST_BROKER_ENV=DIR/broker.env.")


def pytest_sessionstart(session):
    if session.config.option.collectonly:
        return
    settings, problems = _load_settings()
    if problems:
        pytest.exit(_refusal(problems), returncode=pytest.ExitCode.USAGE_ERROR)
    session.config.stash[_SETTINGS] = settings


_SETTINGS = pytest.StashKey[Settings]()


@pytest.fixture(scope="session")
def settings(pytestconfig) -> Settings:
    settings = pytestconfig.stash.get(_SETTINGS, None)
    if settings is None:  # belt and braces: never skip, always fail loudly
        settings, problems = _load_settings()
        if problems:
            pytest.fail(_refusal(problems), pytrace=False)
    return settings


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("warren")


@pytest.fixture(scope="session")
def tokens() -> dict[str, str]:
    """team -> bearer token."""
    issued = {team: secrets.token_urlsafe(32) for team in TEAMS}
    for team, token in issued.items():
        record_secret(token, f"bearer token of {team}")
    return issued


@pytest.fixture(scope="session")
def tokens_file(workdir, tokens) -> Path:
    path = workdir / "tokens"
    lines = ["# Warren test tokens: TEAM SHA256HEX(token)", ""]
    lines += [f"{team} {sha256_hex(token)}" for team, token in tokens.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def spec() -> OpenApiSpec:
    return OpenApiSpec(SPEC_PATH)


@pytest.fixture(scope="session")
def mgmt(settings) -> Mgmt:
    return Mgmt(settings.management_url)


@pytest.fixture
def proxy(settings):
    """A fault-injecting proxy in front of the broker's management API (faultproxy.py)."""
    p = FaultProxy(settings.management_url).start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def warren_env(settings, tokens_file) -> dict[str, str]:
    """The environment every warren gets (WARREN_LISTEN is added per start)."""
    return {
        "WARREN_MANAGEMENT_URL": settings.management_url,
        "WARREN_MANAGEMENT_USER": "guest",
        "WARREN_MANAGEMENT_PASSWORD": "guest",
        "WARREN_AMQP_HOST": "127.0.0.1",
        "WARREN_AMQP_PORT": str(settings.amqp_port),
        "WARREN_TOKENS_FILE": str(tokens_file),
    }


@pytest.fixture(scope="session")
def warren(settings, warren_env, workdir) -> WarrenProcess:
    """The session's default warren. Stopped with SIGTERM at the end; must exit 0."""
    proc = WarrenProcess(settings.warren_bin, warren_env, workdir, "default").start()
    yield proc
    proc.stop_cleanly()


@pytest.fixture
def warren_factory(settings, warren_env, workdir):
    """start(label, **env_overrides) -> a running extra warren; stopped (exit 0) after the test.

    Restart one with `proc.restart()`, or stop it yourself with `proc.stop_cleanly()`.
    """
    started: list[WarrenProcess] = []

    def start(label: str = "extra", **overrides: str) -> WarrenProcess:
        env = dict(warren_env)
        env.update(overrides)
        proc = WarrenProcess(settings.warren_bin, env, workdir, f"{label}-{secrets.token_hex(2)}")
        started.append(proc)
        return proc.start()

    yield start
    failures = []
    for proc in started:
        if proc.proc is None:
            continue
        try:
            proc.stop_cleanly()
        except (AssertionError, pytest.fail.Exception) as e:
            failures.append(str(e))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def client(warren, tokens, spec):
    """client(team, proc=None) -> Api for that team ('anonymous': no token) on a warren."""

    def make(team: str, proc: WarrenProcess | None = None) -> Api:
        token = None if team == "anonymous" else tokens[team]
        return Api((proc or warren).url, token, spec)

    return make


@pytest.fixture
def api_a(client) -> Api:
    return client("team-a")


@pytest.fixture
def api_b(client) -> Api:
    return client("team-b")


@pytest.fixture
def anon(client) -> Api:
    return client("anonymous")


class EnvNames:
    """Hands out unique environment names and removes whatever they left on the broker."""

    def __init__(self, mgmt: Mgmt):
        self.mgmt = mgmt
        self.names: list[str] = []

    def __call__(self, label: str = "env") -> str:
        name = unique_name(label)
        self.names.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.names:
            for team in TEAMS:
                self.mgmt.purge_environment(vhost_of(team, name))


@pytest.fixture
def new_name(mgmt):
    """new_name(label) -> a fresh environment name; its vhosts/users are purged after the test."""
    names = EnvNames(mgmt)
    yield names
    names.cleanup()


@pytest.fixture
def broker_unchanged(mgmt):
    """Call it to assert no 'warren.*' vhost or user appeared or vanished since the test began."""
    before = mgmt.snapshot()

    def check(context: str = "") -> None:
        after = mgmt.snapshot()
        added = (after[0] - before[0]) | (after[1] - before[1])
        removed = (before[0] - after[0]) | (before[1] - after[1])
        assert not added and not removed, (
            f"the broker changed{' after ' + context if context else ''}: "
            f"added {sorted(added)}, removed {sorted(removed)}")

    return check


# --------------------------------------------------------------------------------------------
# Open Service Broker (/v2): platforms with basic credentials, a server secret, and a warren
# that reads them. Two platforms provision for team-a, one for team-b.

OSB_PLATFORMS = {"cf-a": "team-a", "cf-a2": "team-a", "cf-b": "team-b"}
# The blueprint offered as a plan of its own (and the target of a plan change from the default).
OSB_BLUEPRINTS = {"jobs": {"description": "A work queue and its retry queue",
                           "queues": [{"name": "work"}, {"name": "retry"}]}}


@pytest.fixture(scope="session")
def osb_credentials() -> dict[str, tuple[str, str]]:
    """platform -> (user, password) of its basic credentials."""
    issued = {name: (f"{name}-broker-user", secrets.token_urlsafe(24)) for name in OSB_PLATFORMS}
    for name, (user, password) in issued.items():
        record_secret(password, f"basic password of platform {name}")
        record_secret(base64.b64encode(f"{user}:{password}".encode()).decode(), f"basic credentials of {name}")
    return issued


@pytest.fixture(scope="session")
def osb_env(workdir, osb_credentials) -> dict[str, str]:
    """The variables that turn /v2 on: a platforms file, a secret, and the blueprints."""
    platforms = workdir / "osb-platforms"
    lines = ["# PLATFORM TEAM SHA256HEX(user:password)"]
    lines += [f"{name} {OSB_PLATFORMS[name]} {sha256_hex(f'{user}:{password}')}"
              for name, (user, password) in osb_credentials.items()]
    platforms.write_text("\n".join(lines) + "\n")
    secret = workdir / "osb-secret"
    secret.write_text(secrets.token_hex(32) + "\n")
    blueprints = workdir / "osb-blueprints.json"
    blueprints.write_text(json.dumps(OSB_BLUEPRINTS))
    return {"WARREN_OSB_PLATFORMS_FILE": str(platforms), "WARREN_OSB_SECRET_FILE": str(secret),
            "WARREN_BLUEPRINTS_FILE": str(blueprints)}


@pytest.fixture(scope="session")
def osb_warren(settings, warren_env, osb_env, workdir) -> WarrenProcess:
    """A warren with /v2 turned on. Stopped with SIGTERM at the end; must exit 0."""
    proc = WarrenProcess(settings.warren_bin, dict(warren_env, **osb_env), workdir, "osb").start()
    yield proc
    proc.stop_cleanly()


@pytest.fixture
def osb(osb_warren, osb_credentials, spec):
    """osb(platform, proc=None) -> OSBClient of that platform on a warren (the osb_warren)."""

    def make(platform: str, proc: WarrenProcess | None = None) -> OSBClient:
        user, password = osb_credentials[platform]
        return OSBClient((proc or osb_warren).url, user, password, spec)

    return make


# --------------------------------------------------------------------------------------------
# Measurements (fault cases, recovery times, cluster timings), shown at the end of the run

_REPORT = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def report(pytestconfig):
    """report(topic, line): a line for the end-of-run summary; with WARREN_TEST_REPORT_DIR set,
    also appended to $WARREN_TEST_REPORT_DIR/{topic}.txt (emptied at its first line of the run)."""
    lines = pytestconfig.stash.setdefault(_REPORT, [])
    started: set[str] = set()

    def add(topic: str, line: str) -> None:
        lines.append((topic, line))
        directory = os.environ.get("WARREN_TEST_REPORT_DIR")
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            with open(Path(directory) / f"{topic}.txt", "a" if topic in started else "w") as f:
                f.write(line + "\n")
            started.add(topic)

    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("Warren measurements")
        for topic, line in lines:
            terminalreporter.write_line(f"{topic}: {line}")


# --------------------------------------------------------------------------------------------
# No secret in any log. Autouse and session-wide, so it is set up before any warren
# fixture and torn down after every one of them has stopped: it then reads every log of every
# warren this run started and fails the run if an issued password, a bearer token or the
# management password (all recorded via warren_support.record_secret) appears in one.


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs(report, tmp_path_factory):
    yield
    # Also any warren log a test wrote without WarrenProcess (by the naming convention).
    found = sorted(tmp_path_factory.getbasetemp().rglob("warren*.log"))
    logs = [p for p in dict.fromkeys([*WARREN_LOGS, *found]) if p.exists()]
    leaks = leaked_secrets(logs)
    report("secrets", f"{len(SECRETS)} secrets (passwords, tokens, management credentials) "
                      f"checked against {len(logs)} warren logs: {len(leaks)} leaks")
    if leaks:
        pytest.fail("secrets appear in warren logs:\n  " + "\n  ".join(leaks[:50]), pytrace=False)

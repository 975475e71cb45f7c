"""An operator's mistake with the /v2 secret or the platforms file never
leaves credentials alive behind an answer that says "gone".

A platform takes 410 for success and forgets the credentials it handed out. Before this, a
restart with another WARREN_OSB_SECRET_FILE (or a platform renamed in the platforms file)
made unbind, deprovision and last_operation answer 410 while the binding's user still logged
in. Now:

- start-up refuses a secret the broker's records were not sealed with; with
  WARREN_OSB_ALLOW_UNVERIFIED_SEALS=1 it starts, and every /v2 call on those instances is an
  error (500, the reason in the description, logged at error level), never 410;
- a rotation (new secret, the old one in WARREN_OSB_PREVIOUS_SECRET_FILE) keeps every instance
  and binding working: records are resealed at start-up, a binding made with the old secret is
  answered with the password that logs in, and unbind and deprovision remove them for real;
- a platform renamed in the file (same credentials, SIGHUP) gets errors, not 410, until the
  name is back.

Each test has a team and a platform of its own, so Warrens of other tests (with secrets of
their own) never see these records, nor these Warrens theirs.
"""

from __future__ import annotations

import secrets
import signal
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest

from warren_support import (OSBClient, WarrenProcess, amqp_params_from_uri, assert_osb_error, env_record,
                            log_lines, osb_environment_name, record_secret, sha256_hex, start_refused, vhost_of,
                            wait_for)

LOGIN_REFUSED = (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)


class SecretSetup:
    """A team of its own, one platform for it, three secrets, and Warrens that use them."""

    def __init__(self, settings, warren_env: dict, workdir: Path, mgmt):
        self.settings, self.workdir, self.mgmt = settings, workdir, mgmt
        self.team = f"sec{secrets.token_hex(3)}"
        self.user, self.password = f"{self.team}-platform", secrets.token_urlsafe(24)
        record_secret(self.password, f"basic password of the platform of {self.team}")
        self.platforms = workdir / f"platforms-{self.team}"
        self.name_platform("sec-cf")
        self.secret = {}
        for label in ("a", "b", "c"):
            path = workdir / f"osb-secret-{self.team}-{label}"
            path.write_text(secrets.token_hex(32) + "\n")
            self.secret[label] = str(path)
        self.env = dict(warren_env, WARREN_OSB_PLATFORMS_FILE=str(self.platforms))
        self.procs: list[WarrenProcess] = []
        self.instances: list[str] = []

    def name_platform(self, name: str) -> None:
        self.platforms.write_text(f"{name} {self.team} {sha256_hex(f'{self.user}:{self.password}')}\n")

    def settings_for(self, secret: str, previous: str | None = None, **extra: str) -> dict:
        env = dict(self.env, WARREN_OSB_SECRET_FILE=self.secret[secret], **extra)
        if previous:
            env["WARREN_OSB_PREVIOUS_SECRET_FILE"] = self.secret[previous]
        return env

    def start(self, secret: str, previous: str | None = None, **extra: str) -> WarrenProcess:
        label = f"secret-{secret}{'-' + previous if previous else ''}-{secrets.token_hex(2)}"
        proc = WarrenProcess(self.settings.warren_bin, self.settings_for(secret, previous, **extra), self.workdir, label)
        self.procs.append(proc)
        return proc.start()

    def refused_start(self, secret: str, previous: str | None = None) -> str:
        """Runs warren with these settings, expects it to stop at start-up; returns its output."""
        log = self.workdir / f"warren-refused-{self.team}-{secrets.token_hex(2)}.log"
        return start_refused(self.settings.warren_bin, self.settings_for(secret, previous), log)

    def platform(self, proc: WarrenProcess) -> OSBClient:
        return OSBClient(proc.url, self.user, self.password)

    def new_instance(self) -> str:
        instance = str(uuid.uuid4())
        self.instances.append(instance)
        return instance

    def vhost(self, instance: str) -> str:
        return vhost_of(self.team, osb_environment_name(instance))

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()
        for instance in self.instances:
            self.mgmt.purge_environment(self.vhost(instance))
        self.mgmt.reset_team_index(self.team)


@pytest.fixture
def setup(settings, warren_env, workdir, mgmt):
    made = SecretSetup(settings, warren_env, workdir, mgmt)
    yield made
    made.cleanup()


def logs_in(credentials: dict) -> bool:
    try:
        pika.BlockingConnection(amqp_params_from_uri(credentials["uri"])).close()
        return True
    except LOGIN_REFUSED:
        return False


def provisioned_and_bound(platform: OSBClient, instance: str, binding: str) -> dict:
    resp = platform.provision(instance, {})
    assert resp.status_code == 201, resp.text
    bound = platform.bind(instance, binding)
    assert bound.status_code == 201, bound.text
    credentials = bound.json()["credentials"]
    record_secret(credentials["password"], f"binding {binding} of {instance}")
    assert logs_in(credentials)
    return credentials


def assert_not_acted_on(resp, why: str) -> dict:
    body = assert_osb_error(resp, 500, "InstanceNotVerifiable")
    assert why in body["description"], body
    return body


def errors_logged(proc: WarrenProcess, words: str) -> list[dict]:
    return [line for line in log_lines(proc.log_path, "error") if words in str(line)]


def test_a_restart_with_another_secret_is_refused_and_never_answered_gone(setup, mgmt):
    proc = setup.start("a")
    platform = setup.platform(proc)
    instance = setup.new_instance()
    credentials = provisioned_and_bound(platform, instance, "b1")
    proc.stop_cleanly()

    # Another secret, no rotation declared: start-up stops, naming the way out.
    output = setup.refused_start("b")
    assert "WARREN_OSB_SECRET_FILE" in output and setup.vhost(instance) in output, output
    assert "WARREN_OSB_PREVIOUS_SECRET_FILE" in output, output
    # A rotation from a secret that did not make them either is refused all the same.
    setup.refused_start("b", previous="c")

    # The operator says the old secret is lost: Warren starts, and every /v2 call on the
    # instance is an error the platform sees (and retries), never a 410.
    lost = setup.start("b", WARREN_OSB_ALLOW_UNVERIFIED_SEALS="1")
    assert errors_logged(lost, "sealed with another secret"), "start-up logged no error"
    platform = setup.platform(lost)
    why = "seal does not verify"
    assert_not_acted_on(platform.unbind(instance, "b1"), why)
    assert_not_acted_on(platform.deprovision(instance), why)
    assert_not_acted_on(platform.deprovision(instance, accepts_incomplete=True), why)
    assert_not_acted_on(platform.last_operation(instance), why)
    assert_not_acted_on(platform.fetch_binding(instance, "b1"), why)
    assert_not_acted_on(platform.binding_last_operation(instance, "b1"), why)
    assert_not_acted_on(platform.bind(instance, "b2"), why)
    assert_not_acted_on(platform.fetch(instance), why)
    assert errors_logged(lost, why), "no request was logged at error level"
    # Nothing was removed: the platform was told so, and the credentials it holds still work.
    assert mgmt.vhost(setup.vhost(instance)) is not None
    assert logs_in(credentials)
    lost.stop_cleanly()

    # Back with the secret that made them: everything goes for real.
    again = setup.start("a")
    platform = setup.platform(again)
    assert platform.unbind(instance, "b1").status_code == 200
    assert not logs_in(credentials)
    assert platform.deprovision(instance).status_code == 200
    assert mgmt.vhost(setup.vhost(instance)) is None
    assert platform.deprovision(instance).status_code == 410


def test_a_secret_rotation_keeps_every_instance_and_binding_working(setup, mgmt):
    proc = setup.start("a")
    platform = setup.platform(proc)
    first, second = setup.new_instance(), setup.new_instance()
    old_first = provisioned_and_bound(platform, first, "b1")
    old_second = provisioned_and_bound(platform, second, "b2")
    seals = {i: env_record(mgmt.vhost(setup.vhost(i)))["platform"]["seal"] for i in (first, second)}
    proc.stop_cleanly()

    # The rotation: the new secret, and the old one beside it. Records are resealed at start.
    rotating = setup.start("b", previous="a")
    platform = setup.platform(rotating)
    for instance in (first, second):
        resealed = env_record(mgmt.vhost(setup.vhost(instance)))["platform"]["seal"]
        assert resealed != seals[instance], f"{instance}: its record was not resealed"
    # A binding made with the old secret is answered with the password that logs in.
    fetched = platform.fetch_binding(first, "b1")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["credentials"]["password"] == old_first["password"]
    repeated = platform.bind(first, "b1")
    assert repeated.status_code == 200, repeated.text
    assert repeated.json()["credentials"]["password"] == old_first["password"]
    # A new binding (the platform rotating its binding) gets the new secret's password.
    rotated = platform.bind(first, "b1-rotated", predecessor="b1")
    assert rotated.status_code == 201, rotated.text
    new_first = rotated.json()["credentials"]
    record_secret(new_first["password"], "rotated binding")
    assert new_first["password"] != old_first["password"] and logs_in(new_first)
    # Unbind removes the old login for real.
    assert platform.unbind(first, "b1").status_code == 200
    assert not logs_in(old_first)
    assert logs_in(old_second)
    rotating.stop_cleanly()

    # The rotation is over: the new secret alone. The resealed records verify with it.
    done = setup.start("b")
    platform = setup.platform(done)
    assert platform.fetch_binding(first, "b1-rotated").json()["credentials"]["password"] == new_first["password"]
    # A binding still from the old secret is an error, never a password that does not log in;
    # it can still be unbound, and then it is gone.
    assert_not_acted_on(platform.fetch_binding(second, "b2"), "another secret")
    assert platform.unbind(second, "b2").status_code == 200
    assert not logs_in(old_second)
    for instance in (first, second):
        assert platform.deprovision(instance).status_code == 200
        assert mgmt.vhost(setup.vhost(instance)) is None
        assert platform.deprovision(instance).status_code == 410
    assert not logs_in(new_first)


def test_a_platform_renamed_in_the_file_gets_errors_until_its_name_is_back(setup, mgmt):
    proc = setup.start("a")
    platform = setup.platform(proc)
    instance = setup.new_instance()
    credentials = provisioned_and_bound(platform, instance, "b1")

    # Same credentials, another name, SIGHUP: the platform is let in, its instance is not acted on.
    setup.name_platform("sec-cf-renamed")
    proc.proc.send_signal(signal.SIGHUP)
    why = "no longer names"
    wait_for(lambda: platform.fetch_binding(instance, "b1").status_code == 500, timeout=10, interval=0.1,
             what="the renamed platform's reload takes effect")
    assert_not_acted_on(platform.unbind(instance, "b1"), why)
    assert_not_acted_on(platform.deprovision(instance), why)
    assert_not_acted_on(platform.last_operation(instance), why)
    assert_not_acted_on(platform.fetch(instance), why)
    assert logs_in(credentials) and mgmt.vhost(setup.vhost(instance)) is not None
    assert errors_logged(proc, why)
    # A restart in that state says so at start-up, without refusing to serve the others.
    proc.stop_cleanly()
    proc.start()
    platform = setup.platform(proc)
    assert errors_logged(proc, "platforms the platforms file does not name")

    # The old name back: everything goes for real.
    setup.name_platform("sec-cf")
    proc.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: platform.fetch_binding(instance, "b1").status_code == 200, timeout=10, interval=0.1,
             what="the platform's old name is back")
    assert platform.unbind(instance, "b1").status_code == 200
    assert not logs_in(credentials)
    assert platform.deprovision(instance).status_code == 200
    assert mgmt.vhost(setup.vhost(instance)) is None

"""The Swift client generated from openapi.yaml (module WarrenClient), used against a real
Warren and a real broker.

The program Tests/ClientRoundTrip (built with the package as `warren-client-roundtrip`) drives
the generated client through the round trip a portal written in Swift would make: create (the
name-only form and the full form with dead-lettering, a delivery limit, bindings, roles and
limits), get, list, PATCH, rotation, a 409 and a 404 read as the typed cases openapi.yaml
declares, blueprints, delete, and on /v2 catalog, provision, bind, unbind, deprovision. Every
answer goes through the generated decoders, which refuse a key the schema does not name: a
document the generator misread fails there. This file checks on the broker what the program
reports: everything it made is gone afterwards, and no set of credentials it was given still
logs in; and, with a create it keeps, that the credentials the generated client decoded carry
a message through the environment's exchange and queue (pika).

That the committed client is what openapi.yaml generates today is scripts/openapi-clients.sh's
check, run by `make test`.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pika
import pytest

from conftest import OSB_PLATFORMS
from warren_support import amqp_params, osb_environment_name, publish_and_get, record_secret, vhost_of

PLATFORM = next(iter(OSB_PLATFORMS))


@pytest.fixture(scope="module")
def roundtrip_bin(settings) -> str:
    """Built beside warren (same build, same folder) by `swift build --build-tests`."""
    path = os.environ.get("WARREN_CLIENT_ROUNDTRIP_BIN") or str(Path(settings.warren_bin).parent / "warren-client-roundtrip")
    assert os.access(path, os.X_OK), f"{path} is not built: `swift build --build-tests` builds it"
    return path


@pytest.fixture
def osb_instance(mgmt):
    """An instance id and a binding id for the program's /v2 steps; the instance's vhost is purged
    afterwards whatever happened."""
    instance = str(uuid.uuid4())
    yield instance, str(uuid.uuid4())
    mgmt.purge_environment(vhost_of(OSB_PLATFORMS[PLATFORM], osb_environment_name(instance)))


def test_generated_swift_client_round_trip(roundtrip_bin, osb_warren, tokens, osb_credentials, osb_instance, new_name,
                                           mgmt, settings, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(tokens["team-a"] + "\n")
    user, password = osb_credentials[PLATFORM]
    password_file = tmp_path / "osb-password"
    password_file.write_text(password + "\n")
    instance, binding = osb_instance
    env = dict(os.environ, WARREN_URL=osb_warren.url, WARREN_TOKEN_FILE=str(token_file),
               WARREN_OSB_USER=user, WARREN_OSB_PASSWORD_FILE=str(password_file),
               WARREN_NAMES=" ".join(new_name(label) for label in ("swiftsimple", "swiftfull", "swiftnobody")),
               WARREN_OSB_INSTANCE=instance, WARREN_OSB_BINDING=binding)

    proc = subprocess.run([roundtrip_bin], env=env, capture_output=True, text=True, timeout=300)
    reports = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            record_secret(entry.get("password"), f"password of the Swift round trip's {entry['step']}")
            reports.append(entry)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.stdout.rstrip().endswith("round trip: 16 steps passed"), proc.stdout[-2000:]
    steps = {entry["step"]: entry for entry in reports}
    assert set(steps) == {"create-simple", "create-full", "rotate", "bind"}, steps.keys()
    assert steps["bind"]["vhost"] == vhost_of(OSB_PLATFORMS[PLATFORM], osb_environment_name(instance))

    # The environments were deleted by the program, and the instance deprovisioned: nothing is left.
    for vhost in (steps["create-simple"]["vhost"], steps["create-full"]["vhost"], steps["bind"]["vhost"]):
        assert mgmt.vhost(vhost) is None, f"{vhost} is still on the broker"
    for step in ("create-simple", "create-full", "rotate", "bind"):
        entry = steps[step]
        assert mgmt.user(entry["username"]) is None, f"{step}'s user {entry['username']} is still on the broker"
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(amqp_params("127.0.0.1", settings.amqp_port, entry["vhost"],
                                                entry["username"], entry["password"])).close()


def test_generated_swift_client_credentials_carry_messages(roundtrip_bin, warren, tokens, new_name, settings, tmp_path):
    """The credentials the generated client decoded are the ones that work: run the program's
    create against a Warren, keep the environment (no delete), and publish and consume with
    what it printed. (The round trip above deletes what it made, so its credentials are checked
    there only for being revoked.)"""
    name = new_name("swiftcreds")
    token_file = tmp_path / "token"
    token_file.write_text(tokens["team-a"] + "\n")
    env = dict(os.environ, WARREN_URL=warren.url, WARREN_TOKEN_FILE=str(token_file), WARREN_CLIENT_CREATE_ONLY=name)
    proc = subprocess.run([roundtrip_bin], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    entry = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    record_secret(entry["password"], "password of the Swift client's create")
    conn = pika.BlockingConnection(amqp_params("127.0.0.1", settings.amqp_port, entry["vhost"],
                                               entry["username"], entry["password"]))
    try:
        assert publish_and_get(conn, name, name, entry["queue"], b"from swift") == b"from swift"
    finally:
        conn.close()

"""TLS to the management API: a broker of its own whose management plugin serves HTTPS with a
CA and a server certificate made here with openssl (scripts/broker.sh, BROKER_MGMT_TLS_DIR).
With WARREN_MANAGEMENT_CA_FILE naming that CA, warren is ready and provisions; with another CA,
with none (the system store) or with a host name the certificate does not carry, /readyz is a
prompt 503 whose detail says why, the log says the certificate failed verification, and
nothing reaches the broker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pika
import pytest

from warren_support import Api, Mgmt, amqp_params_from_uri, assert_problem, parse_env_file, unique_name

REPO = Path(__file__).resolve().parent.parent.parent
BROKER_SH = REPO / "scripts" / "broker.sh"


def openssl(*args: str, cwd: Path) -> None:
    run = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"openssl {' '.join(args)}: {run.stderr}"


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate it signed for DNS:localhost only (so 127.0.0.1 does not match),
    and an unrelated second CA."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Warren test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "key.pem",
            "-out", "server.csr", cwd=directory)
    (directory / "server.ext").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                          "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "cert.pem", cwd=directory)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Some other CA",
            "-keyout", "other-ca.key", "-out", "other-ca.pem", cwd=directory)
    return {"ca": directory / "ca.pem", "other_ca": directory / "other-ca.pem"}


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    pki = make_pki(base / "pki")
    broker_dir = base / "broker"
    env = dict(os.environ, BROKER_MGMT_TLS_DIR=str(base / "pki"))
    started = time.monotonic()
    run = subprocess.run(["bash", str(BROKER_SH), "start", str(broker_dir)], env=env, capture_output=True,
                         text=True, timeout=150)
    try:
        assert run.returncode == 0, f"scripts/broker.sh start (TLS) failed:\n{run.stdout}\n{run.stderr}"
        info = parse_env_file(broker_dir / "broker.env")
        assert info.get("BROKER_MGMT_TLS_URL", "").startswith("https://localhost:"), info
        info["started_in"] = f"{time.monotonic() - started:.1f}"
        yield {**info, **pki}
    finally:
        subprocess.run(["bash", str(BROKER_SH), "stop", str(broker_dir)], capture_output=True, timeout=60)
        shutil.rmtree(broker_dir, ignore_errors=True)


def tls_warren(warren_factory, tls_broker, label: str, url: str | None = None, ca: Path | None = None):
    overrides = {"WARREN_MANAGEMENT_URL": url or tls_broker["BROKER_MGMT_TLS_URL"],
                 "WARREN_AMQP_PORT": tls_broker["BROKER_AMQP_PORT"], "WARREN_MANAGEMENT_TIMEOUT_MS": "5000"}
    if ca is not None:
        overrides["WARREN_MANAGEMENT_CA_FILE"] = str(ca)
    return warren_factory(label, **overrides)


def test_verified_tls_is_ready_and_provisions(warren_factory, tls_broker, tokens, spec, report):
    proc = tls_warren(warren_factory, tls_broker, "tls-ok", ca=tls_broker["ca"])
    ready = Api(proc.url, None, spec).request("GET", "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    api = Api(proc.url, tokens["team-a"], spec)
    name = unique_name("tls")
    mgmt = Mgmt(tls_broker["WARREN_MANAGEMENT_URL"])
    try:
        env = api.create_ok({"name": name})
        assert mgmt.vhost(env["vhost"]) is not None, "the vhost is not on the TLS broker"
        assert env["connection"]["port"] == int(tls_broker["BROKER_AMQP_PORT"])
        pika.BlockingConnection(amqp_params_from_uri(env["connection"]["uri"])).close()
        assert api.get_ok(name)["status"] == "ready"
        assert api.delete(name).status_code == 204
        assert mgmt.vhost(env["vhost"]) is None
    finally:
        mgmt.purge_environment(f"warren.team-a.{name}")
    report("tls", f"TLS broker started in {tls_broker['started_in']} s; readyz 200 and create/delete over "
                  f"{tls_broker['BROKER_MGMT_TLS_URL']} with WARREN_MANAGEMENT_CA_FILE")


CASES = [
    # (label, url template or None for the TLS URL, which CA: "other", None)
    ("wrong-ca", None, "other_ca"),
    ("system-store", None, None),
    ("host-mismatch", "https://127.0.0.1:{port}", "ca"),
]


@pytest.mark.parametrize("label,url,ca", CASES, ids=[c[0] for c in CASES])
def test_unverifiable_certificate_is_503_and_logged(warren_factory, tls_broker, tokens, spec, label, url, ca):
    if url:
        url = url.format(port=tls_broker["BROKER_MGMT_TLS_PORT"])
    proc = tls_warren(warren_factory, tls_broker, f"tls-{label}", url=url, ca=tls_broker[ca] if ca else None)
    started = time.monotonic()
    ready = Api(proc.url, None, spec).request("GET", "/readyz")
    assert time.monotonic() - started < 5, "readyz must answer promptly"
    body = assert_problem(ready, 503, "broker-unavailable")
    assert "TLS" in body["detail"] or "certificate" in body["detail"].lower(), body
    assert ready.headers.get("Retry-After"), ready.headers

    api = Api(proc.url, tokens["team-a"], spec)
    name = unique_name("tls-bad")
    created = api.create({"name": name})
    assert created.status_code in (502, 503), created.text
    assert "TLS" in created.json()["detail"], created.json()
    assert Mgmt(tls_broker["WARREN_MANAGEMENT_URL"]).vhost(f"warren.team-a.{name}") is None
    proc.stop_cleanly()
    log = proc.log_path.read_text().lower()
    assert "tls verification failed" in log or "certificate" in log, f"the log does not say why:\n{log[-2000:]}"


def test_plain_http_to_the_tls_port_fails_promptly(warren_factory, tls_broker, spec):
    url = f"http://127.0.0.1:{tls_broker['BROKER_MGMT_TLS_PORT']}"
    proc = tls_warren(warren_factory, tls_broker, "tls-plain", url=url)
    started = time.monotonic()
    ready = Api(proc.url, None, spec).request("GET", "/readyz")
    assert time.monotonic() - started < 6, "readyz must answer within the management timeout"
    assert_problem(ready, 503, "broker-unavailable")

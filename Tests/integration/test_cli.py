"""warren-cli, the command-line client (Sources/warren-cli, docs/cli.md), against a real Warren
and a real broker.

Built beside warren by `swift build`. Every command is run as a person or a script would run
it, and what it did is checked on the broker: the queues a create or a patch made, the vhost a
delete removed, the password a rotation printed logging in over AMQP. The exit statuses a script
relies on are checked one by one (3 not found, 4 conflict, 5 invalid, 6 not authorized, 7 busy,
8 unreachable, 2 usage), and so is docs/cli.md's table of them against `--help`.

The token is given by the environment or a file only, never on the command line; every run
checks that it appears neither in the arguments nor in anything the CLI printed, and every
password the CLI printed is recorded so that the session's log check covers it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from warren_support import (amqp_params, amqp_params_from_uri, connection_refusal, free_port, record_response_secrets,
                            record_secret, vhost_of, wait_for)

REPO = Path(__file__).resolve().parent.parent.parent
COMMANDS = ["create", "get", "list", "patch", "delete", "credentials", "credentials rotate",
            "credentials revoke", "queues", "keda", "blueprints"]
PASSWORD_LINE = re.compile(r"^\s*password:\s+(\S+)\s*$", re.MULTILINE)
USERNAME_LINE = re.compile(r"^\s*username:\s+(\S+)\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def cli_bin(settings) -> str:
    path = Path(settings.warren_bin).parent / "warren-cli"
    assert path.is_file() and os.access(path, os.X_OK), (
        f"{path} is not built: `swift build` builds warren-cli beside warren")
    return str(path)


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def expect(self, code: int) -> "Run":
        assert self.returncode == code, (f"{' '.join(self.argv[1:])}: exit {self.returncode}, expected {code}\n"
                                         f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}")
        return self

    def json(self):
        return json.loads(self.stdout)


class Cli:
    """Runs warren-cli against one Warren as one team. The token goes by WARREN_TOKEN or a file
    (WARREN_TOKEN_FILE / --token-file), never in argv."""

    def __init__(self, binary: str, url: str, token: str, secrets_not_to_print: list[str], tmp_path: Path):
        self.binary = binary
        self.url = url
        self.token = token
        self.secrets = secrets_not_to_print
        self.tmp_path = tmp_path

    def __call__(self, *args: str, token: str | None = None, via: str = "env", url: str | None = None,
                 stdin: str | None = None, extra_env: dict[str, str] | None = None) -> Run:
        token = self.token if token is None else token
        argv = [self.binary, *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
        env["WARREN_URL"] = url or self.url
        if via == "env":
            env["WARREN_TOKEN"] = token
        elif via == "file":
            path = self.tmp_path / "token"
            path.write_text(token + "\n")
            path.chmod(0o600)
            env["WARREN_TOKEN_FILE"] = str(path)
        elif via == "flag-file":
            path = self.tmp_path / "token-for-flag"
            path.write_text(token + "\n")
            argv += ["--token-file", str(path)]
        env.update(extra_env or {})
        for secret in [token, *self.secrets]:
            assert secret not in " ".join(argv), "a token must never be on the command line"
        proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=120)
        run = Run(argv, proc.returncode, proc.stdout, proc.stderr)
        # Whatever the CLI printed, human or JSON, its passwords go into the log-leak check.
        for password in PASSWORD_LINE.findall(run.stdout):
            record_secret(password, f"password printed by warren-cli {args[0]}")
        record_response_secrets(run.stdout)
        for secret in [token, *self.secrets]:
            assert secret not in run.stdout and secret not in run.stderr, (
                f"warren-cli {' '.join(args)} printed a token")
        # Never a stack, a crash report, or the generated client's error (it lists the headers).
        for forbidden in ("ClientError", "Fatal error", "Stack dump", "Traceback", "operationInput"):
            assert forbidden not in run.stderr and forbidden not in run.stdout, (
                f"warren-cli {' '.join(args)} printed {forbidden!r}:\n{run.stderr[-2000:]}")
        return run


@pytest.fixture
def cli(cli_bin, warren, tokens, tmp_path) -> Cli:
    return Cli(cli_bin, warren.url, tokens["team-a"], list(tokens.values()), tmp_path)


@pytest.fixture
def osb_cli(cli_bin, osb_warren, tokens, tmp_path) -> Cli:
    return Cli(cli_bin, osb_warren.url, tokens["team-a"], list(tokens.values()), tmp_path)


def one(pattern: re.Pattern, text: str) -> str:
    found = pattern.findall(text)
    assert len(found) == 1, f"{pattern.pattern}: {found} in\n{text}"
    return found[0]


def logs_in(settings, vhost: str, username: str, password: str) -> None:
    conn = pika.BlockingConnection(amqp_params("127.0.0.1", settings.amqp_port, vhost, username, password))
    conn.close()


def keys_sorted_everywhere(text: str) -> bool:
    """Whether every object in the JSON text has its keys in sorted order, as written."""
    ordered = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        ordered.append(keys == sorted(keys))
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return all(ordered) and len(ordered) > 1


# --------------------------------------------------------------------------------------------
# create


def test_create_prints_the_queue_and_the_password_once(cli, new_name, mgmt, settings):
    name = new_name("cli")
    vhost = vhost_of("team-a", name)
    run = cli("create", name, "--dead-letter", "--delivery-limit", "5", "--role", "consumer").expect(0)
    out = run.stdout
    assert f"Created environment {name}." in out
    assert re.search(rf"^vhost:\s+{re.escape(vhost)}$", out, re.MULTILINE), out
    # The queue table names the queue, its dead-letter queue and its delivery limit.
    assert re.search(rf"^\s+{re.escape(name)}\s+quorum\s+{re.escape(name)}\.dlq\s+delivery_limit=5$", out,
                     re.MULTILINE), out
    passwords = PASSWORD_LINE.findall(out)
    usernames = USERNAME_LINE.findall(out)
    assert len(passwords) == 2 and len(usernames) == 2, out  # full, consumer
    for password in passwords:
        assert out.count(password) == 1, "a password is printed once (the URI is shown without it)"
    assert "will not be shown again" in out
    uri = re.search(r"^\s+uri:\s+(\S+)$", out, re.MULTILINE).group(1)
    assert uri == f"amqp://127.0.0.1:{settings.amqp_port}/{vhost}", uri

    assert mgmt.queue(vhost, name) is not None
    assert mgmt.queue(vhost, f"{name}.dlq") is not None
    for username, password in zip(usernames, passwords):
        logs_in(settings, vhost, username, password)


def test_create_json_is_the_answer_with_sorted_keys(cli, new_name, mgmt, settings):
    name = new_name("clijson")
    vhost = vhost_of("team-a", name)
    run = cli("create", name, "--exchange-type", "topic", "--routing-key", "orders.#", "--queue-type", "classic",
              "--max-connections", "9", "--json").expect(0)
    body = run.json()
    assert keys_sorted_everywhere(run.stdout), run.stdout
    assert body["name"] == name and body["status"] == "ready" and body["vhost"] == vhost
    assert body["exchange"]["type"] == "topic" and body["routing_key"] == "orders.#"
    assert body["queue"]["type"] == "classic" and body["limits"]["max_connections"] == 9
    creds = body["credentials"]
    assert creds["password"] and creds["username"].startswith(vhost + ".")
    # --json carries the answer as Warren sent it: the URI with its credentials.
    assert "@" in body["connection"]["uri"]
    assert mgmt.exchange(vhost, name)["type"] == "topic"
    assert mgmt.queue(vhost, name)["type"] == "classic"
    logs_in(settings, vhost, creds["username"], creds["password"])


def test_create_from_a_file_in_the_full_form(cli, new_name, mgmt, tmp_path):
    name = new_name("clifile")
    vhost = vhost_of("team-a", name)
    body = {
        "name": "overridden-by-the-argument",
        "queues": [{"name": "jobs", "delivery_limit": 5, "dead_letter": True},
                   {"name": "results", "type": "classic", "max_priority": 5}],
        "bindings": [{"queue": "jobs", "routing_key": "jobs.*"}, {"queue": "results", "routing_key": "results.#"}],
        "limits": {"max_connections": 10},
        "roles": ["producer"],
    }
    path = tmp_path / "create.json"
    path.write_text(json.dumps(body))
    answer = cli("create", name, "--file", str(path), "--json").expect(0).json()
    assert answer["name"] == name
    assert [q["name"] for q in answer["queues"]] == ["jobs", "results"]
    assert {(b["queue"], b["routing_key"]) for b in answer["bindings"]} >= {("jobs", "jobs.*"), ("results", "results.#")}
    assert set(answer["role_credentials"]) == {"producer"}
    for queue in ("jobs", "jobs.dlq", "results"):
        assert mgmt.queue(vhost, queue) is not None, queue
    assert mgmt.queue(vhost, "results")["type"] == "classic"
    assert [b["routing_key"] for b in mgmt.bindings(vhost, name, "jobs")] == ["jobs.*"]

    # From standard input, the name in the body (no NAME argument); human output.
    second = new_name("clistdin")
    run = cli("create", "--file", "-", stdin=json.dumps(dict(body, name=second))).expect(0)
    assert f"Created environment {second}." in run.stdout
    assert re.search(r"^\s+results\s+classic\s+-\s+max_priority=5$", run.stdout, re.MULTILINE), run.stdout
    assert mgmt.queue(vhost_of("team-a", second), "results") is not None


def test_a_file_is_checked_before_anything_is_sent(cli, new_name, mgmt, tmp_path):
    name = new_name("clicheck")
    run = cli("create", name, "--file", "-", stdin=json.dumps({"queue": {"colour": "blue"}})).expect(5)
    assert "queue.colour" in run.stderr, run.stderr
    run = cli("create", name, "--file", "-", stdin=json.dumps({"queues": [{"name": "a", "type": "lazy"}]})).expect(5)
    assert "queues[0].type" in run.stderr, run.stderr
    cli("create", name, "--file", "-", stdin="[1, 2]").expect(5)
    assert mgmt.vhost(vhost_of("team-a", name)) is None, "a refused body must reach no broker"
    run = cli("create", name, "--file", str(tmp_path / "missing.json")).expect(2)
    assert "missing.json" in run.stderr
    # --file is the whole body: no topology option goes with it.
    cli("create", name, "--file", "-", "--queue-type", "classic", stdin="{}").expect(2)


# --------------------------------------------------------------------------------------------
# get, list, patch, credentials, delete, blueprints


def test_get_and_list(cli, new_name):
    name = new_name("cliget")
    vhost = vhost_of("team-a", name)
    password = cli("create", name, "--json").expect(0).json()["credentials"]["password"]

    run = cli("get", name).expect(0)
    assert re.search(r"^status:\s+ready$", run.stdout, re.MULTILINE), run.stdout
    assert re.search(rf"^\s+{re.escape(name)}\s+quorum\b", run.stdout, re.MULTILINE), run.stdout  # queue table
    assert re.search(rf"^\s+{re.escape(name)}\s+{re.escape(name)}\s+-$", run.stdout, re.MULTILINE), run.stdout  # binding
    assert "connection:" in run.stdout and vhost in run.stdout
    assert password not in run.stdout and "password" not in run.stdout

    body = cli("get", name, "--json").expect(0).json()
    assert body["status"] == "ready" and body["missing"] == [] and "credentials" not in body

    listed = cli("list").expect(0).stdout
    header = listed.splitlines()[0].split()
    assert header == ["NAME", "STATUS", "VHOST", "CREATED"], listed
    assert re.search(rf"^{re.escape(name)}\s+\S+\s+{re.escape(vhost)}\s+\d{{4}}-\d\d-\d\dT", listed, re.MULTILINE), listed
    assert name in [item["name"] for item in cli("list", "--json").expect(0).json()["items"]]


def test_patch_adds_a_queue_on_the_broker(cli, new_name, mgmt, tmp_path):
    name = new_name("clipatch")
    vhost = vhost_of("team-a", name)
    cli("create", name, "--json").expect(0)

    run = cli("patch", name, "--queue", "extra:classic", "--queue", "audit", "--bind", "extra=extra.#").expect(0)
    assert re.search(r"^\s+extra\s+classic\b", run.stdout, re.MULTILINE), run.stdout
    assert mgmt.queue(vhost, "extra")["type"] == "classic"
    assert mgmt.queue(vhost, "audit")["type"] == "quorum"
    assert [b["routing_key"] for b in mgmt.bindings(vhost, name, "extra")] == ["extra.#"]
    assert mgmt.bindings(vhost, name, "audit") == [], "a queue is bound only by the --bind given"

    path = tmp_path / "change.json"
    path.write_text(json.dumps({"queues": [{"name": "retry", "dead_letter": True}], "limits": {"max_connections": 7}}))
    body = cli("patch", name, "--file", str(path), "--json").expect(0).json()
    assert body["limits"]["max_connections"] == 7
    assert mgmt.queue(vhost, "retry.dlq") is not None

    cli("patch", name).expect(2)  # nothing to change


def test_credentials_rotate_gives_a_working_password_and_revoke_ends_the_old(cli, new_name, mgmt, settings):
    name = new_name("clirotate")
    vhost = vhost_of("team-a", name)
    created = cli("create", name, "--json").expect(0).json()["credentials"]

    run = cli("credentials", "rotate", name).expect(0)
    username, password = one(USERNAME_LINE, run.stdout), one(PASSWORD_LINE, run.stdout)
    assert run.stdout.count(password) == 1 and "will not be shown again" in run.stdout
    assert (username, password) != (created["username"], created["password"])
    logs_in(settings, vhost, username, password)
    logs_in(settings, vhost, created["username"], created["password"])  # the old set still works

    cli("credentials", "revoke", name, created["username"]).expect(0)
    assert mgmt.user(created["username"]) is None
    connection_refusal(amqp_params("127.0.0.1", settings.amqp_port, vhost, created["username"], created["password"]))
    cli("credentials", "revoke", name, created["username"]).expect(3)

    issued = cli("credentials", "rotate", name, "--role", "consumer", "--revoke-others-after", "600", "--json").expect(0).json()
    assert issued["credentials"]["role"] == "consumer"
    logs_in(settings, vhost, issued["credentials"]["username"], issued["credentials"]["password"])


def test_kubernetes_secret_prints_a_list_for_kubectl(cli, new_name, settings):
    from test_kubernetes_secret import validate_secret
    name = new_name("clik8s")
    vhost = vhost_of("team-a", name)
    listed = cli("create", name, "--role", "consumer", "--kubernetes-secret", "--namespace", "shop").expect(0).json()
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert [s["metadata"]["labels"]["warren/role"] for s in listed["items"]] == ["full", "consumer"]
    for secret in listed["items"]:
        data = validate_secret(secret, namespace="shop")
        logs_in(settings, vhost, data["username"], data["password"])
    rotated = cli("credentials", "rotate", name, "--role", "consumer", "--kubernetes-secret").expect(0).json()
    [secret] = rotated["items"]
    data = validate_secret(secret)
    assert secret["metadata"]["name"] == listed["items"][1]["metadata"]["name"]
    logs_in(settings, vhost, data["username"], data["password"])
    # --namespace alone is a usage error: it says where the Secrets go.
    cli("credentials", "rotate", name, "--namespace", "shop").expect(2)
    # A namespace Kubernetes would refuse is Warren's 400: exit 5, nothing issued.
    cli("credentials", "rotate", name, "--kubernetes-secret", "--namespace", "Shop").expect(5)


def test_delete_removes_the_vhost(cli, new_name, mgmt):
    name = new_name("clidelete")
    vhost = vhost_of("team-a", name)
    cli("create", name, "--json").expect(0)
    assert mgmt.vhost(vhost) is not None
    assert cli("delete", name).expect(0).stdout.strip() == f"Deleted environment {name}."
    assert mgmt.vhost(vhost) is None
    cli("get", name).expect(3)
    cli("delete", name).expect(3)

    later = new_name("clidelasync")
    cli("create", later, "--async", "--json").expect(0)
    wait_for(lambda: cli("get", later, "--json").expect(0).json()["status"] == "ready", 60,
             what="the asynchronous create to be ready")
    cli("delete", later, "--async", "--force").expect(0)
    wait_for(lambda: cli("get", later).returncode == 3, 60, what="the asynchronous delete to finish")
    assert mgmt.vhost(vhost_of("team-a", later)) is None


def test_protected_create_patch_get_and_a_refused_delete(cli, new_name, mgmt):
    """create --protected; get shows it; delete exits 4 with Warren's problem and this tool's way
    out, --force or not, and the vhost stays; patch --unprotect, then delete works; patch
    --protect protects it again."""
    name = new_name("cliprotect")
    vhost = vhost_of("team-a", name)
    created = cli("create", name, "--protected").expect(0)
    assert re.search(r"^protected:\s+yes", created.stdout, re.MULTILINE), created.stdout
    assert cli("get", name, "--json").expect(0).json()["protected"] is True
    assert re.search(r"^protected:\s+yes", cli("get", name).expect(0).stdout, re.MULTILINE)
    for extra in ([], ["--force"], ["--force", "--async"]):
        run = cli("delete", name, *extra).expect(4)
        assert run.stderr.startswith("error: Environment is protected from deletion (409): "), run.stderr
        assert f"warren-cli patch {name} --unprotect" in run.stderr, run.stderr
        assert run.stdout == ""
    assert mgmt.vhost(vhost) is not None
    cli("patch", name, "--protect", "--unprotect").expect(2)
    lifted = cli("patch", name, "--unprotect").expect(0)
    assert re.search(r"^protected:\s+no$", lifted.stdout, re.MULTILINE), lifted.stdout
    assert cli("patch", name, "--protect", "--json").expect(0).json()["protected"] is True
    cli("delete", name).expect(4)
    cli("patch", name, "--unprotect", "--json").expect(0)
    cli("delete", name).expect(0)
    assert mgmt.vhost(vhost) is None


def test_blueprints(osb_cli, new_name, mgmt):
    run = osb_cli("blueprints").expect(0)
    assert re.search(r"^jobs\s+.*work, retry\s+A work queue and its retry queue$", run.stdout, re.MULTILINE), run.stdout
    assert [b["name"] for b in osb_cli("blueprints", "--json").expect(0).json()["items"]] == ["jobs"]

    name = new_name("cliblue")
    osb_cli("create", name, "--blueprint", "jobs", "--json").expect(0)
    for queue in ("work", "retry"):
        assert mgmt.queue(vhost_of("team-a", name), queue) is not None
    # A blueprint is a whole topology.
    osb_cli("create", name, "--blueprint", "jobs", "--queue-type", "classic").expect(2)


def test_queues_and_keda(cli, new_name, settings):
    """`queues` shows what was published (the broker's statistics lag: polled, bounded); `keda`
    prints a Kubernetes List of the two manifests on standard output, and the Secret's command
    on standard error, with no password in either."""
    name = new_name("cliqueues")
    created = cli("create", name, "--role", "consumer", "--json").expect(0).json()
    conn = pika.BlockingConnection(amqp_params_from_uri(created["connection"]["uri"]))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish(created["exchange"]["name"], name, f"job {i}".encode(), mandatory=True)
    finally:
        conn.close()

    row = re.compile(rf"^{re.escape(name)}\s+5\s+0\s+0\s+\d+\.\d\d\s+\d+\.\d\d$", re.MULTILINE)
    last = []
    try:
        wait_for(lambda: last.append(cli("queues", name).expect(0).stdout) or row.search(last[-1]), 60, interval=0.5,
                 what="warren-cli queues to show the 5 ready messages")
    except AssertionError as e:
        raise AssertionError(f"{e}; it last printed:\n{last[-1]}")
    assert last[-1].splitlines()[0].split() == ["QUEUE", "READY", "UNACKED", "CONSUMERS", "PUBLISH/S", "DELIVER/S"]
    assert "warren.claim" not in last[-1] and "lag" in last[-1]
    queues = cli("queues", name, "--json").expect(0).json()["queues"]
    assert [q["name"] for q in queues] == [name] and queues[0]["messages_ready"] == 5, queues

    run = cli("keda", name, "--queue", name, "--deployment", "worker", "--target", "3", "--max-replicas", "4").expect(0)
    listed = run.json()
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List"), listed
    scaled, auth = listed["items"]
    assert scaled["kind"] == "ScaledObject" and auth["kind"] == "TriggerAuthentication"
    trigger = scaled["spec"]["triggers"][0]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "worker" and scaled["spec"]["maxReplicaCount"] == 4
    assert trigger["metadata"]["queueName"] == name and trigger["metadata"]["value"] == "3"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"] == f"{name}-rabbitmq"
    assert f"kubectl create secret generic {name}-rabbitmq --from-literal=host='amqp://USERNAME:PASSWORD@" in run.stderr, run.stderr
    for credentials in [created["credentials"], *created["role_credentials"].values()]:
        assert credentials["password"] not in run.stdout + run.stderr
    answer = cli("keda", name, "--queue", name, "--json").expect(0).json()
    assert set(answer) == {"scaled_object", "trigger_authentication", "secret"}, answer

    cli("keda", name, "--queue", "no-such-queue").expect(3)
    cli("keda", name, "--queue", name, "--target", "0").expect(5)
    cli("queues", new_name("clinoqueues")).expect(3)
    cli("keda", name).expect(2)  # --queue is required


# --------------------------------------------------------------------------------------------
# Exit statuses and messages


def test_not_found_exits_3_with_the_problem_title(cli, new_name):
    run = cli("get", new_name("clinobody")).expect(3)
    assert run.stderr.startswith("error: Not found (404): "), run.stderr
    assert run.stdout == ""


def test_conflicting_create_exits_4_naming_the_field(cli, new_name):
    name = new_name("cliconflict")
    cli("create", name, "--json").expect(0)
    run = cli("create", name, "--exchange-type", "fanout").expect(4)
    assert run.stderr.startswith("error: Conflict (409)"), run.stderr
    assert re.search(r"^  exchange\.type: ", run.stderr, re.MULTILINE), run.stderr


def test_invalid_name_exits_5_naming_the_field(cli, new_name, broker_unchanged):
    run = cli("create", "Bad_Name").expect(5)
    assert "(400)" in run.stderr.splitlines()[0], run.stderr
    assert re.search(r"^  name: ", run.stderr, re.MULTILINE), run.stderr
    run = cli("create", new_name("clilimits"), "--max-bytes", "5").expect(5)
    assert re.search(r"^  limits\.max_bytes: ", run.stderr, re.MULTILINE), run.stderr
    broker_unchanged("refused creates")


@pytest.mark.parametrize("via", ["env", "file", "flag-file"])
def test_wrong_token_exits_6(cli, via):
    wrong = "not-a-token-of-any-team-" + os.urandom(8).hex()
    cli.secrets.append(wrong)
    run = cli("list", token=wrong, via=via).expect(6)
    assert run.stderr.startswith("error: Unauthorized (401)"), run.stderr


def test_unreachable_warren_exits_8_without_a_stack(cli):
    url = f"http://127.0.0.1:{free_port()}"
    run = cli("get", "anything", url=url).expect(8)
    assert run.stderr.startswith("error: Warren is unreachable: GET "), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_unavailable_broker_exits_7_with_retry_after(cli, warren_factory):
    cut_off = warren_factory("cli-nobroker", WARREN_MANAGEMENT_URL=f"http://127.0.0.1:{free_port()}")
    run = cli("list", url=cut_off.url).expect(7)
    assert run.stderr.startswith("error: Broker unavailable (503)"), run.stderr
    assert re.search(r"^  try again in \d+ s$", run.stderr, re.MULTILINE), run.stderr


def test_usage_errors_exit_2(cli, tmp_path):
    run = cli("get").expect(2)
    assert "Missing expected argument" in run.stderr and "Usage: warren-cli get" in run.stderr
    cli("create", "x", "--queue-type", "lazy").expect(2)
    cli("list", "--url", "ftp://127.0.0.1").expect(2)
    cli("no-such-command").expect(2)
    # There is no --token: a token on the command line would land in shell history and ps.
    run = cli("list", "--token", "abc").expect(2)
    assert "Unknown option '--token'" in run.stderr, run.stderr
    run = cli("list", via="none").expect(2)
    assert "WARREN_TOKEN" in run.stderr and "--token-file" in run.stderr, run.stderr
    cli("list", via="none", extra_env={"WARREN_TOKEN_FILE": str(tmp_path / "absent")}).expect(2)


def test_help_of_every_command_explains_it_with_an_example(cli):
    for command in ["", *COMMANDS]:
        run = cli(*command.split(), "--help", via="none").expect(0)
        assert "USAGE: warren-cli" in run.stdout, run.stdout
        assert re.search(r"^Examples?:\n(  .*\n)*  warren-cli ", run.stdout, re.MULTILINE), (
            f"{command or 'warren-cli'}:\n{run.stdout}")


def test_exit_statuses_in_help_and_docs_agree(cli):
    help_text = cli("--help", via="none").expect(0).stdout
    in_help = dict(re.findall(r"^  (\d)  (.+)$", help_text, re.MULTILINE))
    assert sorted(in_help) == [str(n) for n in range(9)], help_text
    docs = (REPO / "docs" / "cli.md").read_text()
    in_docs = dict(re.findall(r"^\| (\d) \| (.+?) \|", docs, re.MULTILINE))
    assert sorted(in_docs) == sorted(in_help), in_docs
    for code, meaning in in_help.items():
        # The name of the status (before its parenthesis or colon) is the same in both.
        label = re.split(r" \(|:", meaning)[0]
        assert label.lower() in in_docs[code].lower(), f"exit {code}: help says {meaning!r}, docs say {in_docs[code]!r}"

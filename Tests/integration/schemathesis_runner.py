"""Runs the schemathesis CLI against a live warren, for test_schemathesis.py (/v1) and
test_osb_schemathesis.py (/v2): the settings both share (seed, bounds, reports, the hooks
module of schemathesis_hooks.py) and what is read back from a run (exit status, cases, and the
passwords its responses carried, recorded for the session's check of the logs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from warren_support import closed_answers, record_response_secrets

SPEC_PATH = Path(__file__).resolve().parent.parent.parent / "openapi.yaml"
# A guard against a run that hangs, not a bound on speed: a run's work is bounded by the seed,
# --max-examples and the stateful phase's max-steps, and how long that work takes is the
# machine's business (beside a CPU load a full run took more than 120 s, where it takes 55 s
# quiet).
MAX_TIME = int(os.environ.get("WARREN_SCHEMATHESIS_MAX_TIME", "900"))
SEED = os.environ.get("WARREN_SCHEMATHESIS_SEED", "20261129")
MAX_EXAMPLES = int(os.environ.get("WARREN_SCHEMATHESIS_MAX_EXAMPLES", "50"))
HOOKS = Path(__file__).resolve().parent / "schemathesis_hooks.py"


def cassette_passwords(path: Path) -> int:
    """Records every password in the responses schemathesis saw (for the session's log check)."""
    if not path.exists():
        return 0
    import yaml
    count = 0
    doc = yaml.safe_load(path.read_text()) or {}
    for interaction in doc.get("http_interactions", []):
        body = ((interaction.get("response") or {}).get("body") or {})
        text = body.get("string") if isinstance(body, dict) else None
        if text and '"password"' in text:
            record_response_secrets(text)
            count += 1
    return count


def run_schemathesis(label: str, url: str, access: list[str], workdir: Path, extra: list[str], budget: int,
                     config: Path, hook_env: dict[str, str]) -> dict:
    """One `schemathesis run` of openapi.yaml against `url`; `access` says how it authenticates
    (and which paths it takes), `hook_env` what the hooks module needs to know."""
    report_dir = workdir / label
    report_dir.mkdir(parents=True, exist_ok=True)
    # The document with its answers closed (see warren_support.closed_answers): schemathesis's
    # response_schema_conformance then finds any field Warren sends that openapi.yaml lacks.
    import yaml
    spec_path = report_dir / "openapi-closed.yaml"
    spec_path.write_text(yaml.safe_dump(closed_answers(yaml.safe_load(SPEC_PATH.read_text())), sort_keys=False))
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
           "run", str(spec_path), "--url", url, *access,
           # No --max-time: it is a budget that fuzzing repeats to fill, not a cap.
           "--max-examples", str(MAX_EXAMPLES),
           # One worker: several threads trip a CPython 3.11 bug inside schemathesis's
           # generator ("AST constructor recursion depth mismatch").
           "--seed", SEED, "--workers", "1", "--request-timeout", "30",
           "--report", "junit,vcr", "--report-dir", str(report_dir),
           "--report-vcr-path", str(report_dir / "cassette.yaml"),
           "--suppress-health-check", "all", "--no-color", *extra]
    started = time.monotonic()
    try:
        # cwd: schemathesis keeps its example database (.hypothesis/) in the working directory.
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, cwd=workdir,
                             env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false", NO_COLOR="1",
                                      SCHEMATHESIS_HOOKS=HOOKS.stem, WARREN_ST_HOOK_JOURNAL=str(workdir / "hook-journal.jsonl"),
                                      PYTHONPATH=os.pathsep.join(filter(None, [str(HOOKS.parent), os.environ.get("PYTHONPATH")])),
                                      **hook_env))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"schemathesis ({label}) did not finish within {budget} s:\n{str(e.stdout or '')[-4000:]}",
                    pytrace=False)
    output = run.stdout + run.stderr
    generated = re.search(r"(\d+) generated", output)
    return {"label": label, "rc": run.returncode, "output": output, "elapsed": time.monotonic() - started,
            "cases": int(generated.group(1)) if generated else 0,
            "passwords": cassette_passwords(report_dir / "cassette.yaml")}


def judged_positive_answers(journal_path: Path, operations, report, skipped: list | None = None) -> dict[str, list]:
    """What the replacement positive-data check (schemathesis_hooks.py) judged, by operation, as
    its journal says; reports per operation how many answers it judged, how many were 2xx and
    which listed rules the 400s it took named. Entries it skipped (path parameters that are not
    schema-valid) are left out, and put in `skipped` when given."""
    journal = [json.loads(line) for line in journal_path.read_text().splitlines()] if journal_path.exists() else []
    if skipped is not None:
        skipped.extend(e for e in journal if e.get("skipped"))
    judged = {op: [e for e in journal if e["operation"] == op and not e.get("skipped")] for op in operations}
    for op, entries in judged.items():
        taken = Counter(re.sub(r"\[\d+\]", "[]", f) for e in entries if e["status"] == 400 and not e.get("refused")
                        for f in e["fields"])
        accepted = sum(1 for e in entries if e["status"] < 300)
        report("schemathesis", f"{op}: {len(entries)} positive answers judged, {accepted} 2xx, "
                               f"rules named by the 400s taken, by field: {dict(taken) or 'none'}")
    return judged

"""A bounded schemathesis run against a real server: /api/v1 with Conveyor's own OpenAPI document, and
/ofrep/v1 with the official OFREP document (vendored in tests/api/ofrep), as two tests that xdist
can run side by side. Every operation of each document is exercised, over 2,500 generated requests
in all, and none may get a 5xx or a status the document does not declare. A fixed seed keeps `make
test` repeatable; FUZZ_SEED=random (or a number) explores further.

On a failure the assertion shows schemathesis' report, with a curl command for each failing request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import SCRIPTS, Server, commit, git

ROOT = Path(__file__).resolve().parents[2]
OFREP_SCHEMA = Path(__file__).parent / "ofrep" / "openapi.yaml"
CHECKS = "not_a_server_error,status_code_conformance"
# examples per operation, and the generated requests each run must reach: every operation of each
# document is run; the two documents run as two tests, on two xdist workers when there are two
OFREP_EXAMPLES, OFREP_CASES = 250, 500
API_EXAMPLES, API_CASES = 30, 2000
TARGET = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"

# about a minute of CPU in all (server and schemathesis); the timeouts leave room for a busy machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _config(effects: Path) -> str:
    return textwrap.dedent(
        f"""\
        service: shop
        env: {{EFFECTS: '{effects}'}}
        environments:
          staging:
            branch: main
            target: {TARGET}
          production:
            target: {TARGET}
            gates:
              approval: {{count: 1, from: [release_manager]}}
              checklist: [rollback_plan]
              schedule: {{timezone: America/Los_Angeles, allow: ["Tue-Thu 10:00-15:00"], holidays: US}}
        """
    )


@dataclass
class Run:
    name: str
    report: dict[str, Any]
    output: str

    @property
    def cases(self) -> int:
        return int(self.report["test_cases"]["generated"])

    def problems(self) -> list[str]:
        found = [f"{f['code']} {f['title']}: {f['count']} in {f['operations']}" for f in self.report["failures"]]
        found += [f"error: {e}" for e in self.report["errors"]]
        if self.report["exit_code"] != 0:
            found.append(f"exit code {self.report['exit_code']}")
        return found


def schemathesis(name: str, location: str, base_url: str, header: str, examples: int, env: dict[str, str]) -> Run:
    reports = Path(env["FUZZ_REPORTS"]) / name
    args = [
        *(location, "--url", base_url, "-H", header, "--checks", CHECKS, "--max-examples", str(examples)),
        *("--include-path-regex", "^/(api/v1/|ofrep/v1/|metrics$)"),
        *("--workers", "1", "--report", "json", "--report-dir", str(reports), "--no-color"),
    ]
    seed = os.environ.get("FUZZ_SEED", "20261127")
    if seed != "random":
        args += ["--seed", seed]
    out = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    report_file = next(reports.glob("json-*.json"), None)
    assert report_file is not None, f"schemathesis wrote no report:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return Run(name, json.loads(report_file.read_text()), out.stdout)


@dataclass
class Fuzzed:
    server: Server
    env: dict[str, str]
    sdk_key: str


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[Fuzzed]:
    """A server with a service, a finished staging deployment, a freeze, a flag that is on and an SDK
    key: something for every path parameter the hooks (tests/api/fuzz_hooks.py) fill in."""
    effects = tmp_path / "effects"
    effects.mkdir()
    repo = tmp_path / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {**SCRIPTS, "conveyor.yml": _config(effects)}, "initial")
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'conveyor.db'}", poll_interval=0)
    server.start()  # as alice: admin and release_manager
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        deployment = server.ok("POST", "/deployments", json={"environment": "staging", "ref": "main"})
        server.wait_finished(deployment["id"])
        until = "2099-01-01T00:00:00Z"
        freeze = server.ok("POST", "/freezes", json={"environment": "staging", "until": until, "reason": "fuzz"})
        server.ok("POST", "/flags", json={"key": "discount-banner", "service": "shop", "type": "boolean"})
        server.ok("POST", "/flags/discount-banner/environments/staging/on", json={"service": "shop"})
        sdk = server.ok("POST", "/flags/sdk-keys", json={"service": "shop", "environment": "staging", "name": "fuzz"})
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "FUZZ_"))},
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "SCHEMATHESIS_HOOKS": "tests.api.fuzz_hooks",
            "FUZZ_REPORTS": str(tmp_path / "reports"),
            "FUZZ_USER": "alice",
            "FUZZ_TOKEN_ID": str(server.ok("GET", "/tokens")[0]["id"]),
            "FUZZ_SDK_KEY_ID": str(sdk["id"]),
            "FUZZ_DEPLOYMENT_ID": deployment["id"],
            "FUZZ_FREEZE_ID": str(freeze["id"]),
        }
        yield Fuzzed(server, env, sdk["key"])
    finally:
        server.stop()


def check(run: Run, min_cases: int) -> None:
    print({run.name: (run.cases, round(run.report["running_time"], 1))})
    assert not run.problems(), f"{run.name}: {run.problems()}\n{run.output[-12000:]}"
    assert run.cases >= min_cases, {run.name: run.cases}
    operations = run.report["operations"]  # every operation of the document ran, none errored or skipped
    assert operations["selected"] > 0 and operations["tested"] == operations["selected"], operations
    assert operations["errored"] == operations["skipped"] == 0, operations


def test_ofrep_finds_no_server_error_and_no_undeclared_status(fuzzed: Fuzzed) -> None:
    header = f"X-API-Key: {fuzzed.sdk_key}"
    check(schemathesis("ofrep", str(OFREP_SCHEMA), fuzzed.server.url, header, OFREP_EXAMPLES, fuzzed.env), OFREP_CASES)


def test_api_finds_no_server_error_and_no_undeclared_status(fuzzed: Fuzzed) -> None:
    server = fuzzed.server
    header = f"Authorization: Bearer {server.token}"
    check(schemathesis("api", f"{server.url}/openapi.json", server.url, header, API_EXAMPLES, fuzzed.env), API_CASES)

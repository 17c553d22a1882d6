"""`conveyor watch ID`, the real command line in a subprocess against a real server, over monitored
deployments built through the store (tests/web/monitoring_world.py): followed live with --json
(a line per interval as it is stored, the end line when the deployment is rolled back, exit 1),
the Rich screen of a finished window, and exit 0 for a release that succeeded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Server
from tests.web.monitoring_world import ERRORS, seed, store_samples

from conveyor.domain.deployment import DeploymentState

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    s = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def watch(server: Server, *args: str) -> subprocess.Popen[str]:
    env = {**server.env(), "COLUMNS": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "watch", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    text = proc.stdout.readline()  # the child flushes each line; a hung child fails on the timeout below
    assert text, f"no more output; stderr: {proc.stderr.read() if proc.stderr else ''}"
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_watch_follows_a_window_live_with_json(server: Server, database_url: str) -> None:
    monitored = seed(database_url, state=DeploymentState.MONITORING, samples=2)
    proc = watch(server, monitored.deployment_id[:8], "--json", "--poll", "0.2")
    try:
        first, second = line(proc), line(proc)
        assert [first["seq"], second["seq"]] == [0, 1]
        assert first["type"] == "interval" and first["requests"] == 100 and first["errors"] == ERRORS[0]
        assert second["error_rate"] == pytest.approx(ERRORS[1] / 100)
        assert 0 < first["p95_ms"] < 100 and first["verdict"] == "healthy"
        assert first["previous"]["error_rate"] == pytest.approx(0.005)  # 3 of 600 before the switch
        store_samples(database_url, monitored, 2, monitored.breach_seq + 1, DeploymentState.ROLLED_BACK)
        rest = [line(proc) for _ in range(monitored.breach_seq - 1)]
        assert [r["seq"] for r in rest] == list(range(2, monitored.breach_seq + 1))
        assert rest[-1]["verdict"] == "breach"
        end = line(proc)
        assert end["type"] == "end" and end["state"] == "rolled_back" and end["outcome"] == "breach"
        assert {f["signal"] for f in end["breach"]["findings"]} == {"error_rate"}
        assert proc.wait(timeout=30) == 1
        assert proc.stderr is not None and "rolled_back" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_screen_and_exit_codes(server: Server, database_url: str) -> None:
    monitored = seed(database_url)  # rolled back on a breach
    proc = watch(server, monitored.deployment_id)
    out, errors = proc.communicate(timeout=60)
    assert proc.returncode == 1, errors
    text = " ".join(out.split())
    assert "shop production v1.1.0 (previous v1.0.0) rolled_back" in text
    assert f"window ended: breach; {monitored.breach_seq + 1} of 12 intervals of 5s sampled" in text
    assert "limits > 2%, 2x previous" in text and "limits > 800 ms" in text
    assert any(c in out for c in "▁▂▃▄▅▆▇█")
    assert f"BREACH at interval {monitored.breach_seq + 1}" in text
    assert "flag new-checkout flag.on by eve during the window" in text
    assert "rolled_back" in errors

    kept = seed(database_url, now=monitored.now + timedelta(minutes=5), state=DeploymentState.SUCCEEDED)
    proc = watch(server, kept.deployment_id, "--json")
    out, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["type"] for x in lines] == ["interval"] * (kept.breach_seq + 1) + ["end"]
    assert lines[-1]["state"] == "succeeded"

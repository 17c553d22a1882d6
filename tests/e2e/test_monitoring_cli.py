"""`conveyor monitoring show / accept / rollback` as a subprocess against a real server: the
evidence in text and --json, a refused engineer (exit 1, the reason on stderr), a release manager's
early end. The world is tests/engine/test_monitoring.py's (a command-target service)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.test_cli import conveyor, flat, ok_json
from tests.engine.test_monitoring import MONITOR, World, _second_release, make_world


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, MONITOR)


def _env(w: World, user: str) -> dict[str, str]:
    return {**os.environ, "CONVEYOR_URL": w.server.url, "CONVEYOR_TOKEN": w.tokens[user]}


def test_show_accept_and_a_refused_rollback_from_the_command_line(world: World) -> None:
    d = _second_release(world)
    shown = conveyor("monitoring", "show", d[:8], env=_env(world, "eve"))
    assert shown.returncode == 0, shown.stderr
    assert f"{d}: monitoring; window" in flat(shown.stdout) and "on_breach rollback" in flat(shown.stdout)
    view = ok_json(conveyor("monitoring", "show", d, "--json", env=_env(world, "eve")))
    assert view["state"] == "monitoring" and view["monitoring"]["on_breach"] == "rollback"
    refused = conveyor("monitoring", "rollback", d, "--reason", "worried", env=_env(world, "eve"))
    assert refused.returncode == 1 and refused.stdout == ""
    assert "eve (engineer) may not end monitoring in production early" in flat(refused.stderr), refused.stderr
    no_reason = conveyor("monitoring", "accept", d, env=_env(world, "ron"))
    assert no_reason.returncode == 2, no_reason.stderr  # --reason is required: a usage error
    accepted = conveyor("monitoring", "accept", d, "--reason", "numbers are fine", "--json", env=_env(world, "ron"))
    body = json.loads(accepted.stdout)
    assert accepted.returncode == 0 and body["state"] == "succeeded", accepted.stderr
    assert body["reason"] == "accepted during monitoring by ron: numbers are fine"
    again = conveyor("monitoring", "show", d, env=_env(world, "ron"))
    assert "accept by ron: numbers are fine" in flat(again.stdout), again.stdout

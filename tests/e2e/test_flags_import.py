"""`conveyor flags import unleash FILE` and `conveyor flags segment` on a real server: a real
Unleash export (the client specification's global-segments state), a dry run that changes
nothing, the import, and OFREP answering as Unleash does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.e2e.gates_world import GateWorld
from tests.e2e.test_flags import cli, cli_json, evaluate, new_key

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

SPEC = Path(__file__).parents[2] / "sdk/python/tests/unleash-spec/specifications/15-global-constraints.json"


def test_an_unleash_export_is_imported_from_the_cli_after_a_dry_run(gw: GateWorld, tmp_path: Path) -> None:
    export = tmp_path / "features.json"
    export.write_text(json.dumps(json.loads(SPEC.read_text(encoding="utf-8"))["state"]))
    dry = cli(gw, "rita", "import", "unleash", str(export), "--env", "staging", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing was changed (--dry-run)" in dry.stdout and "F9.globalSegmentOn" in dry.stdout
    assert gw.ok_as("rita", "GET", "/flags") == []
    done = cli_json(gw, "rita", "import", "unleash", str(export), "--env", "staging")
    assert not done["dry_run"] and {c["action"] for c in done["changes"]} == {"create", "update"}
    used = {s["name"]: s["used_by"] for s in cli_json(gw, "rita", "segment", "list")}
    assert "F9.globalSegmentOn@staging" in [u for users in used.values() for u in users]
    key = new_key(gw, "staging")
    cases = (("F9.globalSegmentOff", "3.2.2", False), ("F9.globalSegmentAndConstraint", "1.2.2", True))
    for flag, version, on in cases:
        assert evaluate(gw, key, flag, {"targetingKey": "u1", "version": version})["value"] is on

"""Every state of the Unleash client specification through `flags import unleash`: imported into a
service on the server, the ruleset the server builds answers every case of that file as Unleash
does. The files that exercise deliberately malformed features are refused whole, each naming the
features the server does not accept (docs/flags.md, "Differences from Unleash")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conveyor_flags.unleash import get_variant, is_enabled

from conveyor.auth.users import add_user
from conveyor.errors import InvalidInput
from conveyor.flags import service as flag_service
from conveyor.flags import unleash_import
from conveyor.flags.ruleset import RulesetCache, Scope
from conveyor.runtime import Runtime
from conveyor.settings import Settings
from conveyor.store import services as service_store
from conveyor.store.db import Database

SPEC = Path(__file__).parents[2] / "sdk/python/tests/unleash-spec/specifications"
CONFIG = "service: {name}\nenvironments:\n  production:\n    target: {{kind: command, deploy: ./deploy.sh}}\n"
# file -> what the refusal names: features with values the server refuses when saved
REFUSED = {
    "06-remote-address-strategy.json": "192.invalid",
    "09-strategy-constraints.json": "Feature.constraints.empty",
    "11-strategy-constraints-edge-cases.json": "Feature.constraints.no_values",
    "13-constraint-operators.json": "F7.invalid-operator",
    "14-constraint-semver-operators.json": "v2.0.0",
    "17-dependent-features.json": "child.with.cycle",
    "18-utf8-flag-names.json": "Hellø_Wørld",
    "21-regex-constraint-operators.json": "(regex",
    "22-cidr-constraint-operators.json": "127.invalid",
}


def test_every_specification_state_imports_and_answers_as_unleash_or_is_refused_whole(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    db = Database(url)
    db.migrate()
    files = json.loads((SPEC / "index.json").read_text())
    now = datetime.now(UTC)
    with db.begin() as conn:
        for i, _ in enumerate(files):
            service_store.upsert_service(conn, f"s{i:02}", "/src", "/repo", CONFIG.format(name=f"s{i:02}"), now)
        rita = add_user(conn, "rita", ["release_manager"], now)
    rt = Runtime(settings=Settings(home=tmp_path / "home", database_url=url), db=db)
    checked = 0
    try:
        for i, name in enumerate(files):
            spec: dict[str, Any] = json.loads((SPEC / name).read_text(encoding="utf-8"))
            service = f"s{i:02}"
            if name in REFUSED:
                with pytest.raises(InvalidInput, match="nothing was changed") as refused:
                    unleash_import.import_unleash(rt, rita, lambda _: None, service, "production", spec["state"])
                assert REFUSED[name] in str(refused.value), (name, str(refused.value))
                assert flag_service.list_flags(rt, service) == [], name  # refused whole: nothing written
                continue
            unleash_import.import_unleash(rt, rita, lambda _: None, service, "production", spec["state"])
            with db.read() as conn:
                service_id = service_store.get_service(conn, service).id
                ruleset = RulesetCache().get(conn, Scope(service_id, service, "production")).ruleset
            for case in spec.get("tests", []):
                assert is_enabled(ruleset, case["toggleName"], case["context"]) is case["expectedResult"], (name, case)
                checked += 1
            for case in spec.get("variantTests", []):
                got, want = get_variant(ruleset, case["toggleName"], case["context"]), case["expectedResult"]
                assert (got["name"], got["enabled"]) == (want["name"], want["enabled"]), (name, case)
                if want.get("payload") is not None:
                    assert got.get("payload") == want["payload"], (name, case)
                checked += 1
    finally:
        db.dispose()
    assert checked == 89  # the cases of the 13 files that import

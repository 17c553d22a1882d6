"""Segments on the server (Unleash's shared constraint sets) and `flags import unleash`: stored,
served in the ruleset, permission-checked and audited like flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conveyor_flags.unleash import get_variant, is_enabled
from sqlalchemy import select
from tests.flags.conftest import FlagWorld

from conveyor.errors import Conflict, Forbidden, InvalidInput
from conveyor.flags import segments, service, unleash_import
from conveyor.flags.ruleset import RulesetCache, Scope
from conveyor.flags.text import describe_strategies
from conveyor.store.tables import audit_log, services
from conveyor.web.flag import edit_strategies, fingerprint

SPEC = Path(__file__).parents[2] / "sdk/python/tests/unleash-spec/specifications"
NORDIC = {"attribute": "country", "operator": "IN", "values": ["SE", "NO"]}
PRO = {"attribute": "plan", "operator": "IN", "values": ["pro"]}


def actions(fw: FlagWorld) -> list[Any]:
    with fw.db.read() as conn:
        return [(e.action, e.actor, e.details) for e in conn.execute(select(audit_log).order_by(audit_log.c.id))]


def snapshot(fw: FlagWorld, env: str = "production") -> Any:
    with fw.db.read() as conn:
        service_id = conn.execute(select(services.c.id).where(services.c.name == "shop")).scalar_one()
        return RulesetCache().get(conn, Scope(service_id, "shop", env))


def test_a_strategy_matches_only_when_every_constraint_of_its_segments_holds(fw: FlagWorld) -> None:
    rita = fw.users["rita"]
    made = segments.create_segment(
        fw.rt, fw.users["eve"], fw.notes, "shop", {"name": "nordic pro", "constraints": [NORDIC, PRO]}
    )
    assert made["used_by"] == [] and made["created_by"] == "eve"
    service.create_flag(fw.rt, rita, fw.notes, "sale", "shop", {})
    strategies = [{"segments": [made["id"]], "constraints": []}]
    result = service.set_state(fw.rt, rita, fw.notes, ("sale", "shop", "production"), True, strategies)
    assert result["strategies"][0]["segments"] == [made["id"]]
    snap = snapshot(fw)
    plain = {"inverted": False, "case_insensitive": False}
    rules = [{**NORDIC, **plain}, {**PRO, **plain}]
    assert snap.document["segments"] == {str(made["id"]): {"name": "nordic pro", "constraints": rules}}
    answers = {ctx: snap.ruleset.evaluate("sale", dict(zip(("country", "plan"), ctx, strict=True))).value
               for ctx in (("SE", "pro"), ("SE", "free"), ("US", "pro"))}  # fmt: skip
    assert answers == {("SE", "pro"): True, ("SE", "free"): False, ("US", "pro"): False}
    assert segments.detail(fw.rt, "nordic pro", None)["used_by"] == ["sale@production"]

    # a change to the segment changes what the flag serves, in a new ruleset version
    version = snap.version
    segments.update_segment(fw.rt, rita, fw.notes, "nordic pro", None, {"constraints": [NORDIC]})
    snap = snapshot(fw)
    assert snap.version > version and snap.ruleset.evaluate("sale", {"country": "SE", "plan": "free"}).value is True
    with pytest.raises(InvalidInput, match="segment ids"):  # a segment the service does not have
        service.set_state(fw.rt, rita, fw.notes, ("sale", "shop", "staging"), True, [{"segments": [999]}])
    with pytest.raises(Conflict, match="sale in production"):
        segments.delete_segment(fw.rt, rita, fw.notes, "nordic pro", None)


def test_segments_have_the_permissions_of_flags_and_every_change_is_audited(fw: FlagWorld) -> None:
    eve, rita = fw.users["eve"], fw.users["rita"]
    made = segments.create_segment(fw.rt, eve, fw.notes, "shop", {"name": "beta", "constraints": [PRO]})
    service.create_flag(fw.rt, rita, fw.notes, "sale", "shop", {})
    service.set_state(fw.rt, rita, fw.notes, ("sale", "shop", "production"), True, [{"segments": [made["id"]]}])
    # an engineer defines segments, but one a flag uses where it is on is production's deployers' to change
    with pytest.raises(Forbidden, match="change flags in production"):
        segments.update_segment(fw.rt, eve, fw.notes, "beta", None, {"constraints": [NORDIC]})
    assert segments.detail(fw.rt, "beta", None)["constraints"][0]["attribute"] == "plan"
    segments.update_segment(fw.rt, rita, fw.notes, "beta", None, {"constraints": [NORDIC]})
    service.switch(fw.rt, rita, fw.notes, ("sale", None, "production"), "off")
    service.set_state(fw.rt, rita, fw.notes, ("sale", "shop", "production"), None, [])
    segments.delete_segment(fw.rt, eve, fw.notes, "beta", None)
    log = [(a, who) for a, who, _ in actions(fw) if a.startswith("segment.") or a == "forbidden"]
    assert log == [("segment.created", "eve"), ("forbidden", "eve"), ("segment.updated", "rita"),
                   ("segment.deleted", "eve")]  # fmt: skip
    updated = next(d for a, _, d in actions(fw) if a == "segment.updated")
    assert updated["before"]["constraints"][0]["attribute"] == "plan"
    assert updated["after"]["constraints"][0]["attribute"] == "country"


def spec(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SPEC / name).read_text(encoding="utf-8"))
    return loaded


def test_an_unleash_export_is_imported_with_its_segments_and_answers_as_unleash(fw: FlagWorld) -> None:
    """The specification's global-segments state is an /api/client/features export: after the
    import, the ruleset the server builds answers every case of that file as Unleash does."""
    case = spec("15-global-constraints.json")
    rita = fw.users["rita"]
    planned = unleash_import.import_unleash(fw.rt, rita, fw.notes, "shop", "production", case["state"], dry_run=True)
    assert planned["dry_run"] and service.list_flags(fw.rt, "shop") == []  # a dry run writes nothing
    kinds = {(c["kind"], c["action"]) for c in planned["changes"]}
    assert kinds == {("segment", "create"), ("flag", "create"), ("state", "update")}
    missing = next(c for c in planned["changes"] if c["name"] == "F9.withMissingSegment@production")
    assert "never matches" in missing["notes"][0]

    done = unleash_import.import_unleash(fw.rt, rita, fw.notes, "shop", "production", case["state"])
    assert done["changes"] == planned["changes"]
    ruleset = snapshot(fw).ruleset
    for test in case["tests"]:
        assert is_enabled(ruleset, test["toggleName"], test["context"]) is test["expectedResult"], test
    for test in case.get("variantTests", []):
        got = get_variant(ruleset, test["toggleName"], test["context"])
        assert (got["name"], got["enabled"]) == (test["expectedResult"]["name"], test["expectedResult"]["enabled"])
    assert [a for a, _, _ in actions(fw)][-1] == "flag.imported"

    again = unleash_import.import_unleash(fw.rt, rita, fw.notes, "shop", "production", case["state"], dry_run=True)
    assert {c["action"] for c in again["changes"]} == {"unchanged"}  # importing twice changes nothing


def test_an_import_is_refused_whole_without_the_rights_or_with_a_bad_feature(fw: FlagWorld) -> None:
    state = spec("15-global-constraints.json")["state"]
    with pytest.raises(Forbidden, match="change flags in production"):
        unleash_import.import_unleash(fw.rt, fw.users["eve"], fw.notes, "shop", "production", state)
    assert service.list_flags(fw.rt, "shop") == [] and segments.list_segments(fw.rt, "shop") == []
    assert actions(fw)[-1][0] == "forbidden"
    bad = {"features": [*state["features"], {"name": "x", "enabled": True, "strategies": [
        {"name": "default", "constraints": [{"contextName": "a", "operator": "NOPE", "values": ["1"]}]}]}]}  # fmt: skip
    with pytest.raises(InvalidInput, match="feature 'x'"):
        unleash_import.import_unleash(fw.rt, fw.users["rita"], fw.notes, "shop", "production", bad)
    assert service.list_flags(fw.rt, "shop") == []


def test_a_strategy_with_segments_is_a_targeting_rule_not_the_rollout(fw: FlagWorld) -> None:
    """`flags rollout` and the dashboard set the first strategy with neither constraints nor
    segments: a rule made of a segment keeps its own percentage."""
    rita = fw.users["rita"]
    made = segments.create_segment(fw.rt, rita, fw.notes, "shop", {"name": "beta", "constraints": [PRO]})
    service.create_flag(fw.rt, rita, fw.notes, "sale", "shop", {})
    service.set_state(fw.rt, rita, fw.notes, ("sale", "shop", "production"), True, [{"segments": [made["id"]]}])
    result = service.rollout(fw.rt, rita, fw.notes, ("sale", None, "production"), 20)
    assert [(s.get("segments"), s["rollout"]) for s in result["strategies"]] == [([made["id"]], 100), (None, 20)]
    assert describe_strategies(result["strategies"]) == f"segment {made['id']} at 100%; all at 20%"
    rule = {"segments": [made["id"]], "constraints": [NORDIC], "rollout": 50}
    form = {"rule": 0, "constraint_index": 0, "expect": fingerprint(NORDIC)}
    kept = edit_strategies([rule], "remove-constraint", form)
    assert kept == [{**rule, "constraints": []}]  # still a rule of its segment, not a rule for everyone

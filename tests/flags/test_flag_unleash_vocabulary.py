"""The Unleash vocabulary through the admin service: new operators (validated at save time, REGEX by
RE2 with its reason), variant overrides, variant stickiness and dependent flags are stored, served
in the ruleset and evaluated with Unleash's meaning."""

from __future__ import annotations

from typing import Any

import pytest
from tests.flags.conftest import FlagWorld

from conveyor.errors import InvalidInput
from conveyor.flags import service
from conveyor.flags.evaluate import compile_ruleset
from conveyor.flags.model import Constraint, parse
from conveyor.flags.ruleset import Scope, build_document


@pytest.mark.parametrize(
    ("constraint", "problem"),
    [
        ({"attribute": "v", "operator": "SEMVER_GTE", "values": ["v1.2.3"]}, "versions like 1.4.0"),
        ({"attribute": "u", "operator": "REGEX", "values": ["^(?=a)b$"]}, "invalid perl operator"),
        ({"attribute": "u", "operator": "REGEX", "values": ["^(a)\\1$"]}, "does not compile in RE2"),
        ({"attribute": "current_time", "operator": "DATE_AFTER", "values": ["soon"]}, "ISO 8601"),
        ({"attribute": "ip", "operator": "IN_CIDR", "values": ["10.0.0.0/33"]}, "networks"),
    ],
)
def test_constraints_refused_at_save_time_with_the_reason(constraint: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInput, match="not valid") as info:
        parse(Constraint, constraint, "constraint")
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "constraint",
    [
        {"attribute": "u", "operator": "REGEX", "values": ["^[[:alpha:]]+$"]},
        {"attribute": "u", "operator": "REGEX", "values": ["x(?i)abc"]},
        {"attribute": "v", "operator": "SEMVER_LTE", "values": ["2.0.0-rc.1"]},
        {"attribute": "current_time", "operator": "DATE_BEFORE", "values": ["2030-01-01T00:00:00Z"]},
        {"attribute": "ip", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "2001:db8::/32", "192.168.1.1"]},
    ],
)
def test_unleash_constraints_accepted(constraint: dict[str, Any]) -> None:
    parse(Constraint, constraint, "constraint")


def _create(fw: FlagWorld, key: str, **body: Any) -> dict[str, Any]:
    return service.create_flag(fw.rt, fw.users["eve"], fw.notes, key, "shop", body)


def test_dependent_flags_overrides_and_operators_are_served_and_evaluated(fw: FlagWorld) -> None:
    _create(fw, "parent", type="string", default="off", variants=[{"name": "blue", "value": "blue"}])
    _create(
        fw,
        "child",
        variants=[
            {"name": "on", "value": True, "weight": 1, "overrides": [{"attribute": "user_id", "values": ["7"]}]},
            {"name": "off", "value": False, "weight": 0},
        ],
        variant_stickiness="org",
        dependencies=[{"flag": "parent", "variants": ["blue"]}],
    )
    office = {"attribute": "remote_address", "operator": "IN_CIDR", "values": ["10.0.0.0/8"]}
    for key in ("parent", "child"):
        strategies = [{"constraints": [office]}] if key == "child" else []
        service.set_state(fw.rt, fw.users["eve"], fw.notes, (key, "shop", "development"), True, strategies)
    with fw.db.read() as conn:
        svc_id = conn.exec_driver_sql("select id from services where name = 'shop'").scalar_one()
        document = build_document(conn, Scope(svc_id, "shop", "development"))
    child = document["flags"]["child"]
    assert child["dependencies"] == [{"flag": "parent", "enabled": True, "variants": ["blue"]}]
    assert child["variant_stickiness"] == "org"
    ruleset = compile_ruleset(document)
    inside = ruleset.evaluate("child", {"user_id": "7", "remote_address": "10.1.2.3"}, None)
    assert (inside.value, inside.variant, inside.reason) == (True, "on", "SPLIT")
    assert ruleset.evaluate("child", {"user_id": "7", "remote_address": "192.168.0.1"}, None).reason == "DEFAULT"
    # the parent off: the child is off too
    service.set_state(fw.rt, fw.users["eve"], fw.notes, ("parent", "shop", "development"), False, None)
    with fw.db.read() as conn:
        document = build_document(conn, Scope(svc_id, "shop", "development"))
    off = compile_ruleset(document).evaluate("child", {"user_id": "7", "remote_address": "10.1.2.3"}, None)
    assert (off.value, off.reason) == (False, "DISABLED")


def test_dependencies_are_one_level_within_the_service(fw: FlagWorld) -> None:
    _create(fw, "parent")
    _create(fw, "child", dependencies=[{"flag": "parent"}])
    _create(fw, "other")
    with pytest.raises(InvalidInput, match="not another flag of this service"):
        _create(fw, "orphan", dependencies=[{"flag": "nowhere"}])
    with pytest.raises(InvalidInput, match="depends on other flags itself"):
        _create(fw, "grandchild", dependencies=[{"flag": "child"}])
    with pytest.raises(InvalidInput, match="is a parent of child"):
        service.update_flag(fw.rt, fw.users["eve"], fw.notes, "parent", "shop", {"dependencies": [{"flag": "other"}]})
    with pytest.raises(InvalidInput, match="not another flag"):
        service.update_flag(fw.rt, fw.users["eve"], fw.notes, "parent", "shop", {"dependencies": [{"flag": "parent"}]})

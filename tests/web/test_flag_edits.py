"""The flag page's edits as pure functions: a constraint from the form, and one targeting edit
applied to an environment's strategies (web/flag.py). The browser tests drive the same through
the page (tests/browser/test_flags_page.py)."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.errors import Conflict, InvalidInput
from conveyor.web.flag import constraint_of, edit_strategies, fingerprint, variant_value
from conveyor.web.flag_timeline import changes


def c(attribute: str, operator: str = "IN", *values: str) -> dict[str, Any]:
    return {
        "attribute": attribute,
        "operator": operator,
        "values": list(values),
        "inverted": False,
        "case_insensitive": False,
    }


def test_values_split_on_commas_except_for_one_value_operators() -> None:
    assert constraint_of(" country ", "IN", "se, no,,", False, True)["values"] == ["se", "no"]
    assert constraint_of("email", "REGEX", r"^a{1,3},b$", False, False)["values"] == [r"^a{1,3},b$"]
    assert constraint_of("age", "NUM_GT", " 18 ", True, False) == {**c("age", "NUM_GT", "18"), "inverted": True}
    with pytest.raises(InvalidInput, match="unknown operator 'LIKE'"):
        constraint_of("x", "LIKE", "y", False, False)


def test_a_new_rule_goes_before_the_rollout_strategy() -> None:
    rollout = {"constraints": [], "rollout": 10}
    out = edit_strategies([rollout], "add-rule", {"constraint": c("country", "IN", "se"), "rollout": 25})
    assert out == [{"constraints": [c("country", "IN", "se")], "rollout": 25}, rollout]


def test_removing_the_last_constraint_removes_the_rule() -> None:
    rule = {"constraints": [c("a", "IN", "1"), c("b", "IN", "2")], "rollout": 100}
    rollout = {"constraints": [], "rollout": 10}
    form = {"rule": 0, "constraint_index": 0, "expect": fingerprint(c("a", "IN", "1"))}
    once = edit_strategies([rule, rollout], "remove-constraint", form)
    assert once == [{"constraints": [c("b", "IN", "2")], "rollout": 100}, rollout]
    form = {"rule": 0, "constraint_index": 0, "expect": fingerprint(c("b", "IN", "2"))}
    assert edit_strategies(once, "remove-constraint", form) == [rollout]


def test_an_edit_of_something_that_changed_meanwhile_is_a_conflict() -> None:
    rule = {"constraints": [c("a", "IN", "1")], "rollout": 100}
    with pytest.raises(Conflict, match="the constraint changed"):
        edit_strategies([rule], "remove-constraint", {"rule": 0, "constraint_index": 0, "expect": "{}"})
    with pytest.raises(Conflict, match="the rule changed"):
        edit_strategies([rule], "remove-rule", {"rule": 0, "expect": fingerprint({**rule, "rollout": 50})})
    with pytest.raises(Conflict, match="the rule changed"):
        edit_strategies([{"constraints": [], "rollout": 5}], "add-constraint", {"rule": 0, "constraint": c("a")})
    assert edit_strategies([rule], "remove-rule", {"rule": 0, "expect": fingerprint(rule)}) == []


def test_variant_values_are_text_for_string_flags_and_json_otherwise() -> None:
    assert variant_value("string", "true") == "true"
    assert variant_value("boolean", "true") is True
    assert variant_value("json", '{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidInput, match="not valid JSON"):
        variant_value("number", "forty")


def test_the_timeline_shows_strategies_as_people_read_them() -> None:
    before = {"enabled": False, "strategies": []}
    rule = {"constraints": [{**c("country", "IN", "se", "no"), "inverted": True}], "rollout": 25, "value": "x"}
    after = {"enabled": True, "strategies": [rule, {"constraints": [], "rollout": 50, "stickiness": "userId"}]}
    assert [(ch.field, ch.before, ch.after) for ch in changes(before, after)] == [
        ("enabled", "false", "true"),
        ("strategies", "none", '25% where country NOT IN se, no serves "x"; 50% by userId'),
    ]
    assert [(ch.field, ch.before) for ch in changes(None, {"type": "boolean"})] == [("flag", "none")]

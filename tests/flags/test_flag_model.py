"""Flag definitions, states and strategies: what is accepted, what is refused and why."""

from __future__ import annotations

import pytest

from conveyor.errors import InvalidInput
from conveyor.flags.model import (
    Constraint,
    Definition,
    EnvState,
    Strategy,
    check_key,
    check_strategies,
    parse,
    value_problem,
    with_rollout,
)
from conveyor.flags.text import describe_strategies, read_json, read_value


@pytest.mark.parametrize(
    ("flag_type", "default", "on_value"),
    [("boolean", False, True), ("string", "", ""), ("number", 0, 0), ("json", {}, {})],
)
def test_defaults_by_type(flag_type: str, default: object, on_value: object) -> None:
    d = parse(Definition, {"type": flag_type}, "flag")
    assert (d.default, d.on_value) == (default, on_value)


def test_a_given_default_is_the_on_value_of_non_boolean_flags() -> None:
    d = parse(Definition, {"type": "string", "default": "blue"}, "flag")
    assert d.on_value == "blue"
    assert parse(Definition, {"type": "boolean", "default": True}, "flag").on_value is True


@pytest.mark.parametrize(
    ("flag_type", "good", "bad"),
    [
        ("boolean", [True, False], [0, 1, "true", None, []]),
        ("string", ["", "x"], [1, True, {}, ["a"]]),
        ("number", [0, 1.5, -3], [True, "1", float("nan"), float("inf"), {}]),
        ("json", [{}, {"a": [1]}, []], [1, "x", True]),
    ],
)
def test_values_must_fit_the_type(flag_type: str, good: list[object], bad: list[object]) -> None:
    for value in good:
        assert value_problem(flag_type, value) is None
    for value in bad:
        if value is None:
            continue
        assert value_problem(flag_type, value), f"{value!r} accepted as {flag_type}"


def test_wrong_default_and_variant_values_name_the_field() -> None:
    with pytest.raises(InvalidInput, match="default: 3 is not a string"):
        parse(Definition, {"type": "string", "default": 3}, "flag")
    with pytest.raises(InvalidInput, match="variant 'b': 'x' is not a number"):
        parse(Definition, {"type": "number", "variants": [{"name": "a", "value": 1}, {"name": "b", "value": "x"}]}, "f")
    with pytest.raises(InvalidInput, match="unique"):
        parse(
            Definition, {"type": "string", "variants": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]}, "f"
        )
    with pytest.raises(InvalidInput, match="add up to 0"):
        parse(Definition, {"type": "string", "variants": [{"name": "a", "value": "1", "weight": 0}]}, "f")
    with pytest.raises(InvalidInput, match="type"):
        parse(Definition, {"type": "float"}, "flag")
    with pytest.raises(InvalidInput, match="colour"):
        parse(Definition, {"type": "string", "colour": "red"}, "flag")


@pytest.mark.parametrize("key", ["new_checkout", "a", "A.b-c_9", "x" * 128])
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "-x", "a b", "a/b", "x" * 129, "ruleset", "stream", "sdk-keys", "ü"])
def test_bad_keys(key: str) -> None:
    with pytest.raises(InvalidInput):
        check_key(key)


@pytest.mark.parametrize(
    ("constraint", "problem"),
    [
        ({"attribute": "age", "operator": "NUM_GT", "values": ["old"]}, "needs numbers"),
        ({"attribute": "age", "operator": "NUM_GT", "values": ["1", "2"]}, "one value"),
        ({"attribute": "v", "operator": "SEMVER_GT", "values": ["1.2"]}, "versions like"),
        ({"attribute": "e", "operator": "REGEX", "values": ["("]}, "does not compile"),
        ({"attribute": "e", "operator": "LIKE", "values": ["x"]}, "operator"),
        ({"attribute": "e", "operator": "IN", "values": []}, "values"),
        ({"attribute": "", "operator": "IN", "values": ["x"]}, "attribute"),
    ],
)
def test_bad_constraints(constraint: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        parse(EnvState, {"strategies": [{"constraints": [constraint]}]}, "state")


def test_constraint_numbers_become_strings() -> None:
    c = parse(Constraint, {"attribute": "age", "operator": "NUM_GTE", "values": [18]}, "constraint")
    assert c.values == ["18"]


def test_strategy_rollout_is_a_percentage_and_values_fit_the_flag() -> None:
    with pytest.raises(InvalidInput, match="rollout"):
        parse(Strategy, {"rollout": 101}, "strategy")
    with pytest.raises(InvalidInput, match="strategy 1 value"):
        check_strategies("boolean", [Strategy(value="yes")])
    with pytest.raises(InvalidInput, match="strategy 1 variant 'a'"):
        check_strategies("string", [parse(Strategy, {"variants": [{"name": "a", "value": 1}]}, "s")])
    check_strategies("string", [Strategy(value="ok")])


def test_rollout_adds_one_strategy_after_the_rules_or_sets_the_existing_one() -> None:
    assert [s.rollout for s in with_rollout([], 30)] == [30]
    rule = parse(Strategy, {"constraints": [{"attribute": "country", "operator": "IN", "values": ["SE"]}]}, "s")
    both = with_rollout([rule], 20)
    assert both[0] == rule and both[1].rollout == 20 and not both[1].constraints
    again = with_rollout(both, 70)
    assert len(again) == 2 and again[1].rollout == 70
    with pytest.raises(InvalidInput):
        with_rollout([], 101)


def test_command_line_values() -> None:
    assert read_value("on", "boolean") is True and read_value("False", "boolean") is False
    assert read_value("3", "number") == 3 and read_value("2.5", "number") == 2.5
    assert read_value('{"a": 1}', "json") == {"a": 1}
    assert read_value("blue", "string") == "blue"
    for text, flag_type in (("maybe", "boolean"), ("x", "number"), ("{", "json")):
        with pytest.raises(ValueError):
            read_value(text, flag_type)
    with pytest.raises(ValueError, match="no such file"):
        read_json("@/nonexistent/rules.json")


def test_strategies_read_as_text() -> None:
    assert describe_strategies([]) == "everyone"
    rules = [
        {"constraints": [{"attribute": "country", "operator": "IN", "values": ["SE", "NO"]}], "rollout": 100},
        {"constraints": [], "rollout": 25},
    ]
    assert describe_strategies(rules) == "country IN SE,NO at 100%; all at 25%"

"""The evaluator against docs/flags-ruleset.md: steps 1-5, every operator, types and errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from conveyor_flags import Evaluation, RulesetError, compile_ruleset
from conveyor_flags.constraints import semver_key
from conveyor_flags.evaluate import VARIANT_SEED, normalized_hash


def ruleset(**flags: dict[str, Any]) -> Any:
    return compile_ruleset({"environment": "production", "version": 3, "flags": flags})


def flag(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "boolean", "enabled": True, "default": False, "on_value": True, "strategies": []}
    base.update(fields)
    return base


def constrained(attribute: str, operator: str, values: list[Any], **options: Any) -> Any:
    constraint = {"attribute": attribute, "operator": operator, "values": values, **options}
    return ruleset(f=flag(strategies=[{"constraints": [constraint], "rollout": 100}]))


def holds(rules: Any, **context: Any) -> bool:
    result = rules.evaluate("f", context, False)
    assert result.error_code is None, result
    return bool(result.value)


# ---- steps 1-5 -----------------------------------------------------------------------------------


def test_unknown_flag_gives_the_callers_default() -> None:
    result = ruleset().evaluate("nope", {"user_id": "1"}, "fallback")
    assert result == Evaluation("fallback", None, "ERROR", "FLAG_NOT_FOUND", result.error_message)
    assert "nope" in (result.error_message or "")


def test_disabled_serves_the_flags_default() -> None:
    rules = ruleset(f=flag(type="string", enabled=False, default="off", on_value="on"))
    assert rules.evaluate("f", {}, "caller") == Evaluation("off", None, "DISABLED")


def test_no_strategies_is_on_for_everyone() -> None:
    assert ruleset(f=flag()).evaluate("f", None, False) == Evaluation(True, None, "STATIC")


def test_no_strategy_matched_serves_the_flags_default() -> None:
    rules = constrained("country", "IN", ["SE"])
    assert rules.evaluate("f", {"country": "DK"}, False) == Evaluation(False, None, "DEFAULT")
    assert rules.evaluate("f", {"country": "SE"}, False) == Evaluation(True, None, "TARGETING_MATCH")


def test_first_matching_strategy_wins_and_serves_its_value() -> None:
    rules = ruleset(
        f=flag(
            type="string",
            default="none",
            on_value="on",
            strategies=[
                {"constraints": [{"attribute": "plan", "operator": "IN", "values": ["pro"]}], "value": "pro-value"},
                {"constraints": [{"attribute": "country", "operator": "IN", "values": ["SE"]}]},
                {"constraints": [], "value": "everyone"},
                {"constraints": [], "value": "unreachable"},
            ],
        )
    )
    assert rules.evaluate("f", {"plan": "pro", "country": "SE"}, "x").value == "pro-value"
    assert rules.evaluate("f", {"country": "SE"}, "x") == Evaluation("on", None, "TARGETING_MATCH")
    assert rules.evaluate("f", {"country": "DK"}, "x") == Evaluation("everyone", None, "TARGETING_MATCH")


def test_split_reason_and_strategy_variants_over_flag_variants() -> None:
    flag_variants = [{"name": "a", "value": "a", "weight": 1}]
    strategy_variants = [{"name": "s", "value": "s", "weight": 1}]
    rules = ruleset(
        f=flag(
            type="string",
            default="none",
            on_value="on",
            variants=flag_variants,
            strategies=[
                {
                    "constraints": [{"attribute": "beta", "operator": "IN", "values": ["true"]}],
                    "variants": strategy_variants,
                },
                {"constraints": []},
            ],
        )
    )
    assert rules.evaluate("f", {"beta": True, "user_id": "1"}, "x") == Evaluation("s", "s", "SPLIT")
    assert rules.evaluate("f", {"user_id": "1"}, "x") == Evaluation("a", "a", "SPLIT")


def test_static_flag_with_variants_is_a_split_on_user_id_then_session_id() -> None:
    variants = [{"name": "blue", "value": "blue", "weight": 500}, {"name": "green", "value": "green", "weight": 500}]
    rules = ruleset(f=flag(type="string", default="x", on_value="x", variants=variants))
    for who in ("u1", "u2", "u3", "u4"):
        expected = "blue" if normalized_hash(f"f:{who}", VARIANT_SEED, 1000) <= 500 else "green"
        assert rules.evaluate("f", {"user_id": who}, "d") == Evaluation(expected, expected, "SPLIT")
        assert rules.evaluate("f", {"session_id": who}, "d").variant == expected
    # with neither, the "default" stickiness draws at random: still a valid variant
    assert rules.evaluate("f", {}, "d").variant in ("blue", "green")


def test_strategy_value_is_type_checked_and_served() -> None:
    rules = ruleset(f=flag(type="number", default=0, on_value=1, strategies=[{"rollout": 100, "value": 42.5}]))
    assert rules.evaluate("f", {}, 0) == Evaluation(42.5, None, "TARGETING_MATCH")


# ---- rollout and stickiness -------------------------------------------------------------------------


def test_rollout_uses_the_stickiness_attribute() -> None:
    rules = ruleset(f=flag(strategies=[{"rollout": 50, "stickiness": "org", "group_id": "g"}]))
    for org in ("acme", "globex", "initech", "umbrella", 17):
        expected = normalized_hash(f"g:{org}") <= 50
        assert rules.evaluate("f", {"org": org, "user_id": "ignored"}, False).value is expected


def test_rollout_without_stickiness_value() -> None:
    partial = ruleset(f=flag(strategies=[{"rollout": 99, "stickiness": "org"}]))
    assert partial.evaluate("f", {"user_id": "1"}, False) == Evaluation(False, None, "DEFAULT")
    # Unleash: no stickiness value is in no rollout, not even 100%
    everyone = ruleset(f=flag(strategies=[{"rollout": 100, "stickiness": "org"}]))
    assert everyone.evaluate("f", {}, False) == Evaluation(False, None, "DEFAULT")
    assert everyone.evaluate("f", {"org": "acme"}, False) == Evaluation(True, None, "TARGETING_MATCH")
    nobody = ruleset(f=flag(strategies=[{"rollout": 0, "stickiness": "user_id"}]))
    assert not any(nobody.evaluate("f", {"user_id": str(i)}, False).value for i in range(200))


def test_default_stickiness_prefers_user_id_then_session_id() -> None:
    rules = ruleset(f=flag(strategies=[{"rollout": 50}]))
    for who in map(str, range(50)):
        expected = normalized_hash(f"f:{who}") <= 50
        assert rules.evaluate("f", {"user_id": who, "session_id": "other"}, False).value is expected
        assert rules.evaluate("f", {"session_id": who}, False).value is expected


# ---- operators ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "values", "value", "expected"),
    [
        ("IN", ["SE", "NO"], "SE", True),
        ("IN", ["SE", "NO"], "DK", False),
        ("IN", ["5", "7"], 5, True),
        ("IN", ["true"], True, True),
        ("NOT_IN", ["SE", "NO"], "DK", True),
        ("NOT_IN", ["SE", "NO"], "NO", False),
        ("STR_EQUALS", ["shop"], "shop", True),
        ("STR_EQUALS", ["shop"], "shops", False),
        ("STR_STARTS_WITH", ["admin-", "ops-"], "ops-anna", True),
        ("STR_STARTS_WITH", ["admin-"], "anna-admin-", False),
        ("STR_ENDS_WITH", ["@example.com"], "anna@example.com", True),
        ("STR_ENDS_WITH", ["@example.com"], "anna@example.org", False),
        ("STR_CONTAINS", ["beta"], "closed-beta-2", True),
        ("STR_CONTAINS", ["beta"], "alpha", False),
        ("NUM_EQ", [3], "3.0", True),
        ("NUM_EQ", ["3"], 4, False),
        ("NUM_GT", [10], 10.5, True),
        ("NUM_GT", [10], 10, False),
        ("NUM_GTE", [10], 10, True),
        ("NUM_GTE", [10], 9.99, False),
        ("NUM_LT", ["1e3"], 999, True),
        ("NUM_LT", [1000], 1000, False),
        ("NUM_LTE", [1000], "1000", True),
        ("NUM_LTE", [1000], 1001, False),
        ("NUM_GT", [1], "many", False),
        ("NUM_GT", [0], True, False),
        ("SEMVER_EQ", ["1.4.0"], "1.4.0", True),
        ("SEMVER_EQ", ["1.4.0"], "1.4.0+build.7", True),
        ("SEMVER_EQ", ["1.4.0"], "1.4.1", False),
        ("SEMVER_GT", ["1.4.0"], "1.10.0", True),
        ("SEMVER_GT", ["1.4.0"], "1.4.0-rc.1", False),
        ("SEMVER_GT", ["1.4.0-rc.1"], "1.4.0", True),
        ("SEMVER_GT", ["1.4.0-rc.2"], "1.4.0-rc.10", True),
        ("SEMVER_GT", ["1.4.0-alpha"], "1.4.0-alpha.1", True),
        ("SEMVER_LT", ["2.0.0"], "1.99.99", True),
        ("SEMVER_LT", ["2.0.0"], "2.0.0", False),
        ("SEMVER_LT", ["1.0.0-alpha.beta"], "1.0.0-alpha.1", True),
        ("SEMVER_LT", ["2.0.0"], "not-a-version", False),
        ("REGEX", [r"^user-\d+$"], "user-42", True),
        ("REGEX", [r"^user-\d+$"], "user-x", False),
        ("REGEX", ["^a", "b$"], "xxb", True),
    ],
)
def test_operator(operator: str, values: list[Any], value: Any, expected: bool) -> None:
    assert holds(constrained("attr", operator, values), attr=value) is expected
    assert holds(constrained("attr", operator, values, inverted=True), attr=value) is (not expected)


@pytest.mark.parametrize(
    ("operator", "values", "value"),
    [
        ("IN", ["se"], "SE"),
        ("NOT_IN", ["se"], "DK"),
        ("STR_EQUALS", ["SHOP"], "shop"),
        ("STR_STARTS_WITH", ["ADMIN-"], "admin-anna"),
        ("STR_ENDS_WITH", ["@EXAMPLE.COM"], "a@example.com"),
        ("STR_CONTAINS", ["BeTa"], "closed-beta"),
        ("REGEX", ["^USER"], "user-1"),
    ],
)
def test_case_insensitive(operator: str, values: list[Any], value: str) -> None:
    assert holds(constrained("attr", operator, values, case_insensitive=True), attr=value)
    if operator != "NOT_IN":
        assert not holds(constrained("attr", operator, values), attr=value)


@pytest.mark.parametrize(
    ("operator", "values"),
    [
        ("IN", ["SE"]),
        ("NOT_IN", ["SE"]),
        ("STR_CONTAINS", ["x"]),
        ("NUM_GT", [1]),
        ("SEMVER_LT", ["1.0.0"]),
        ("REGEX", [".*"]),
    ],
)
@pytest.mark.parametrize("inverted", [False, True])
@pytest.mark.parametrize("context", [{}, {"attr": None}, {"attr": ""}], ids=["absent", "none", "empty"])
def test_missing_attribute_as_in_unleash(
    operator: str, values: list[Any], inverted: bool, context: dict[str, Any]
) -> None:
    """A missing attribute makes NOT_IN true and every other operator false; then inverted applies."""
    expected = (operator == "NOT_IN") is not inverted
    assert holds(constrained("attr", operator, values, inverted=inverted), **context) is expected


def test_all_constraints_of_a_strategy_must_hold() -> None:
    constraints = [
        {"attribute": "country", "operator": "IN", "values": ["SE"]},
        {"attribute": "app_version", "operator": "SEMVER_GT", "values": ["2.0.0"]},
    ]
    rules = ruleset(f=flag(strategies=[{"constraints": constraints}]))
    assert holds(rules, country="SE", app_version="2.1.0")
    assert not holds(rules, country="SE", app_version="1.9.0")
    assert not holds(rules, country="NO", app_version="2.1.0")


def test_singular_value_key_is_accepted() -> None:
    rules = ruleset(f=flag(strategies=[{"constraints": [{"attribute": "n", "operator": "NUM_GT", "value": "5"}]}]))
    assert holds(rules, n=6)


def test_semver_ordering_follows_semver_org() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    ordered += ["1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1", "10.0.0"]
    keys = [semver_key(v) for v in ordered]
    assert None not in keys
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert semver_key("01.0.0") is None
    assert semver_key("1.0") is None
    assert semver_key("v1.0.0") is None  # Unleash: no leading v


# ---- types and errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "definition",
    [
        {"type": "boolean", "on_value": "yes"},
        {"type": "string", "default": 3},
        {"type": "number", "default": 0, "on_value": True},
        {"type": "json", "default": {}, "on_value": "text"},
        {"type": "string", "default": "a", "variants": [{"name": "v", "value": 7, "weight": 1}]},
        {"type": "string", "default": "a", "strategies": [{"value": False}]},
    ],
)
def test_a_served_value_of_the_wrong_type_is_a_type_mismatch(definition: dict[str, Any]) -> None:
    rules = ruleset(f=flag(**definition), ok=flag())
    result = rules.evaluate("f", {"user_id": "1"}, None)
    assert (result.value, result.reason, result.error_code) == (None, "ERROR", "TYPE_MISMATCH")
    assert rules.evaluate("ok", {}, False).value is True  # one bad flag spoils no other


def test_callers_default_of_another_type_is_a_type_mismatch() -> None:
    rules = ruleset(
        color=flag(type="string", default="blue", on_value="green"), n=flag(type="number", default=0, on_value=1)
    )
    result = rules.evaluate("color", {}, False)
    assert (result.value, result.reason, result.error_code) == (False, "ERROR", "TYPE_MISMATCH")
    assert rules.evaluate("color", {}, "red").value == "green"
    assert rules.evaluate("color", {}, None).value == "green"  # None: no expectation
    assert rules.evaluate("n", {}, 0.5).value == 1
    assert rules.evaluate("n", {}, True).error_code == "TYPE_MISMATCH"  # a bool is not a number


@pytest.mark.parametrize(
    "definition",
    [
        {"type": "colour"},
        {"strategies": {"not": "a list"}},
        {"strategies": [{"constraints": [{"attribute": "a", "operator": "BETWEEN", "values": [1]}]}]},
        {"strategies": [{"constraints": [{"attribute": "a", "operator": "NUM_GT", "values": ["many"]}]}]},
        {"strategies": [{"constraints": [{"attribute": "a", "operator": "SEMVER_EQ", "values": ["1.x"]}]}]},
        {"strategies": [{"rollout": "half"}]},
        {"variants": [{"name": "v", "weight": -1}]},
        {"strategies": [{}, {"constraints": "broken"}]},  # malformed after a match-all: still reported
        "not an object",
    ],
)
def test_a_malformed_flag_is_a_parse_error(definition: Any) -> None:
    rules = ruleset(f=flag(**definition) if isinstance(definition, dict) else definition, ok=flag())
    result = rules.evaluate("f", {"a": "1"}, None)
    assert (result.value, result.reason, result.error_code) == (None, "ERROR", "PARSE_ERROR")
    assert result.error_message
    assert rules.evaluate("ok", {}, False).value is True


def test_a_pattern_re2_refuses_fails_its_constraint_only_as_in_unleash() -> None:
    """Unleash's engine (yggdrasil 2.0, checked): a REGEX it cannot compile is a constraint that
    never holds (inverted: always holds); the flag's other strategies still answer."""
    bad = {"attribute": "a", "operator": "REGEX", "values": ["(?<=x)y"]}
    se = {"attribute": "country", "operator": "IN", "values": ["SE"]}
    rules = ruleset(
        f=flag(strategies=[{"constraints": [bad]}, {"constraints": [se]}]),
        g=flag(strategies=[{"constraints": [{**bad, "inverted": True}]}]),
    )
    assert [rules.evaluate("f", ctx, False).value for ctx in ({"a": "xy"}, {"country": "SE"}, {})] == [
        False,
        True,
        False,
    ]
    assert rules.evaluate("f", {"a": "xy"}, False).error_code is None
    assert [rules.evaluate("g", ctx, False).value for ctx in ({"a": "xy"}, {})] == [True, True]


@pytest.mark.parametrize("document", [[], {"flags": []}, {"flags": "x"}])
def test_a_malformed_document_raises_ruleset_error(document: Any) -> None:
    with pytest.raises(RulesetError):
        compile_ruleset(document)


def test_json_values_are_copies() -> None:
    value = {"limits": [1, 2]}
    rules = ruleset(f=flag(type="json", default={}, on_value=value))
    first = rules.evaluate("f", {}, None)
    first.value["limits"].append(3)
    assert rules.evaluate("f", {}, None).value == {"limits": [1, 2]}


def test_ruleset_metadata_and_context_types() -> None:
    document = {"environment": "staging", "version": 7, "flags": {"f": flag()}}
    original = copy.deepcopy(document)
    rules = compile_ruleset(document)
    assert (rules.environment, rules.version, len(rules), rules.keys(), "f" in rules) == ("staging", 7, 1, ["f"], True)
    assert rules.flag_type("f") == "boolean" and rules.flag_type("g") is None
    assert document == original  # compiling does not modify the document


def test_a_context_that_misbehaves_is_contained_by_the_client() -> None:
    from conveyor_flags import Client

    class Exploding(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("boom")

    client = Client(ruleset={"flags": {"f": flag(strategies=[{"rollout": 50}])}})
    result = client.evaluate("f", Exploding(), False)
    assert (result.value, result.error_code) == (False, "GENERAL")
    assert client.feature_flag("f", user_id="1") in (True, False)

"""Rollout and variant choice agree bit for bit with Unleash.

Three independent references: murmur3 via ``mmh3`` computed here, ``UnleashClient.utils.normalized_hash``
and Unleash's own evaluation engine (``yggdrasil_engine``, which ``UnleashClient`` 6 installs). The
last two are skipped with a message when ``pip install UnleashClient`` has not been done.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import mmh3
import pytest

from conveyor_flags import compile_ruleset, normalized_hash
from conveyor_flags.evaluate import VARIANT_SEED

PERCENTAGES = (1, 10, 20, 33, 50, 99, 100)
FLAG = "new_checkout_flow"


def _ids() -> list[str]:
    """10,000 stickiness values of the shapes apps use: numbers, emails, UUIDs, non-ASCII names."""
    rng = random.Random(20240601)
    ids: list[str] = []
    for i in range(10_000):
        shape = i % 4
        if shape == 0:
            ids.append(str(i))
        elif shape == 1:
            ids.append(f"user{rng.randrange(10**9)}@example.com")
        elif shape == 2:
            ids.append(str(uuid.UUID(int=rng.getrandbits(128))))
        else:
            ids.append(f"Åsa-Łukasz-{rng.randrange(10**6)}-ユーザー")
    return ids


IDS = _ids()


def reference_bucket(group_id: str, value: str, seed: int = 0, modulus: int = 100) -> int:
    """Unleash's normalized hash, written out from its definition."""
    return mmh3.hash(f"{group_id}:{value}", seed=seed, signed=False) % modulus + 1


def rollout_ruleset(percent: int, group_id: str | None = None) -> dict[str, Any]:
    strategy: dict[str, Any] = {"constraints": [], "rollout": percent, "stickiness": "user_id"}
    if group_id is not None:
        strategy["group_id"] = group_id
    flag = {"key": FLAG, "type": "boolean", "enabled": True, "default": False, "strategies": [strategy]}
    return {"environment": "production", "version": 1, "flags": {FLAG: flag}}


VARIANTS = [
    {"name": "blue", "value": "blue", "weight": 333},
    {"name": "green", "value": "green", "weight": 333},
    {"name": "red", "value": "red", "weight": 334},
]
UNEVEN = [
    {"name": "small", "value": "small", "weight": 1},
    {"name": "zero", "value": "zero", "weight": 0},
    {"name": "large", "value": "large", "weight": 6},
]


def variant_ruleset(variants: list[dict[str, Any]], *, strategy_group: str | None = None) -> dict[str, Any]:
    flag: dict[str, Any] = {"key": FLAG, "type": "string", "enabled": True, "default": "control"}
    if strategy_group is None:  # static flag: flag variants, "default" stickiness
        flag["variants"] = variants
        flag["strategies"] = []
    else:
        flag["strategies"] = [
            {"rollout": 100, "stickiness": "user_id", "group_id": strategy_group, "variants": variants}
        ]
    return {"environment": "production", "version": 1, "flags": {FLAG: flag}}


def reference_variant(group_id: str, value: str, variants: list[dict[str, Any]]) -> str:
    total = sum(v["weight"] for v in variants)
    target = reference_bucket(group_id, value, VARIANT_SEED, total)
    cumulative = 0
    for variant in variants:
        cumulative += variant["weight"]
        if target <= cumulative:
            return str(variant["name"])
    raise AssertionError("target beyond total weight")


def test_normalized_hash_definition() -> None:
    assert normalized_hash(f"{FLAG}:42") == reference_bucket(FLAG, "42")
    assert normalized_hash(f"{FLAG}:42", seed=VARIANT_SEED, modulus=1000) == reference_bucket(
        FLAG, "42", VARIANT_SEED, 1000
    )
    assert all(1 <= normalized_hash(f"g:{i}") <= 100 for i in IDS[:500])


@pytest.mark.parametrize("percent", PERCENTAGES)
def test_rollout_matches_mmh3_reference(percent: int) -> None:
    ruleset = compile_ruleset(rollout_ruleset(percent))
    mismatches = []
    included = 0
    for user in IDS:
        ours = ruleset.evaluate(FLAG, {"user_id": user}, False)
        expected = reference_bucket(FLAG, user) <= percent
        included += expected
        if (ours.value is True) != expected or ours.reason != ("TARGETING_MATCH" if expected else "DEFAULT"):
            mismatches.append(user)
    assert mismatches == [], f"{len(mismatches)} of {len(IDS)} ids disagree at {percent}%"
    # the distribution is what a percentage promises (within 2 points on 10,000 ids)
    assert abs(included / len(IDS) * 100 - percent) < 2


def test_rollout_uses_group_id_not_flag_key() -> None:
    ruleset = compile_ruleset(rollout_ruleset(50, group_id="checkout-2024"))
    for user in IDS[:2000]:
        expected = reference_bucket("checkout-2024", user) <= 50
        assert ruleset.evaluate(FLAG, {"user_id": user}, False).value is expected


def test_user_in_10_percent_stays_in_at_20_percent() -> None:
    at_10 = compile_ruleset(rollout_ruleset(10))
    at_20 = compile_ruleset(rollout_ruleset(20))
    inside_10 = {u for u in IDS if at_10.evaluate(FLAG, {"user_id": u}, False).value}
    inside_20 = {u for u in IDS if at_20.evaluate(FLAG, {"user_id": u}, False).value}
    assert inside_10, "some ids must be in the 10%"
    assert inside_10 <= inside_20
    assert len(inside_20) > len(inside_10)


@pytest.mark.parametrize("variants", [VARIANTS, UNEVEN], ids=["even", "uneven-with-zero"])
def test_flag_variants_match_reference(variants: list[dict[str, Any]]) -> None:
    ruleset = compile_ruleset(variant_ruleset(variants))
    for user in IDS:
        result = ruleset.evaluate(FLAG, {"user_id": user}, "fallback")
        expected = reference_variant(FLAG, user, variants)
        assert (result.variant, result.value, result.reason) == (expected, expected, "SPLIT"), user
    assert all(ruleset.evaluate(FLAG, {"user_id": u}, "x").variant != "zero" for u in IDS)


def test_strategy_variants_hash_the_strategy_group() -> None:
    ruleset = compile_ruleset(variant_ruleset(VARIANTS, strategy_group="experiment-7"))
    for user in IDS:
        assert ruleset.evaluate(FLAG, {"user_id": user}, "x").variant == reference_variant(
            "experiment-7", user, VARIANTS
        )


# ---- UnleashClient (optional) --------------------------------------------------------------------


def test_unleash_client_normalized_hash_agrees() -> None:
    utils = pytest.importorskip(
        "UnleashClient.utils", reason="UnleashClient is not installed (pip install UnleashClient)"
    )
    for user in IDS:
        assert utils.normalized_hash(user, FLAG) == normalized_hash(f"{FLAG}:{user}")
        assert utils.normalized_hash(user, FLAG, 1000, VARIANT_SEED) == normalized_hash(
            f"{FLAG}:{user}", VARIANT_SEED, 1000
        )
    for percent in PERCENTAGES:
        ruleset = compile_ruleset(rollout_ruleset(percent))
        for user in IDS:
            assert ruleset.evaluate(FLAG, {"user_id": user}, False).value is (
                utils.normalized_hash(user, FLAG) <= percent
            )


def _unleash_engine(features: list[dict[str, Any]]) -> Any:
    engine_module = pytest.importorskip(
        "yggdrasil_engine.engine", reason="Unleash's engine is not installed (pip install UnleashClient)"
    )
    engine = engine_module.UnleashEngine()
    engine.take_state(json.dumps({"version": 2, "features": features}))
    return engine


def test_unleash_engine_rollout_agrees() -> None:
    features = [
        {
            "name": f"{FLAG}_{percent}",
            "enabled": True,
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": str(percent), "stickiness": "userId", "groupId": FLAG},
                    "constraints": [],
                }
            ],
        }
        for percent in PERCENTAGES
    ]
    engine = _unleash_engine(features)
    for percent in PERCENTAGES:
        ruleset = compile_ruleset(rollout_ruleset(percent))
        disagree = [
            user
            for user in IDS
            if engine.is_enabled(f"{FLAG}_{percent}", {"userId": user}).is_enabled
            is not ruleset.evaluate(FLAG, {"user_id": user}, False).value
        ]
        assert disagree == [], f"Unleash's engine disagrees at {percent}% for {len(disagree)} ids"


def test_unleash_engine_variants_agree() -> None:
    unleash_variants = [
        {"name": v["name"], "weight": v["weight"], "weightType": "variable", "stickiness": "userId"} for v in VARIANTS
    ]
    features = [
        {  # flag-level variants: Unleash hashes them with the feature name as the group
            "name": FLAG,
            "enabled": True,
            "strategies": [{"name": "default", "parameters": {}, "constraints": []}],
            "variants": unleash_variants,
        },
        {  # strategy variants: hashed with the strategy's groupId
            "name": "strategy_variants",
            "enabled": True,
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "100", "stickiness": "userId", "groupId": "experiment-7"},
                    "constraints": [],
                    "variants": unleash_variants,
                }
            ],
        },
    ]
    engine = _unleash_engine(features)
    flag_level = compile_ruleset(variant_ruleset(VARIANTS))
    strategy_level = compile_ruleset(variant_ruleset(VARIANTS, strategy_group="experiment-7"))
    for user in IDS:
        assert engine.get_variant(FLAG, {"userId": user}).variant.name == (
            flag_level.evaluate(FLAG, {"user_id": user}, "x").variant
        ), user
        assert engine.get_variant("strategy_variants", {"userId": user}).variant.name == (
            strategy_level.evaluate(FLAG, {"user_id": user}, "x").variant
        ), user


def test_missing_attribute_agrees_with_unleash() -> None:
    """A missing attribute passes NOT_IN and inverted constraints, as in Unleash's engine."""
    constraints = {
        "not_in": {"operator": "NOT_IN", "values": ["SE"]},
        "inverted_in": {"operator": "IN", "values": ["SE"], "inverted": True},
    }
    engine = _unleash_engine(
        [
            {
                "name": name,
                "enabled": True,
                "strategies": [
                    {
                        "name": "flexibleRollout",
                        "parameters": {"rollout": "100", "stickiness": "userId", "groupId": name},
                        "constraints": [{"contextName": "country", **c}],
                    }
                ],
            }
            for name, c in constraints.items()
        ]
    )
    for name, c in constraints.items():
        ours = compile_ruleset(
            {"flags": {name: {"enabled": True, "strategies": [{"constraints": [{"attribute": "country", **c}]}]}}}
        )
        assert engine.is_enabled(name, {"userId": "u1"}).is_enabled is True
        assert ours.evaluate(name, {"user_id": "u1"}, False).value is True
        assert ours.evaluate(name, {"user_id": "u1", "country": "DK"}, False).value is True
        assert ours.evaluate(name, {"user_id": "u1", "country": "SE"}, False).value is False

"""The Unleash client specification, every case, through conveyor_flags.

The specification (vendored in unleash-spec/, Apache-2.0, see unleash-spec/SOURCE.md) is the suite
every official Unleash SDK runs: a client state and a list of ``isEnabled`` / ``getVariant`` cases.
Each state is translated to a Conveyor ruleset by ``conveyor_flags.unleash`` and evaluated by the
SDK's own evaluator; the answer must be Unleash's. ``KNOWN_FAILURES`` lists the cases not yet
supported (strict xfail: a case that starts passing must leave the list).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from conveyor_flags import compile_ruleset
from conveyor_flags.evaluate import Ruleset
from conveyor_flags.unleash import get_variant, is_enabled, ruleset_from_unleash

SPEC = Path(__file__).parent / "unleash-spec" / "specifications"
KNOWN_FAILURES: frozenset[str] = frozenset(
    {
        "03-gradual-rollout-user-id-strategy:tests:1",
        "04-gradual-rollout-session-id-strategy:tests:1",
        "06-remote-address-strategy:tests:0",
        "06-remote-address-strategy:tests:2",
        "06-remote-address-strategy:tests:3",
        "06-remote-address-strategy:tests:5",
        "08-variants:variantTests:11",
        "09-strategy-constraints:tests:4",
        "11-strategy-constraints-edge-cases:tests:3",
        "13-constraint-operators:tests:31",
        "13-constraint-operators:tests:34",
        "13-constraint-operators:tests:37",
        "13-constraint-operators:tests:38",
        "13-constraint-operators:tests:42",
        "13-constraint-operators:tests:43",
        "14-constraint-semver-operators:tests:10",
        "14-constraint-semver-operators:tests:23",
        "14-constraint-semver-operators:tests:4",
        "14-constraint-semver-operators:tests:5",
        "14-constraint-semver-operators:tests:9",
        "15-global-constraints:tests:1",
        "15-global-constraints:tests:3",
        "15-global-constraints:variantTests:0",
        "17-dependent-features:tests:10",
        "17-dependent-features:tests:12",
        "17-dependent-features:tests:13",
        "17-dependent-features:tests:14",
        "17-dependent-features:tests:15",
        "17-dependent-features:tests:17",
        "17-dependent-features:tests:19",
        "17-dependent-features:tests:3",
        "17-dependent-features:tests:6",
        "17-dependent-features:variantTests:10",
        "17-dependent-features:variantTests:12",
        "17-dependent-features:variantTests:13",
        "17-dependent-features:variantTests:14",
        "17-dependent-features:variantTests:15",
        "17-dependent-features:variantTests:17",
        "17-dependent-features:variantTests:3",
        "17-dependent-features:variantTests:6",
        "21-regex-constraint-operators:tests:10",
        "21-regex-constraint-operators:tests:25",
        "21-regex-constraint-operators:tests:34",
        "21-regex-constraint-operators:tests:36",
        "22-cidr-constraint-operators:tests:0",
        "22-cidr-constraint-operators:tests:11",
        "22-cidr-constraint-operators:tests:2",
        "22-cidr-constraint-operators:tests:4",
        "22-cidr-constraint-operators:tests:7",
        "22-cidr-constraint-operators:tests:9",
    }
)


def _cases() -> list[Any]:
    cases = []
    for file_name in json.loads((SPEC / "index.json").read_text()):
        spec = json.loads((SPEC / file_name).read_text(encoding="utf-8"))
        for kind in ("tests", "variantTests"):
            for index, case in enumerate(spec.get(kind, [])):
                case_id = f"{file_name.removesuffix('.json')}:{kind}:{index}"
                marks = (
                    [pytest.mark.xfail(strict=True, reason="not yet supported")] if case_id in KNOWN_FAILURES else []
                )
                cases.append(pytest.param(file_name, kind, case, id=case_id, marks=marks))
    return cases


CASES = _cases()


@cache
def _ruleset(file_name: str) -> Ruleset:
    spec = json.loads((SPEC / file_name).read_text(encoding="utf-8"))
    return compile_ruleset(ruleset_from_unleash(spec["state"]))


def test_every_case_is_collected() -> None:
    assert len(CASES) == 279


@pytest.mark.parametrize(("file_name", "kind", "case"), CASES)
def test_unleash_client_specification(file_name: str, kind: str, case: dict[str, Any]) -> None:
    ruleset = _ruleset(file_name)
    if kind == "tests":
        assert is_enabled(ruleset, case["toggleName"], case["context"]) is case["expectedResult"], case["description"]
        return
    expected = case["expectedResult"]
    actual = get_variant(ruleset, case["toggleName"], case["context"])
    if "feature_enabled" not in expected:  # older cases predate the field
        actual.pop("feature_enabled")
    assert actual == expected, case["description"]

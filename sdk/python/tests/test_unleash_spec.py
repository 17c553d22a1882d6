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
KNOWN_FAILURES: frozenset[str] = frozenset()


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

"""Failure summaries: the error line of real failure outputs (tests/fixtures/failures, captured
from the real tools: see cases.json for each command), and the fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.domain.failures import MAX_LINE, error_line, failure_summary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "failures"
CASES: dict[str, dict[str, object]] = json.loads((FIXTURES / "cases.json").read_text())


def test_the_fixture_holds_at_least_ten_real_outputs() -> None:
    assert len(CASES) >= 10
    assert sorted(p.stem for p in FIXTURES.glob("*.txt")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_real_failure_output_gives_its_error_line(name: str) -> None:
    output = (FIXTURES / f"{name}.txt").read_text()
    assert error_line(output) == CASES[name]["expected"]


def test_the_django_migration_is_no_longer_summarised_by_its_caret() -> None:
    output = (FIXTURES / "django_migration.txt").read_text()
    assert output.strip().splitlines()[-1].strip() == "^"  # what the old summary showed
    summary = failure_summary("`python manage.py migrate`", 1, output, "its output: conveyor logs 3f2a9c1b")
    assert summary == (
        "`python manage.py migrate` exited with code 1: "
        'django.db.utils.ProgrammingError: syntax error at or near "DEFALT" (its output: conveyor logs 3f2a9c1b)'
    )


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("building\nSELECT 1 FROM\n        ^\n", "SELECT 1 FROM"),
        ("x = compute(\n    ~~~~~~~^^^\n}\n\n", "x = compute("),
        ("step one\nstep two\n  ])\n", "step two"),
        ("", "(no output)"),
        ("\n  \n^\n", "(no output)"),
    ],
)
def test_the_fallback_is_the_last_meaningful_line(output: str, expected: str) -> None:
    assert error_line(output) == expected


def test_a_traceback_whose_head_was_cut_off_still_gives_its_exception_line() -> None:
    tail = '    return run()\n  File "/app/x.py", line 3, in run\n    raise ValueError("bad")\nValueError: bad port 0\n'
    assert error_line(tail) == "ValueError: bad port 0"


def test_colour_codes_and_carriage_returns_are_ignored() -> None:
    output = 'progress 10%\rprogress 100%\n\x1b[31mnpm error\x1b[0m \x1b[1mMissing script: "build"\x1b[0m\n'
    assert error_line(output) == 'npm error Missing script: "build"'


def test_a_long_error_line_is_cut() -> None:
    line = error_line("Error: " + "x" * 1000)
    assert len(line) == MAX_LINE and line.endswith("…")


def test_summary_without_a_hint() -> None:
    assert failure_summary("`make`", 2, "make: *** [Makefile:3: all] Error 1\n") == (
        "`make` exited with code 2: make: *** [Makefile:3: all] Error 1"
    )

"""Hostile conveyor.yml files (issue 11, item 7): alias bombs, deep nesting, huge files and values
YAML's types cannot hold are refused quickly, each at FILE:LINE:COL, never with a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.spec import SpecError, load_spec, parse_spec
from conveyor.spec.bounds import MAX_BYTES, MAX_DEPTH

VALID_HEAD = "service: shop\nenvironments:\n  staging: {branch: main, target: {kind: local, port: 8002}}\n"


def alias_bomb(levels: int = 7) -> str:
    """The classic "billion laughs": each level lists the previous one nine times (9**7 = 4.8 million)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return VALID_HEAD + "\n".join(lines) + "\n"


def refused(text: str) -> tuple[list[str], float]:
    """The problems and the CPU seconds of this thread the refusal took (not wall time: the suite
    runs four workers on two cores, and a blow-up shows in CPU time alone)."""
    started = time.thread_time()
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "conveyor.yml")
    return [str(p) for p in caught.value.problems], time.thread_time() - started


def test_an_alias_bomb_is_refused_in_well_under_a_second() -> None:
    problems, elapsed = refused(alias_bomb())
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert len(problems) == 1
    assert re.fullmatch(r"conveyor\.yml:\d+:\d+: the file expands to more than \d+ values .*aliases.*", problems[0])


def test_five_thousand_nested_brackets_are_refused_at_their_line_and_column() -> None:
    text = "service: shop\nenvironments: {}\nx: " + "[" * 5000 + "]" * 5000 + "\n"
    problems, elapsed = refused(text)
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    # the top-level mapping is level 1, so bracket number MAX_DEPTH (after "x: ") opens level MAX_DEPTH + 1
    assert problems == [
        f"conveyor.yml:3:{3 + MAX_DEPTH}: collections nest deeper than {MAX_DEPTH} levels here; "
        "a conveyor.yml needs fewer than ten"
    ]


def test_deep_block_nesting_is_refused_too() -> None:
    text = VALID_HEAD + "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "leaf\n"
    problems, _ = refused(text)
    # k{i} (on line 4 + i) holds the mapping at level i + 2, which starts on the next line
    assert problems[0].startswith(f"conveyor.yml:{4 + MAX_DEPTH}:")
    assert "nest deeper than" in problems[0]


def test_a_ten_megabyte_file_is_refused_by_its_size_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "conveyor.yml"
    path.write_text(VALID_HEAD + "# padding\n" * (1024 * 1024))
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert time.perf_counter() - started < 1.0
    size = path.stat().st_size
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1:1: the file is {size} bytes; a conveyor.yml may have at most {MAX_BYTES} bytes"
    ]
    problems, _ = refused(path.read_text())  # the same limit for text that comes from a repository
    assert "may have at most" in problems[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-02-30", "day is out of range for month"),
        ("2026-01-01 25:00:00", "hour must be in 0..23"),
        ("9" * 5000, "Exceeds the limit"),
    ],
)
def test_values_yaml_cannot_hold_are_problems_at_their_place(value: str, message: str) -> None:
    problems, _ = refused(VALID_HEAD + f"run: {value}\n")
    assert len(problems) == 1
    assert problems[0].startswith("conveyor.yml:4:6: bad value: ")
    assert message in problems[0]


def test_anchors_and_merge_keys_of_ordinary_size_still_work() -> None:
    spec = parse_spec(
        "service: shop\n"
        "run: python -m shop\n"
        "environments:\n"
        "  staging: {branch: main, target: &target {kind: local, port: 8002, replicas: 2}}\n"
        "  production:\n"
        "    target: {<<: *target, port: 8003}\n"
    )
    production = spec.environment("production").target
    assert (production.port, production.replicas) == (8003, 2)  # type: ignore[union-attr]


HOSTILE = {
    "bomb.yml": alias_bomb(),
    "brackets.yml": "service: " + "[" * 5000 + "]" * 5000 + "\n",
    "braces.yml": "service: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "date.yml": VALID_HEAD + "run: 2026-13-45\n",
    "control.yml": VALID_HEAD + "run: a\x00b\n",
    "unclosed.yml": "service: [shop\n",
    "binary.yml": VALID_HEAD + "run: !!binary 'a'\n",
    "python.yml": VALID_HEAD + "run: !!python/object:os.system [id]\n",
}


def test_conveyor_validate_answers_every_hostile_file_with_file_line_col_and_exit_1(tmp_path: Path) -> None:
    for name, text in {**HOSTILE, "huge.yml": VALID_HEAD + "#\n" * (5 * 1024 * 1024)}.items():
        path = tmp_path / name
        path.write_bytes(text.encode())
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "conveyor", "validate", str(path)], capture_output=True, text=True, timeout=60
        )
        elapsed = time.perf_counter() - started
        assert out.returncode == 1, (name, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, (name, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert lines, name
        assert all(re.match(rf"{re.escape(str(path))}:\d+:\d+: \S", line) for line in lines), (name, lines)
        assert elapsed < 15, (name, elapsed)  # a Python start-up on a busy machine; the bomb took over 120 s

"""Run squawk (PyPI ``squawk-cli``, a binary in the wheel) on SQL and read its JSON report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from conveyor.domain.migrations import DESTRUCTIVE_RULES, SQUAWK_RULES, Finding, fix_for, statement_at
from conveyor.errors import ConveyorError

SQUAWK_TIMEOUT = 60.0


def squawk_binary() -> str:
    """The squawk installed with Conveyor (next to this Python), else one on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.exists():
        return str(beside)
    found = shutil.which("squawk")
    if found is None:
        raise ConveyorError(
            "squawk is not installed, so the migrations cannot be linted",
            fix="install Conveyor with its dependencies (pip install conveyor installs squawk-cli)",
        )
    return found


def lint(sql: str, rules: Iterable[str]) -> tuple[Finding, ...]:
    """squawk's findings in ``sql`` for ``rules`` and the destructive rules (always on: rollback
    needs to know), in the order of the SQL. Raises ConveyorError when squawk cannot read it."""
    if not sql.strip():
        return ()
    on = set(rules) | DESTRUCTIVE_RULES
    off = sorted(SQUAWK_RULES - on)
    args = [
        squawk_binary(),
        "--reporter",
        "json",
        "--stdin-filepath",
        "migration.sql",
    ]
    args += [f"--exclude={','.join(off)}"] if off else []
    args += [f"--include={','.join(sorted(on))}"]
    try:
        done = subprocess.run(args, input=sql, capture_output=True, text=True, timeout=SQUAWK_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConveyorError(f"squawk took over {SQUAWK_TIMEOUT:.0f}s on the migration SQL") from exc
    try:
        items = json.loads(done.stdout or "[]")
    except json.JSONDecodeError as exc:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ConveyorError(
            f"squawk could not lint the migration SQL: {detail[-1] if detail else 'no output'}",
            fix="check that the sql command prints plain SQL (e.g. alembic upgrade ... --sql)",
        ) from exc
    findings = []
    for item in items:
        rule = str(item.get("rule_name") or "")
        if rule not in on:
            continue
        line, column = int(item.get("line", 0)), int(item.get("column", 0))
        findings.append(
            Finding(
                rule=rule,
                message=str(item.get("message", "")).rstrip("."),
                statement=statement_at(sql, line, column),
                line=line + 1,
                fix=fix_for(rule, item.get("help")),
            )
        )
    return tuple(sorted(findings, key=lambda f: (f.line, f.rule)))

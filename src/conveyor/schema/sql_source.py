"""The SQL a deployment's migrations will run, before they run (docs/database.md).

With ``migrate.sql`` it is that command's standard output, run in the deployment's built worktree
with the environment's variables (so ``alembic upgrade $FROM:head --sql`` or ``manage.py sqlmigrate``
see the environment's database settings). Without it, it is the ``.sql`` files the new commit adds
over the release serving in the environment, in path order.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.spec.models import MigrateSpec
from conveyor.vcs.git import GitRepo

SQL_TIMEOUT = 300.0
SQL_LIMIT = 4_000_000  # characters of SQL kept and linted


@dataclass(frozen=True)
class ReleaseSql:
    source: str  # "sql command" | ".sql files" | "none"
    sql: str
    files: tuple[str, ...] = ()
    note: str = ""  # why there is none, when there is none


def from_command(migrate: MigrateSpec, *, cwd: Path, env: Mapping[str, str]) -> ReleaseSql:
    """Run ``migrate.sql`` (read-only by contract, so safe to run again) and take its stdout."""
    assert migrate.sql is not None
    timeout = migrate.sql.timeout or SQL_TIMEOUT
    try:
        done = subprocess.run(
            ["sh", "-c", migrate.sql.run],
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ConveyorError(
            f"the migrate.sql command `{migrate.sql.run}` took over {timeout:.0f}s", fix="raise migrate.sql.timeout"
        ) from exc
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise ConveyorError(
            f"the migrate.sql command `{migrate.sql.run}` failed with exit code {done.returncode}: "
            f"{last[-1] if last else 'no output'}",
            fix="run it in the release's worktree to see why; it must print the SQL that migrate would run",
        )
    return ReleaseSql("sql command", done.stdout[:SQL_LIMIT])


def from_files(repo: GitRepo, serving_sha: str | None, sha: str) -> ReleaseSql:
    """The ``.sql`` files ``sha`` adds over the release serving (none on a first deployment)."""
    if serving_sha is None:
        return ReleaseSql("none", "", note="no release serves here yet, so no .sql file is new to it")
    if serving_sha == sha:
        return ReleaseSql("none", "", note="the same commit already serves here")
    files = repo.files_added(serving_sha, sha, "*.sql")
    if not files:
        return ReleaseSql("none", "", note="no .sql file added since the serving release")
    parts = []
    for path in files:
        text = repo.show_file(sha, path) or ""
        parts.append(f"-- {path}\n{text.rstrip()}\n")
    return ReleaseSql(".sql files", "\n".join(parts)[:SQL_LIMIT], tuple(files))

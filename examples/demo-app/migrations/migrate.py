#!/usr/bin/env python3
"""Apply the demo app's SQL migrations to a SQLite file, once each, in order.

    DEMO_DB=/path/demo.db python3 migrations/migrate.py      (default: ./demo.db in the cwd)

Migrations are the files `NNN_name.sql` next to this script. Applied versions are recorded in
`schema_migrations(version)`; running again applies only new files, so the command is idempotent
and safe to repeat after a crash (each file runs in one transaction with its bookkeeping row).
Exit codes: 0 applied or nothing to do, 1 a migration failed (nothing of that file is kept).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent
FILE_PATTERN = re.compile(r"^(\d+)_[A-Za-z0-9_-]+\.sql$")


def find_migrations(directory: Path) -> list[tuple[str, Path]]:
    """(version, path) pairs sorted by their number; two files with one number are an error."""
    found: dict[int, tuple[str, Path]] = {}
    for path in directory.glob("*.sql"):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: migration files are named NNN_description.sql")
        number = int(match.group(1))
        if number in found:
            other = found[number][1].name
            raise ValueError(f"{path.name} and {other} share the number {number}; renumber one")
        found[number] = (match.group(1), path)
    return [found[number] for number in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split a script into statements at the semicolons SQLite itself considers complete."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    leftover = "\n".join(ln for ln in buffer.splitlines() if not ln.strip().startswith("--")).strip()
    if leftover:
        statements.append(leftover)  # a last statement without its semicolon
    return statements


def migrate(db_path: Path, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the file names applied (empty when up to date)."""
    migrations = find_migrations(directory)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)  # we manage transactions
    applied_now: list[str] = []
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        for version, path in migrations:
            conn.execute("BEGIN IMMEDIATE")  # one migrator at a time; re-check under the lock
            try:
                done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone()
                if not done:
                    for statement in split_statements(path.read_text(encoding="utf-8")):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, path.name))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise ValueError(f"{path.name}: {exc}; nothing of it was applied") from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if not done:
                applied_now.append(path.name)
    finally:
        conn.close()
    return applied_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply the demo app's SQL migrations to SQLite.")
    parser.add_argument("--db", default=os.environ.get("DEMO_DB") or "demo.db", help="SQLite file ($DEMO_DB)")
    args = parser.parse_args(argv)
    db_path = Path(args.db).resolve()
    try:
        applied = migrate(db_path)
    except (ValueError, OSError, sqlite3.Error) as exc:  # ValueError names the file
        print(f"migrate: FAILED on {db_path}: {exc}", file=sys.stderr, flush=True)
        return 1
    if applied:
        for name in applied:
            print(f"migrate: applied {name}")
        print(f"migrate: {len(applied)} migration(s) applied to {db_path}", flush=True)
    else:
        print(f"migrate: nothing to apply; {db_path} is up to date", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

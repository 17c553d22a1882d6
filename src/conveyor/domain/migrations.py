"""What Conveyor knows of a release's database migrations: the SQL, the linter's findings, the
fix the process document asks for, and whether the change is destructive for the code before it.

Pure: squawk is run by ``database/squawk.py``; this module only judges its findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The squawk rules Conveyor turns on by default: those behind the process document's "safe migrations"
# (nullable columns, no drop with the code change, CONCURRENTLY) and the locks that block traffic.
# Style rules (prefer-identity, prefer-text-field, ...) and the timeout rules are off: Conveyor sets
# lock_timeout and statement_timeout itself (PGOPTIONS, docs/database.md).
DEFAULT_RULES: tuple[str, ...] = (
    "adding-required-field",
    "adding-not-nullable-field",
    "adding-field-with-default",
    "adding-foreign-key-constraint",
    "adding-serial-primary-key-field",
    "ban-drop-column",
    "ban-drop-table",
    "ban-drop-database",
    "ban-drop-not-null",
    "ban-truncate-cascade",
    "changing-column-type",
    "constraint-missing-not-valid",
    "disallowed-unique-constraint",
    "renaming-column",
    "renaming-table",
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "ban-concurrent-index-creation-in-transaction",
)

# Every rule name squawk 2.x accepts (checked against squawk-cli 2.70 with --exclude NAME).
SQUAWK_RULES: frozenset[str] = frozenset(
    {
        *DEFAULT_RULES,
        "ban-alter-domain-with-add-constraint",
        "ban-char-field",
        "ban-create-domain-with-constraint",
        "prefer-bigint-over-int",
        "prefer-bigint-over-smallint",
        "prefer-identity",
        "prefer-robust-stmts",
        "prefer-text-field",
        "prefer-timestamptz",
        "transaction-nesting",
        "require-timeout-settings",
        "require-lock-timeout",
        "require-statement-timeout",
        "ban-uncommitted-transaction",
        "require-enum-value-ordering",
        "ban-drop-schema",
        "ban-drop-sequence",
        "ban-drop-domain",
        "ban-drop-constraint",
        "ban-drop-generated-expression",
        "ban-drop-extension",
        "ban-alter-identity",
        "renaming-object",
        "ban-set-schema",
        "require-table-schema",
        "ban-alter-extension",
    }
)

# A change after which the code of the release before no longer finds what it reads: the reason a
# rollback over it must take the database back too. Always linted, whatever ``rules`` turns on.
DESTRUCTIVE_RULES: frozenset[str] = frozenset(
    {"ban-drop-column", "ban-drop-table", "renaming-column", "renaming-table", "changing-column-type"}
)

_EXPAND_CONTRACT = (
    "split it (expand/contract): release the code that no longer uses it first, and drop or rename in a later release"
)
# The fix the process document asks for, per rule.
FIXES: Mapping[str, str] = {
    "adding-required-field": "add the column as nullable, or with a default (the process document: "
    '"add columns as nullable initially")',
    "adding-not-nullable-field": "add a CHECK (col IS NOT NULL) NOT VALID constraint, VALIDATE it, then SET NOT NULL",
    "adding-field-with-default": "add the column without the volatile default, then backfill in batches",
    "adding-foreign-key-constraint": "add the foreign key NOT VALID, then VALIDATE CONSTRAINT in a later statement",
    "adding-serial-primary-key-field": "build a unique index CONCURRENTLY, then ADD PRIMARY KEY USING INDEX",
    "ban-drop-column": _EXPAND_CONTRACT + " (the process document: \"don't remove columns in the same release "
    'as code changes")',
    "ban-drop-table": _EXPAND_CONTRACT,
    "ban-drop-database": "never drop a database in a migration",
    "ban-drop-not-null": "keep NOT NULL until the code that relies on it is gone (expand/contract)",
    "ban-truncate-cascade": "delete the rows you mean, table by table",
    "changing-column-type": "add a column of the new type, backfill, switch the code, drop the old one later "
    "(expand/contract)",
    "constraint-missing-not-valid": "add the constraint NOT VALID, then VALIDATE CONSTRAINT separately",
    "disallowed-unique-constraint": "create a unique index CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX",
    "renaming-column": _EXPAND_CONTRACT + ": add the new column, write both, drop the old one later",
    "renaming-table": _EXPAND_CONTRACT + ": add a view or a new table, switch the code, drop later",
    "require-concurrent-index-creation": 'use CREATE INDEX CONCURRENTLY (the process document: "use '
    'CONCURRENTLY for index creation")',
    "require-concurrent-index-deletion": "use DROP INDEX CONCURRENTLY",
    "ban-concurrent-index-creation-in-transaction": "run CREATE INDEX CONCURRENTLY outside a transaction "
    "(e.g. Alembic's autocommit_block, Django's atomic = False)",
}


@dataclass(frozen=True)
class Finding:
    """One problem squawk found in one statement."""

    rule: str
    message: str
    statement: str  # the statement's text, as found in the SQL
    line: int  # 1-based line of the SQL where it starts
    fix: str

    @property
    def destructive(self) -> bool:
        return self.rule in DESTRUCTIVE_RULES

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "statement": self.statement,
            "line": self.line,
            "fix": self.fix,
            "destructive": self.destructive,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(str(data["rule"]), str(data["message"]), str(data["statement"]), int(data["line"]), str(data["fix"]))


def fix_for(rule: str, help_text: str | None) -> str:
    return FIXES.get(rule) or (help_text or "see squawk's documentation of this rule")


def statement_at(sql: str, line: int, column: int) -> str:
    """The whole statement around the place squawk points at (0-based line and column), on one line.

    Statements are split at ``;`` (a semicolon inside a string literal is rare in migrations)."""
    lines = sql.splitlines(keepends=True)
    if not lines or line >= len(lines):
        return ""
    offset = sum(len(text) for text in lines[:line]) + column
    start = sql.rfind(";", 0, offset) + 1
    end = sql.find(";", offset)
    text = sql[start : len(sql) if end < 0 else end + 1]
    kept = [row for row in text.splitlines() if not row.strip().startswith("--")]  # no comment lines
    return " ".join(" ".join(kept).split())


@dataclass(frozen=True)
class MigrationReport:
    """The SQL of one deployment's migrations and what the lint found in it."""

    source: str  # "sql command", ".sql files" or "none"
    sql: str
    findings: tuple[Finding, ...] = ()
    error: str | None = None  # the SQL could not be had or linted: the gate says why
    files: tuple[str, ...] = ()  # the .sql files added, when that is the source

    @property
    def destructive(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.destructive)

    def blocking(self, rules: Iterable[str]) -> tuple[Finding, ...]:
        """The findings the environment's ``rules`` turn on."""
        on = set(rules)
        return tuple(f for f in self.findings if f.rule in on)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sql": self.sql,
            "findings": [f.as_json() for f in self.findings],
            "error": self.error,
            "files": list(self.files),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MigrationReport:
        return cls(
            source=str(data["source"]),
            sql=str(data["sql"]),
            findings=tuple(Finding.from_json(f) for f in data.get("findings", [])),
            error=data.get("error"),
            files=tuple(data.get("files", [])),
        )


@dataclass(frozen=True)
class Acknowledgement:
    """A release manager's word that a release's findings are understood, for that release only."""

    user: str
    reason: str
    at: Any  # datetime; Any keeps this module free of a clock import
    rules: tuple[str, ...] = field(default_factory=tuple)  # the rules acknowledged (those found then)


def describe(finding: Finding) -> str:
    """One line for a gate reason or a CLI table: rule, statement, fix."""
    return f"{finding.rule}: `{finding.statement}` (line {finding.line}); fix: {finding.fix}"

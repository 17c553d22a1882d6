"""The schema gap of a rollback: destructive migrations that ran after the target release, which
its code does not expect (docs/database.md). Pure: the engine finds them, this module says so."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.domain.migrations import Finding

FIX = "roll back with --with-database, or as a release manager --override-schema --reason T"


@dataclass(frozen=True)
class SchemaChange:
    """One migration run in the environment after the target release, and what it destroyed."""

    deployment_id: str
    version: str  # the release whose migration it was
    findings: tuple[Finding, ...]  # its destructive findings (drop or rename of a column or table, a type change)

    def as_json(self) -> dict[str, object]:
        return {
            "deployment": self.deployment_id,
            "version": self.version,
            "findings": [f.as_json() for f in self.findings],
        }


def statements(changes: tuple[SchemaChange, ...]) -> str:
    """Each destructive statement with its rule: ``ALTER TABLE users DROP COLUMN name (ban-drop-column)``."""
    return "; ".join(f"{_short(f.statement)} ({f.rule})" for c in changes for f in c.findings)


def explain(target: str, changes: tuple[SchemaChange, ...]) -> str:
    """One paragraph: which release's migration changed what the target's code expects, and the way out."""
    return f"{gap_sentence(target, changes)}; {FIX}"


def gap_sentence(target: str, changes: tuple[SchemaChange, ...]) -> str:
    """Which release's migration changed what the target's code expects (the refusal; FIX is its fix)."""
    versions = []
    for change in changes:
        if change.version not in versions:
            versions.append(change.version)
    whose = " and ".join(f"{v}'s" for v in versions)
    plural = "migrations" if len(changes) > 1 else "migration"
    return (
        f"{target}'s code expects a schema that {whose} {plural} changed: {statements(changes)}. "
        f"Rolling back the code alone would leave {target} reading what is no longer there"
    )


def _short(statement: str, limit: int = 200) -> str:
    text = " ".join(statement.split()).rstrip(";")
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""A step context whose commands get a few more environment variables (PGOPTIONS for a
migration, CONVEYOR_BACKUP for a backup, CONVEYOR_ROLLBACK_TO_* for a down-migration)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from conveyor.engine.context import StepContext
from conveyor.store.records import ReleaseRecord


@dataclass(frozen=True)
class _WithEnv(StepContext):
    extra: Mapping[str, str] = field(default_factory=dict)

    def command_env(self, release: ReleaseRecord | None = None, workdir: Path | None = None) -> dict[str, str]:
        env = super().command_env(release, workdir)
        env.update(self.extra)
        return env


def with_env(ctx: StepContext, extra: Mapping[str, str]) -> StepContext:
    """``ctx``, with ``extra`` added to (and overriding) every command's environment."""
    base = {f.name: getattr(ctx, f.name) for f in fields(StepContext)}
    return _WithEnv(**base, extra={**getattr(ctx, "extra", {}), **extra})


def pg_options(ctx: StepContext) -> str:
    """PGOPTIONS for a migration: what the environment already has, then the migrate step's
    lock_timeout and statement_timeout in milliseconds (libpq reads it; psql, pg_dump, psycopg,
    Alembic and Django on libpq all take it)."""
    spec = ctx.env_spec.migrate
    assert spec is not None
    existing = ctx.command_env().get("PGOPTIONS", "").strip()
    ours = (
        f"-c lock_timeout={round(spec.lock_timeout * 1000)} -c statement_timeout={round(spec.statement_timeout * 1000)}"
    )
    return f"{existing} {ours}".strip()

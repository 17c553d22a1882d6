"""migrate: the environment's migration command, run exactly once per deployment."""

from __future__ import annotations

from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.steps import step

MIGRATE_TIMEOUT = 600.0


@step("migrate")
def migrate(ctx: StepContext) -> StepOutcome:
    if ctx.env_spec.migrate is None:
        return StepOutcome(True, "no migrate command configured")
    # never run twice: if the server died mid-migration, the run is picked up, not repeated
    return ctx.run("migrate", ctx.env_spec.migrate, default_timeout=MIGRATE_TIMEOUT)

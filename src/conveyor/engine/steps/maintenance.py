"""maintenance_on / maintenance_off: the environment's maintenance mode around the database part
of ``rollback --with-database`` (docs/database.md). Both are safe to run again after a crash.
Not for conveyor.yml ``steps:``: the engine puts them in a with-database rollback's plan."""

from __future__ import annotations

from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.maintenance import maintenance
from conveyor.engine.steps import step


@step("maintenance_on")
def maintenance_on(ctx: StepContext) -> StepOutcome:
    message = maintenance(ctx, on=True)
    return StepOutcome(True, f"{message}: every request gets 503 with Retry-After until maintenance_off")


@step("maintenance_off")
def maintenance_off(ctx: StepContext) -> StepOutcome:
    return StepOutcome(True, f"{maintenance(ctx, on=False)}: serving again")

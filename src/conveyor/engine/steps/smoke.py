"""smoke: the environment's smoke test against the release now serving."""

from __future__ import annotations

from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.steps import step

SMOKE_TIMEOUT = 300.0


@step("smoke")
def smoke(ctx: StepContext) -> StepOutcome:
    if ctx.env_spec.smoke is None:
        return StepOutcome(True, "no smoke command configured")
    return ctx.run("smoke", ctx.env_spec.smoke, default_timeout=SMOKE_TIMEOUT, rerun_interrupted=True)

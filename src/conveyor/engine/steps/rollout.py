"""rollout: the target puts the release into the environment, then it becomes the current one."""

from __future__ import annotations

from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.steps import step
from conveyor.store import deployments as store
from conveyor.targets.base import target_for


@step("rollout")
def rollout(ctx: StepContext) -> StepOutcome:
    if ctx.release is None:
        return StepOutcome(False, "no release was recorded before rollout (the tag step did not run)")
    outcome = target_for(ctx.env_spec.target.kind).deploy(ctx)
    if outcome.ok:
        release_id, now = ctx.release.id, ctx.runtime.clock.now()
        ctx.write(
            lambda conn: store.set_current_release(
                conn, ctx.service.id, ctx.deployment.environment, release_id, ctx.deployment.id, now
            )
        )
        where = f"{ctx.release.version} is serving in {ctx.deployment.environment}"
        return StepOutcome(True, f"{where}: {outcome.message}", outcome.output)
    return outcome

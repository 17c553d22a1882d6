"""announce: the completion message of the process document. Notifiers plug in here later;
for now the text is recorded in the step journal."""

from __future__ import annotations

from conveyor.domain.text import single_line
from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.steps import step


def announcement(ctx: StepContext) -> str:
    version = ctx.release.version if ctx.release else ctx.deployment.sha[:12]
    what = "Rollback" if ctx.deployment.kind == "rollback" else "Deployment"
    mark = "🚨 EMERGENCY " if ctx.deployment.emergency else "✅ "
    lines = [f"{mark}{what} complete: {ctx.service.name} {version} to {ctx.deployment.environment}"]
    if ctx.deployment.notes:  # refused with line breaks since issue 11; older rows are escaped
        lines.append(f"- Notes: {single_line(ctx.deployment.notes)}")
    if ctx.deployment.ticket:
        lines.append(f"- Ticket: {single_line(ctx.deployment.ticket)}")
    lines.append(f"- Deployed by: @{ctx.deployment.actor}")
    return "\n".join(lines)


@step("announce")
def announce(ctx: StepContext) -> StepOutcome:
    return StepOutcome(True, announcement(ctx))

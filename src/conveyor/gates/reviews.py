"""reviews: at least N approving code reviews of the exact commit, from people other than its
author (a hotfix ref needs the hotfix policy's count instead)."""

from __future__ import annotations

from conveyor.gates.base import Evidence, GateResult, Review
from conveyor.gates.registry import register
from conveyor.spec import EnvironmentSpec, ServiceSpec


def latest_by_reviewer(reviews: tuple[Review, ...]) -> dict[str, Review]:
    latest: dict[str, Review] = {}
    for r in sorted(reviews, key=lambda r: r.at):
        if r.state in ("approved", "changes_requested", "dismissed"):
            latest[r.reviewer] = r
    return latest


class Reviews:
    name = "reviews"

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool:
        return bool(env.gates.reviews)

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult:
        needed = env.gates.reviews or 0
        if evidence.hotfix and service.hotfix is not None:
            needed = min(needed, service.hotfix.reviews)
        latest = latest_by_reviewer(evidence.reviews)
        own = sorted({r.reviewer for r in latest.values() if r.reviewer == r.author and r.state == "approved"})
        approvers = sorted(r.reviewer for r in latest.values() if r.state == "approved" and r.reviewer != r.author)
        blocking = sorted(r.reviewer for r in latest.values() if r.state == "changes_requested")
        details = {"needed": needed, "approvers": approvers, "changes_requested": blocking, "hotfix": evidence.hotfix}
        if blocking:
            return GateResult(
                self.name, False, f"changes requested by {', '.join(blocking)} on {evidence.sha[:12]}", details
            )
        if len(approvers) >= needed:
            return GateResult(self.name, True, f"{len(approvers)} approving review(s): {', '.join(approvers)}", details)
        reason = f"{needed} approving review(s) needed on {evidence.sha[:12]}, {len(approvers)} so far"
        if approvers:
            reason += f" ({', '.join(approvers)})"
        if own:
            reason += f"; the author's own approval does not count ({', '.join(own)})"
        return GateResult(self.name, False, reason, details)


register(Reviews())

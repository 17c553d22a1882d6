"""schedule: the deploy calendar (windows, weekends, holidays, freezes) says the instant is open;
or the deployment is an emergency approved by the configured role (never the requester)."""

from __future__ import annotations

from datetime import datetime

from conveyor.domain.calendar import build_schedule, evaluate
from conveyor.gates.base import Evidence, GateResult, names
from conveyor.gates.registry import register
from conveyor.spec import EnvironmentSpec, ServiceSpec

DEFAULT_EMERGENCY_APPROVERS = ("manager",)


def emergency_approvers(env: EnvironmentSpec) -> tuple[str, ...]:
    config = (env.gates.schedule or {}).get("emergency") or {}
    return tuple(config.get("approvers") or DEFAULT_EMERGENCY_APPROVERS)


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M %Z")


class ScheduleGate:
    name = "schedule"

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool:
        return env.gates.schedule is not None

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult:
        assert env.gates.schedule is not None
        schedule = build_schedule(env.gates.schedule, evidence.freezes)
        verdict = evaluate(schedule, evidence.now)
        details: dict[str, object] = {
            "open": verdict.open,
            "timezone": str(schedule.timezone),
            "next_open": verdict.next_open.isoformat() if verdict.next_open else None,
            "closes_at": verdict.closes_at.isoformat() if verdict.closes_at else None,
            "emergency": evidence.emergency,
        }
        if verdict.open:
            return GateResult(self.name, True, verdict.reason, details)
        if evidence.emergency:
            roles = emergency_approvers(env)
            approvers = sorted(
                {
                    a.user
                    for a in evidence.approvals
                    if a.user != evidence.requester and any(r in roles for r in a.roles)
                }
            )
            details["emergency_approved_by"] = approvers
            if approvers:
                return GateResult(
                    self.name,
                    True,
                    f"emergency: schedule bypassed ({verdict.reason}), approved by {', '.join(approvers)}",
                    details,
                )
            return GateResult(
                self.name,
                False,
                f"emergency outside the schedule ({verdict.reason}): waiting for "
                f"approval from {names(roles)} (not {evidence.requester})",
                details,
            )
        reason = verdict.reason
        if verdict.next_open:
            reason += f"; next opening {stamp(verdict.next_open)}"
        return GateResult(self.name, False, reason, details, waitable=evidence.when_open)


register(ScheduleGate())

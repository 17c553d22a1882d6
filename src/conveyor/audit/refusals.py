"""A refused action: recorded in the audit log, and nothing else changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.audit import log as audit
from conveyor.errors import Forbidden

if TYPE_CHECKING:
    from conveyor.runtime import Runtime


def refuse(rt: Runtime, actor: str, action: str, subject: str, reason: str) -> Forbidden:
    """Record a refused action in the audit log and return the error to raise: nothing else changes."""
    now = rt.clock.now()
    with rt.db.begin() as conn:
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="forbidden",
            subject=subject,
            details={"attempted": action, "reason": reason},
        )
    return Forbidden(reason)

"""A flag's timeline: its audited changes (``flag.*`` entries of the audit log for that flag, each
with what changed from before to after) and the deployments of its service, newest first."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from conveyor.domain.clock import as_utc
from conveyor.store import deployments as deployment_store
from conveyor.store.records import DeploymentRecord
from conveyor.store.tables import audit_log

LIMIT = 100  # of each kind; the merged timeline shows the newest LIMIT
SHOWN = 300  # characters of a before or after value


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # "flag" or "deployment"
    actor: str
    action: str = ""
    environment: str | None = None
    changes: list[Change] = field(default_factory=list)
    note: str | None = None
    deployment: DeploymentRecord | None = None


def _show(value: Any) -> str:
    if value is None:
        return "none"
    text = json.dumps(value, separators=(", ", ": "), sort_keys=True)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


KNOWN = {"constraints", "rollout", "stickiness", "value", "variants", "group_id"}


def constraint_text(c: dict[str, Any]) -> str:
    negated = "NOT " if c.get("inverted") else ""
    return f"{c.get('attribute')} {negated}{c.get('operator')} {', '.join(str(v) for v in c.get('values', []))}"


def strategy_text(s: dict[str, Any]) -> str:
    """A strategy as people read it: ``25% where country IN se, no``."""
    text = f"{s.get('rollout', 100)}%"
    if s.get("constraints"):
        where = [constraint_text(c) for c in s["constraints"]]
        text += " where " + " and ".join(where)
    if s.get("stickiness", "default") != "default":
        text += f" by {s['stickiness']}"
    if s.get("value") is not None:
        text += f" serves {_show(s['value'])}"
    if s.get("variants"):
        text += " variants " + ", ".join(f"{v.get('name')} ({v.get('weight')})" for v in s["variants"])
    extra = {k: v for k, v in s.items() if k not in KNOWN and v not in (None, [], {}, "")}
    return text + "".join(f" {k}={_show(v)}" for k, v in extra.items())


def _strategies(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(s, dict) for s in value):
        return "; ".join(strategy_text(s) for s in value) if value else "none"
    return _show(value)


def changes(before: Any, after: Any) -> list[Change]:
    """The top-level fields that differ between ``before`` and ``after`` (either may be None)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [] if before == after else [Change("flag", _show(before), _show(after))]
    keys = list(dict.fromkeys([*before, *after]))
    show = {"strategies": _strategies}
    return [
        Change(k, show.get(k, _show)(before.get(k)), show.get(k, _show)(after.get(k)))
        for k in keys
        if before.get(k) != after.get(k)
    ]


def _flag_entry(row: Any) -> Entry:
    details = row.details if isinstance(row.details, dict) else {}
    note = details.get("reason")
    return Entry(
        at=as_utc(row.at),
        kind="flag",
        actor=row.actor,
        action=row.action,
        environment=details.get("environment"),
        changes=changes(details.get("before"), details.get("after")),
        note=f"reason: {note}" if note else None,
    )


def timeline(conn: Connection, service_id: int, subject: str) -> list[Entry]:
    """The flag's changes (audit subject ``service/key``) and its service's deployments."""
    rows = conn.execute(
        select(audit_log)
        .where(audit_log.c.subject == subject, audit_log.c.action.like("flag.%"))
        .order_by(audit_log.c.id.desc())
        .limit(LIMIT)
    ).all()
    entries = [_flag_entry(r) for r in rows]
    for d in deployment_store.list_deployments(conn, service_id=service_id, limit=LIMIT):
        entries.append(
            Entry(at=d.created_at, kind="deployment", actor=d.actor, environment=d.environment, deployment=d)
        )
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:LIMIT]

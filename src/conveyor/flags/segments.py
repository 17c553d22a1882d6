"""Segment operations (Unleash's shared constraint sets), with the permissions of flags: defining
one is a definition change (``may_define``); changing one that a flag uses where it is on changes
what that environment serves, so it needs the right to change flags there too. Each change is
audited with before/after and bumps the service's ruleset versions in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from conveyor.audit import log as audit
from conveyor.auth.users import User
from conveyor.errors import Conflict
from conveyor.flags import policy, segment_store, store
from conveyor.flags.model import Segment, dump, parse
from conveyor.flags.segment_store import SegmentRecord
from conveyor.flags.service import Notify, _bump_all, _service_id, check, environments, writing
from conveyor.runtime import Runtime
from conveyor.store import services as service_store
from conveyor.store.records import ServiceRecord


def _uses(conn: Connection, service_id: int, segment_id: int) -> list[tuple[str, str, bool]]:
    """(flag key, environment, whether the flag is on there) for every strategy naming the segment."""
    flags = store.list_flags(conn, service_id)
    states = store.get_states(conn, [f.id for f in flags])
    keys = {f.id: f.key for f in flags}
    return sorted(
        (keys[fid], env, state.state.enabled)
        for (fid, env), state in states.items()
        if any(segment_id in s.segments for s in state.state.strategies)
    )


def _describe(conn: Connection, record: SegmentRecord) -> dict[str, Any]:
    used = _uses(conn, record.service_id, record.id)
    return {**record.as_json(), "used_by": [f"{key}@{env}" for key, env, _ in used]}


def list_segments(rt: Runtime, service: str | None) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return [_describe(conn, s) for s in segment_store.list_segments(conn, _service_id(conn, service))]


def detail(rt: Runtime, name: str, service: str | None) -> dict[str, Any]:
    with rt.db.read() as conn:
        return _describe(conn, segment_store.find_segment(conn, name, _service_id(conn, service), service))


def _find(conn: Connection, name: str, service: str | None) -> tuple[SegmentRecord, ServiceRecord]:
    record = segment_store.find_segment(conn, name, _service_id(conn, service), service)
    return record, service_store.get_service_by_id(conn, record.service_id)


def create_segment(
    rt: Runtime, user: User, notify: Notify, service: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    segment = parse(Segment, body, "segment")
    with writing(rt, user) as conn:
        svc = service_store.pick_service(conn, service)
        subject = f"{svc.name}/segment:{segment.name}"
        check(policy.may_define(user.name, user.roles), "segment.create", subject)
        now = rt.clock.now()
        segment_id = segment_store.insert_segment(conn, svc.id, svc.name, segment, user.name, now)
        scopes = _bump_all(conn, rt, svc)
        details = {"id": segment_id, "before": None, "after": dump(segment)}
        audit.append(conn, at=now, actor=user.name, action="segment.created", subject=subject, details=details)
        result = _describe(conn, segment_store.get_segment(conn, segment_id))
    notify(scopes)
    return result


def update_segment(
    rt: Runtime, user: User, notify: Notify, name: str, service: str | None, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change the name, description or constraints; fields left out stay. Every flag whose strategy
    names it serves by the new constraints at once."""
    with writing(rt, user) as conn:
        record, svc = _find(conn, name, service)
        subject = f"{svc.name}/segment:{record.name}"
        check(policy.may_define(user.name, user.roles), "segment.update", subject)
        before = dump(record.segment)
        after = parse(Segment, {**before, **changes}, "segment")
        envs = environments(rt, svc)
        for _key, env, enabled in _uses(conn, svc.id, record.id):
            if enabled and env in envs:
                check(policy.may_change(user.name, user.roles, env, envs[env]), "segment.update", subject)
        now = rt.clock.now()
        segment_store.update_segment(conn, record, after, user.name, now)
        scopes = _bump_all(conn, rt, svc)
        details = {"id": record.id, "before": before, "after": dump(after)}
        audit.append(conn, at=now, actor=user.name, action="segment.updated", subject=subject, details=details)
        result = _describe(conn, segment_store.get_segment(conn, record.id))
    notify(scopes)
    return result


def delete_segment(rt: Runtime, user: User, notify: Notify, name: str, service: str | None) -> dict[str, Any]:
    """Delete a segment no strategy names (as Unleash, which refuses to delete a segment in use)."""
    with writing(rt, user) as conn:
        record, svc = _find(conn, name, service)
        subject = f"{svc.name}/segment:{record.name}"
        check(policy.may_define(user.name, user.roles), "segment.delete", subject)
        used = _uses(conn, svc.id, record.id)
        if used:
            where = ", ".join(f"{key} in {env}" for key, env, _ in used)
            raise Conflict(
                f"segment {record.name!r} is used by {where}",
                fix="remove it from those strategies (conveyor flags set ... --strategies) first",
            )
        now = rt.clock.now()
        segment_store.delete_segment(conn, record.id)
        scopes = _bump_all(conn, rt, svc)
        details = {"id": record.id, "before": dump(record.segment), "after": None}
        audit.append(conn, at=now, actor=user.name, action="segment.deleted", subject=subject, details=details)
    notify(scopes)
    return {"id": record.id, "name": record.name, "service": svc.name, "deleted": True}

"""``conveyor flags import unleash FILE``: an Unleash ``/api/client/features`` export (features and
segments of one Unleash environment) made into the flags and segments of one service environment.

The export is translated by ``conveyor_flags.unleash.ruleset_from_unleash`` (the translation the
Unleash client specification runs through), then planned against what the service has: segments
by name, flags by key, each to create, update or leave. Applying the plan goes through the same
operations as the API (flags/service.py, flags/segments.py): each change permission-checked,
audited and versioned. Everything is validated before anything is written, so an export with one
bad feature changes nothing.

A feature without variants becomes a boolean flag; one with variants (on the feature or in a
strategy) a json flag whose variant values are the Unleash payloads (``{"type": ..., "value": ...}``),
so ``getVariant`` and OFREP answer the same payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor_flags.unleash import ruleset_from_unleash
from sqlalchemy import Connection

from conveyor.audit import log as audit
from conveyor.auth.users import User
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.flags import policy, segment_store, segments, store
from conveyor.flags import service as ops
from conveyor.flags.model import Definition, EnvState, Segment, check_key, dump, parse
from conveyor.runtime import Runtime
from conveyor.store import services as service_store


@dataclass
class Change:
    kind: str  # segment | flag | state
    name: str
    action: str  # create | update | unchanged
    fields: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "action": self.action, "fields": self.fields, "notes": self.notes}


@dataclass
class _Flag:
    key: str
    definition: Definition
    strategies: list[dict[str, Any]]  # segment ids still Unleash's
    enabled: bool


def _has_variants(entry: dict[str, Any]) -> bool:
    return bool(entry.get("variants")) or any(s.get("variants") for s in entry.get("strategies") or [])


def _flag(key: str, entry: dict[str, Any]) -> _Flag:
    check_key(key)
    json_flag = _has_variants(entry)
    definition = parse(
        Definition,
        {
            "type": "json" if json_flag else "boolean",
            "default": {} if json_flag else False,
            "on_value": {} if json_flag else True,
            "variants": entry.get("variants") or [],
            "variant_stickiness": entry.get("variant_stickiness") or "default",
            "dependencies": entry.get("dependencies") or [],
        },
        f"feature {key!r}",
    )
    strategies = [{k: v for k, v in s.items() if v is not None} for s in entry.get("strategies") or []]
    for i, strategy in enumerate(strategies, 1):
        checked = {**strategy, "segments": [0 for _ in strategy.get("segments") or []]}
        parse(EnvState, {"strategies": [checked]}, f"feature {key!r} strategy {i}")
    return _Flag(key, definition, strategies, bool(entry.get("enabled")))


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in after if before.get(k) != after[k])


@dataclass
class Plan:
    service: str
    environment: str
    segments: dict[str, Segment]  # by Unleash id
    flags: list[_Flag]  # parents before children
    changes: list[Change]


def _plan(conn: Connection, rt: Runtime, service: str | None, environment: str, export: Any) -> Plan:
    if not isinstance(export, dict) or not isinstance(export.get("features", []), list):
        raise InvalidInput(
            "the file is not an Unleash features export",
            fix='give the JSON of GET /api/client/features: {"version": 2, "features": [...], "segments": [...]}',
        )
    svc = service_store.pick_service(conn, service)
    rt.spec_of(svc.config_text).environment(environment)  # unknown: 404 naming the defined ones
    try:
        document = ruleset_from_unleash(export, environment)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"the Unleash export cannot be read: {exc!r}", fix="export it again from Unleash") from None
    changes: list[Change] = []
    problems: list[str] = []
    wanted_segments: dict[str, Segment] = {}
    existing_segments = {s.name: s for s in segment_store.list_segments(conn, svc.id)}
    for unleash_id, raw in document["segments"].items():
        try:
            data = {"name": raw["name"], "constraints": raw["constraints"]}
            segment = parse(Segment, data, f"segment {raw['name']!r}")
        except ConveyorError as exc:
            problems.append(str(exc))
            continue
        wanted_segments[unleash_id] = segment
        old = existing_segments.get(segment.name)
        after = dump(segment)
        if old is None:
            changes.append(Change("segment", segment.name, "create", ["constraints"]))
        else:
            fields = _diff(dump(old.segment), {"constraints": after["constraints"]})
            changes.append(Change("segment", segment.name, "update" if fields else "unchanged", fields))
    flags: list[_Flag] = []
    for key, entry in document["flags"].items():
        try:
            flags.append(_flag(key, entry))
        except ConveyorError as exc:
            problems.append(str(exc))
    problems += _dependency_problems(conn, svc.id, flags)
    if problems:
        raise InvalidInput(
            f"{len(problems)} part(s) of the export cannot be imported: " + "; ".join(problems),
            fix="fix them in Unleash or in the file; nothing was changed",
        )
    flags.sort(key=lambda f: bool(f.definition.dependencies))  # parents (one level deep) first
    existing = {f.key: f for f in store.list_flags(conn, svc.id)}
    states = store.get_states(conn, [f.id for f in existing.values()])
    by_name = {s.name: s.id for s in existing_segments.values()}
    for flag in flags:
        old_flag = existing.get(flag.key)
        new_definition = dump(flag.definition)
        if old_flag is None:
            changes.append(Change("flag", flag.key, "create", sorted(k for k in new_definition if k != "description")))
            old_state: dict[str, Any] = dump(EnvState())
        else:
            old_definition = {k: v for k, v in dump(old_flag.definition).items() if k != "description"}
            fields = _diff(old_definition, {k: v for k, v in new_definition.items() if k != "description"})
            changes.append(Change("flag", flag.key, "update" if fields else "unchanged", fields))
            found = states.get((old_flag.id, environment))
            old_state = dump(found.state if found else EnvState())
        state, notes = _state(flag, wanted_segments, by_name)
        fields = _diff(old_state, dump(state))
        changes.append(Change("state", f"{flag.key}@{environment}", "update" if fields else "unchanged", fields, notes))
    return Plan(svc.name, environment, wanted_segments, flags, changes)


def _dependency_problems(conn: Connection, service_id: int, flags: list[_Flag]) -> list[str]:
    """What service.create_flag / update_flag would refuse about dependencies once the export is
    in, for the service's flags and the export's together: a parent is another flag of the service,
    with no dependencies of its own (one level deep, as in Unleash)."""
    parents = {f.key: [d.flag for d in f.definition.dependencies] for f in store.list_flags(conn, service_id)}
    parents.update({f.key: [d.flag for d in f.definition.dependencies] for f in flags})
    problems = []
    for key, named in sorted(parents.items()):
        for parent in named:
            if parent not in parents or parent == key:
                problems.append(f"feature {key!r} depends on {parent!r}, which is neither in the export nor a flag")
            elif parents[parent]:
                problems.append(
                    f"feature {key!r} depends on {parent!r}, which depends on other features itself "
                    "(dependencies are one level deep)"
                )
    return problems


def _state(flag: _Flag, wanted: dict[str, Segment], ids: dict[str, int]) -> tuple[EnvState, list[str]]:
    """The flag's state with Unleash segment ids made Conveyor's (by segment name; one not made yet,
    in a dry run, is 0), and notes on what had to be expressed differently."""
    strategies, notes = [], []
    for i, strategy in enumerate(flag.strategies, 1):
        named = [str(s) for s in strategy.get("segments") or []]
        missing = [s for s in named if s not in wanted]
        if missing:  # Unleash: a strategy naming a segment the client does not have never matches
            notes.append(
                f"strategy {i} names segment {', '.join(missing)}, which the export does not have: it never "
                "matches (as in Unleash), so it is imported with rollout 0"
            )
            strategies.append({**strategy, "segments": [], "rollout": 0})
        else:
            strategies.append({**strategy, "segments": [ids.get(wanted[s].name, 0) for s in named]})
    return EnvState.model_validate({"enabled": flag.enabled, "strategies": strategies}), notes


def import_unleash(
    rt: Runtime,
    user: User,
    notify: ops.Notify,
    service: str | None,
    environment: str,
    export: Any,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Plan, and unless ``dry_run`` apply, the import; returns the plan's changes."""
    with rt.db.read() as conn:
        plan = _plan(conn, rt, service, environment, export)
    result = {
        "service": plan.service,
        "environment": environment,
        "dry_run": dry_run,
        "changes": [c.as_json() for c in plan.changes],
    }
    if dry_run:
        return result
    with ops.writing(rt, user) as conn:  # refused before anything is written, and audited
        svc = service_store.get_service(conn, plan.service)
        subject = f"{svc.name}/import:unleash"
        ops.check(policy.may_define(user.name, user.roles), "flag.import", subject)
        env_spec = rt.spec_of(svc.config_text).environment(environment)
        ops.check(policy.may_change(user.name, user.roles, environment, env_spec), "flag.import", subject)
    todo = {(c.kind, c.name): c for c in plan.changes}
    for segment in plan.segments.values():
        change = todo[("segment", segment.name)]
        if change.action == "create":
            segments.create_segment(rt, user, notify, plan.service, dump(segment))
        elif change.action == "update":
            constraints = {"constraints": dump(segment)["constraints"]}
            segments.update_segment(rt, user, notify, segment.name, plan.service, constraints)
    with rt.db.read() as conn:
        ids = {s.name: s.id for s in segment_store.list_segments(conn, svc.id)}
    for flag in plan.flags:
        change = todo[("flag", flag.key)]
        definition = {k: v for k, v in dump(flag.definition).items() if k != "description"}
        if change.action == "create":
            ops.create_flag(rt, user, notify, flag.key, plan.service, definition)
        elif change.action == "update":
            ops.update_flag(rt, user, notify, flag.key, plan.service, definition)
        state = _state(flag, plan.segments, ids)[0]
        if todo[("state", f"{flag.key}@{environment}")].action != "unchanged":
            data = dump(state)
            ops.set_state(rt, user, notify, (flag.key, plan.service, environment), data["enabled"], data["strategies"])
    with rt.db.begin() as conn:
        counts = {a: sum(1 for c in plan.changes if c.action == a) for a in ("create", "update", "unchanged")}
        audit.append(
            conn,
            at=rt.clock.now(),
            actor=user.name,
            action="flag.imported",
            subject=f"{plan.service}/{environment}",
            details={"from": "unleash", **counts},
        )
    return result

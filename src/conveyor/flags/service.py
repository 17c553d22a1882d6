"""Flag operations: check who may, change the database, audit with before/after, bump the
environment's ruleset version, all in one transaction; then tell the stream (``notify``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.policy import Decision
from conveyor.auth.users import User
from conveyor.errors import Conflict, InvalidInput
from conveyor.flags import policy, segment_store, store
from conveyor.flags.model import Definition, EnvState, Strategy, check_key, check_strategies, dump, parse, with_rollout
from conveyor.flags.ruleset import Scope, check_evaluable
from conveyor.flags.store import FlagRecord
from conveyor.runtime import Runtime
from conveyor.spec import EnvironmentSpec
from conveyor.store import services as service_store
from conveyor.store.records import ServiceRecord

Notify = Callable[[list[Scope]], None]
Allowed = Callable[[str, tuple[str, ...], str, EnvironmentSpec], Decision]


class _Refused(Exception):
    def __init__(self, action: str, subject: str, reason: str) -> None:
        super().__init__(reason)
        self.action, self.subject, self.reason = action, subject, reason


@contextmanager
def writing(rt: Runtime, user: User) -> Iterator[Connection]:
    """A write transaction; a refusal inside it rolls it back, then is audited on its own."""
    try:
        with rt.db.begin() as conn:
            yield conn
    except _Refused as r:
        raise refuse(rt, user.name, r.action, r.subject, r.reason) from None


def check(decision: Decision, action: str, subject: str) -> None:
    if not decision.allowed:
        raise _Refused(action, subject, decision.reason)


def environments(rt: Runtime, service: ServiceRecord) -> dict[str, EnvironmentSpec]:
    return dict(rt.spec_of(service.config_text).environments)


def _scopes(rt: Runtime, service: ServiceRecord) -> list[Scope]:
    return [Scope(service.id, service.name, env) for env in environments(rt, service)]


def _service_id(conn: Connection, service: str | None) -> int | None:
    return service_store.get_service(conn, service).id if service else None


def find(conn: Connection, key: str, service: str | None, lock: bool = False) -> tuple[FlagRecord, ServiceRecord]:
    flag = store.resolve_flag(conn, key, _service_id(conn, service), service)
    if lock:
        flag = store.get_flag(conn, flag.id, for_update=True)
    return flag, service_store.get_service_by_id(conn, flag.service_id)


def _bump_all(conn: Connection, rt: Runtime, service: ServiceRecord) -> list[Scope]:
    scopes = _scopes(rt, service)
    for scope in scopes:
        store.bump_version(conn, service.id, scope.environment, rt.clock.now())
    return scopes


def detail(rt: Runtime, key: str, service: str | None) -> dict[str, Any]:
    with rt.db.read() as conn:
        flag, svc = find(conn, key, service)
        return describe(conn, rt, flag, svc)


def describe(conn: Connection, rt: Runtime, flag: FlagRecord, svc: ServiceRecord) -> dict[str, Any]:
    """The flag with its state in every environment of its service (untouched ones are off)."""
    states = store.get_states(conn, [flag.id])
    envs = []
    for env in environments(rt, svc):
        state = states.get((flag.id, env), store.StateRecord(env, EnvState()))
        envs.append({**state.as_json(), "version": store.ruleset_version(conn, svc.id, env)})
    return {**flag.as_json(), "environments": envs}


def list_flags(rt: Runtime, service: str | None) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        flags = store.list_flags(conn, _service_id(conn, service))
        states = store.get_states(conn, [f.id for f in flags])
    return [
        {
            **f.as_json(),
            "enabled_in": sorted(env for (fid, env), s in states.items() if fid == f.id and s.state.enabled),
        }
        for f in flags
    ]


def create_flag(
    rt: Runtime, user: User, notify: Notify, key: str, service: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    check_key(key)
    definition = parse(Definition, body, "flag")
    with writing(rt, user) as conn:
        svc = service_store.pick_service(conn, service)
        subject = f"{svc.name}/{key}"
        check(policy.may_define(user.name, user.roles), "flag.create", subject)
        check_evaluable(key, svc.name, definition, EnvState())
        _check_dependencies(conn, svc.id, key, definition)
        now = rt.clock.now()
        flag_id = store.insert_flag(conn, svc.id, svc.name, key, definition, user.name, now)
        scopes = _bump_all(conn, rt, svc)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="flag.created",
            subject=subject,
            details={"before": None, "after": dump(definition)},
        )
        result = describe(conn, rt, store.get_flag(conn, flag_id), svc)
    notify(scopes)
    return result


def _check_dependencies(conn: Connection, service_id: int, key: str, definition: Definition) -> None:
    """Parents are flags of the same service, one level deep as in Unleash: a parent has no
    parents, and a flag that is a parent gets none."""
    if not definition.dependencies:
        return
    others = {f.key: f for f in store.list_flags(conn, service_id) if f.key != key}
    for dep in definition.dependencies:
        parent = others.get(dep.flag)
        if parent is None:
            raise InvalidInput(
                f"flag {key!r} depends on {dep.flag!r}, which is not another flag of this service",
                fix="name an existing flag of the same service as the parent",
            )
        if parent.definition.dependencies:
            raise InvalidInput(
                f"flag {key!r} cannot depend on {dep.flag!r}: it depends on other flags itself",
                fix="depend on a flag without dependencies (one level, as in Unleash)",
            )
    children = sorted(f.key for f in others.values() if any(d.flag == key for d in f.definition.dependencies))
    if children:
        raise InvalidInput(
            f"flag {key!r} is a parent of {', '.join(children)} and so cannot have dependencies",
            fix="dependencies are one level deep, as in Unleash",
        )


def update_flag(
    rt: Runtime, user: User, notify: Notify, key: str, service: str | None, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change the type, default, on value, variants or description. Where the flag is on, what
    it serves changes too: that needs the right to change flags in those environments."""
    with writing(rt, user) as conn:
        flag, svc = find(conn, key, service, lock=True)
        subject = f"{svc.name}/{flag.key}"
        check(policy.may_define(user.name, user.roles), "flag.update", subject)
        before = dump(flag.definition)
        after = parse(Definition, {**before, **changes}, "flag")
        states = store.get_states(conn, [flag.id])
        envs = environments(rt, svc)
        segments = segment_store.ruleset_segments(conn, svc.id)
        for (_, env), state in sorted(states.items()):
            if state.state.enabled and env in envs:
                check(policy.may_change(user.name, user.roles, env, envs[env]), "flag.update", subject)
            check_strategies(after.type, state.state.strategies)
            check_evaluable(flag.key, svc.name, after, state.state, segments)
        check_evaluable(flag.key, svc.name, after, EnvState())
        _check_dependencies(conn, svc.id, flag.key, after)
        now = rt.clock.now()
        store.update_flag(conn, flag.id, after, user.name, now)
        scopes = _bump_all(conn, rt, svc)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="flag.updated",
            subject=subject,
            details={"before": before, "after": dump(after)},
        )
        result = describe(conn, rt, store.get_flag(conn, flag.id), svc)
    notify(scopes)
    return result


def delete_flag(rt: Runtime, user: User, notify: Notify, key: str, service: str | None) -> dict[str, Any]:
    """Delete a flag that is off everywhere (a flag being served is turned off first, on purpose)."""
    with writing(rt, user) as conn:
        flag, svc = find(conn, key, service, lock=True)
        subject = f"{svc.name}/{flag.key}"
        check(policy.may_define(user.name, user.roles), "flag.delete", subject)
        states = store.get_states(conn, [flag.id])
        on = sorted(env for (_, env), s in states.items() if s.state.enabled)
        if on:
            raise Conflict(
                f"flag {subject} is on in {', '.join(on)}; turn it off there before deleting it",
                fix=f"conveyor flags off {flag.key} --env {on[0]}",
            )
        before = {**dump(flag.definition), "environments": {env: dump(s.state) for (_, env), s in states.items()}}
        now = rt.clock.now()
        store.delete_flag(conn, flag.id)
        scopes = _bump_all(conn, rt, svc)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="flag.deleted",
            subject=subject,
            details={"before": before, "after": None},
        )
    notify(scopes)
    return {"key": flag.key, "service": svc.name, "deleted": True}


def change_state(
    rt: Runtime,
    user: User,
    notify: Notify,
    ref: tuple[str, str | None, str],
    action: str,
    change: Callable[[EnvState], EnvState],
    allowed: Allowed = policy.may_change,
    note: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Change a flag's state in one environment (``ref`` is key, service, environment)."""
    key, service, environment = ref
    with writing(rt, user) as conn:
        flag, svc = find(conn, key, service, lock=True)
        subject = f"{svc.name}/{flag.key}"
        env_spec = rt.spec_of(svc.config_text).environment(environment)  # unknown: 404 naming the defined ones
        check(allowed(user.name, user.roles, environment, env_spec), action, subject)
        before = store.get_state(conn, flag.id, environment).state
        after = change(before)
        check_strategies(flag.type, after.strategies)
        check_evaluable(flag.key, svc.name, flag.definition, after, segment_store.ruleset_segments(conn, svc.id))
        now = rt.clock.now()
        store.put_state(conn, flag.id, environment, after, user.name, now)
        version = store.bump_version(conn, svc.id, environment, now)
        details = {"environment": environment, "before": dump(before), "after": dump(after), **(note or {})}
        audit.append(conn, at=now, actor=user.name, action=action, subject=subject, details=details)
        state = store.get_state(conn, flag.id, environment)
    notify([Scope(svc.id, svc.name, environment)])
    return {"key": flag.key, "service": svc.name, **state.as_json(), "version": version}


def set_state(
    rt: Runtime,
    user: User,
    notify: Notify,
    ref: tuple[str, str | None, str],
    enabled: bool | None,
    strategies: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """Set ``enabled`` and/or ``strategies``; None keeps the current value (in the same
    transaction, so setting strategies never undoes a kill made meanwhile)."""
    parsed = None if strategies is None else [parse(Strategy, s, f"strategy {i}") for i, s in enumerate(strategies, 1)]

    def change(state: EnvState) -> EnvState:
        return EnvState(
            enabled=state.enabled if enabled is None else enabled,
            strategies=state.strategies if parsed is None else parsed,
        )

    return change_state(rt, user, notify, ref, "flag.state_set", change)


SWITCHES = {"on": ("flag.enabled", True), "off": ("flag.disabled", False), "kill": ("flag.killed", False)}


def switch(
    rt: Runtime, user: User, notify: Notify, ref: tuple[str, str | None, str], how: str, reason: str | None = None
) -> dict[str, Any]:
    """on, off, or kill: off, which managers may do as well as the environment's deployers."""
    action, on = SWITCHES[how]

    def change(state: EnvState) -> EnvState:
        return state.model_copy(update={"enabled": on})

    if how == "kill":
        return change_state(rt, user, notify, ref, action, change, policy.may_kill, {"reason": reason})
    return change_state(rt, user, notify, ref, action, change)


def rollout(rt: Runtime, user: User, notify: Notify, ref: tuple[str, str | None, str], percent: int) -> dict[str, Any]:
    """Set the rollout percentage (model.with_rollout); on/off is left as it is."""

    def change(state: EnvState) -> EnvState:
        return state.model_copy(update={"strategies": with_rollout(state.strategies, percent)})

    return change_state(rt, user, notify, ref, "flag.rollout", change, note={"percent": percent})

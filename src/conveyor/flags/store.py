"""Queries for flags, their per-environment state and the ruleset version counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.domain.clock import as_utc
from conveyor.errors import Conflict, InvalidInput, NotFound
from conveyor.flags.model import Definition, EnvState, dump
from conveyor.store.tables import flag_environments, flag_rulesets, flags, services


@dataclass(frozen=True)
class FlagRecord:
    id: int
    service_id: int
    service: str
    key: str
    definition: Definition
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime

    @property
    def type(self) -> str:
        return self.definition.type

    @classmethod
    def of(cls, row: Row[Any]) -> FlagRecord:
        definition = Definition.model_validate(
            {
                "type": row.type,
                "default": row.default_value,
                "on_value": row.on_value,
                "variants": row.variants,
                "variant_stickiness": row.variant_stickiness,
                "dependencies": row.dependencies,
                "description": row.description,
            }
        )
        return cls(
            row.id,
            row.service_id,
            row.service,
            row.key,
            definition,
            row.created_by,
            as_utc(row.created_at),
            row.updated_by,
            as_utc(row.updated_at),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "service": self.service,
            **dump(self.definition),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class StateRecord:
    environment: str
    state: EnvState
    updated_by: str | None = None
    updated_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            **dump(self.state),
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


_FLAG_COLUMNS = (flags, services.c.name.label("service"))


def _definition_values(definition: Definition) -> dict[str, Any]:
    data = dump(definition)
    return {
        "type": data["type"],
        "default_value": data["default"],
        "on_value": data["on_value"],
        "variants": data["variants"],
        "variant_stickiness": data["variant_stickiness"],
        "dependencies": data["dependencies"],
        "description": data["description"],
    }


def insert_flag(
    conn: Connection, service_id: int, service: str, key: str, definition: Definition, actor: str, now: datetime
) -> int:
    try:
        with conn.begin_nested():
            result = conn.execute(
                flags.insert().values(
                    service_id=service_id,
                    key=key,
                    created_by=actor,
                    created_at=now,
                    updated_by=actor,
                    updated_at=now,
                    **_definition_values(definition),
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"service {service!r} already has a flag {key!r}", fix="pick another key") from exc
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def find_flags(conn: Connection, key: str, service_id: int | None = None) -> list[FlagRecord]:
    query = select(*_FLAG_COLUMNS).join(services, services.c.id == flags.c.service_id).where(flags.c.key == key)
    if service_id is not None:
        query = query.where(flags.c.service_id == service_id)
    return [FlagRecord.of(r) for r in conn.execute(query.order_by(services.c.name))]


def resolve_flag(conn: Connection, key: str, service_id: int | None, service: str | None) -> FlagRecord:
    """The flag ``key`` of the service, or of the only service that has such a flag."""
    found = find_flags(conn, key, service_id)
    if not found:
        where = f" in service {service!r}" if service else ""
        raise NotFound(f"no flag {key!r}{where}", fix="list them with `conveyor flags list`")
    if len(found) > 1:
        names = ", ".join(f.service for f in found)
        raise InvalidInput(f"more than one service has a flag {key!r} ({names}); which one?", fix="pass --service")
    return found[0]


def get_flag(conn: Connection, flag_id: int, for_update: bool = False) -> FlagRecord:
    query = select(*_FLAG_COLUMNS).join(services, services.c.id == flags.c.service_id).where(flags.c.id == flag_id)
    if for_update:
        query = query.with_for_update(of=flags)
    row = conn.execute(query).first()
    if row is None:
        raise NotFound("the flag was deleted meanwhile", fix="list them with `conveyor flags list`")
    return FlagRecord.of(row)


def list_flags(conn: Connection, service_id: int | None = None) -> list[FlagRecord]:
    query = select(*_FLAG_COLUMNS).join(services, services.c.id == flags.c.service_id)
    if service_id is not None:
        query = query.where(flags.c.service_id == service_id)
    return [FlagRecord.of(r) for r in conn.execute(query.order_by(services.c.name, flags.c.key))]


def update_flag(conn: Connection, flag_id: int, definition: Definition, actor: str, now: datetime) -> None:
    conn.execute(
        update(flags)
        .where(flags.c.id == flag_id)
        .values(updated_by=actor, updated_at=now, **_definition_values(definition))
    )


def delete_flag(conn: Connection, flag_id: int) -> None:
    conn.execute(delete(flag_environments).where(flag_environments.c.flag_id == flag_id))
    conn.execute(delete(flags).where(flags.c.id == flag_id))


def get_states(conn: Connection, flag_ids: list[int]) -> dict[tuple[int, str], StateRecord]:
    """Every stored state of the flags, by (flag id, environment)."""
    if not flag_ids:
        return {}
    rows = conn.execute(select(flag_environments).where(flag_environments.c.flag_id.in_(flag_ids)))
    return {
        (r.flag_id, r.environment): StateRecord(
            r.environment,
            EnvState.model_validate({"enabled": r.enabled, "strategies": r.strategies}),
            r.updated_by,
            as_utc(r.updated_at),
        )
        for r in rows
    }


def get_state(conn: Connection, flag_id: int, environment: str) -> StateRecord:
    """The flag's state in the environment; a flag never touched there is off with no strategies."""
    return get_states(conn, [flag_id]).get((flag_id, environment), StateRecord(environment, EnvState()))


def put_state(conn: Connection, flag_id: int, environment: str, state: EnvState, actor: str, now: datetime) -> None:
    data = dump(state)
    values = {"enabled": data["enabled"], "strategies": data["strategies"], "updated_by": actor, "updated_at": now}
    where = (flag_environments.c.flag_id == flag_id, flag_environments.c.environment == environment)
    if conn.execute(update(flag_environments).where(*where).values(**values)).rowcount == 0:
        conn.execute(flag_environments.insert().values(flag_id=flag_id, environment=environment, **values))


def ruleset_version(conn: Connection, service_id: int, environment: str) -> int:
    version = conn.execute(
        select(flag_rulesets.c.version).where(
            flag_rulesets.c.service_id == service_id, flag_rulesets.c.environment == environment
        )
    ).scalar()
    return int(version or 0)


def bump_version(conn: Connection, service_id: int, environment: str, now: datetime) -> int:
    """Increase the environment's ruleset version in the caller's transaction; return the new one.
    The row lock the UPDATE takes orders concurrent writers on PostgreSQL."""
    where = (flag_rulesets.c.service_id == service_id, flag_rulesets.c.environment == environment)
    bump = update(flag_rulesets).where(*where).values(version=flag_rulesets.c.version + 1, updated_at=now)
    if conn.execute(bump).rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(
                    flag_rulesets.insert().values(
                        service_id=service_id, environment=environment, version=1, updated_at=now
                    )
                )
            return 1
        except IntegrityError:  # another writer created it first
            conn.execute(bump)
    return ruleset_version(conn, service_id, environment)

"""SDK key operations: create (shown once), list, revoke; checked and audited like flag changes."""

from __future__ import annotations

from typing import Any

from conveyor.audit import log as audit
from conveyor.auth.users import User
from conveyor.flags import keys, policy
from conveyor.flags.service import check, writing
from conveyor.runtime import Runtime
from conveyor.store import services as service_store


def create_key(rt: Runtime, user: User, service: str | None, environment: str, name: str | None) -> dict[str, Any]:
    with writing(rt, user) as conn:
        svc = service_store.pick_service(conn, service)
        env_spec = rt.spec_of(svc.config_text).environment(environment)
        subject = f"{svc.name}/{environment}"
        check(policy.may_manage_keys(user.name, user.roles, environment, env_spec), "flag.sdk_key_create", subject)
        now = rt.clock.now()
        key, key_id = keys.create_key(conn, svc.id, environment, user.name, now, name)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="flag.sdk_key_created",
            subject=subject,
            details={"id": key_id, "prefix": key[:12], "name": name},
        )
        created = keys.get_key(conn, key_id)
    return {**created.as_json(), "key": key}


def list_keys(rt: Runtime, service: str | None, environment: str | None) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        service_id = service_store.get_service(conn, service).id if service else None
        return [k.as_json() for k in keys.list_keys(conn, service_id, environment)]


def revoke_key(rt: Runtime, user: User, key_id: int) -> dict[str, Any]:
    with writing(rt, user) as conn:
        found = keys.get_key(conn, key_id)
        svc = service_store.get_service_by_id(conn, found.service_id)
        subject = f"{svc.name}/{found.environment}"
        env_spec = rt.spec_of(svc.config_text).environments.get(found.environment)
        if env_spec is not None:  # an environment gone from conveyor.yml: anyone may clean up its keys
            decision = policy.may_manage_keys(user.name, user.roles, found.environment, env_spec)
            check(decision, "flag.sdk_key_revoke", subject)
        now = rt.clock.now()
        revoked = keys.revoke_key(conn, key_id, user.name, now)
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="flag.sdk_key_revoked",
            subject=subject,
            details={"id": key_id, "prefix": found.prefix},
        )
    keys.CACHE.revoked()  # committed: no request of this process accepts the key from now on
    return revoked.as_json()

"""Flag operations: permissions, audit with before/after, version bumps and notifications, and the
refusals (which change nothing and are audited)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tests.flags.conftest import FlagWorld

from conveyor.errors import Conflict, Forbidden, InvalidInput, NotFound
from conveyor.flags import access, service
from conveyor.store.tables import audit_log


def audit(fw: FlagWorld) -> list[Any]:
    with fw.db.read() as conn:
        return list(conn.execute(select(audit_log).order_by(audit_log.c.id)))


def create(fw: FlagWorld, key: str = "new_checkout", user: str = "eve", **body: Any) -> dict[str, Any]:
    return service.create_flag(fw.rt, fw.users[user], fw.notes, key, "shop", body)


def state(fw: FlagWorld, user: str, how: str, env: str = "production", key: str = "new_checkout") -> dict[str, Any]:
    return service.switch(fw.rt, fw.users[user], fw.notes, (key, None, env), how)


def versions(detail: dict[str, Any]) -> dict[str, int]:
    return {e["environment"]: e["version"] for e in detail["environments"]}


def test_create_is_off_everywhere_bumps_every_environment_and_is_audited(fw: FlagWorld) -> None:
    flag = create(fw, description="the new checkout")
    assert [e["enabled"] for e in flag["environments"]] == [False, False, False]
    assert versions(flag) == {"development": 1, "staging": 1, "production": 1}
    assert flag["created_by"] == "eve" and flag["description"] == "the new checkout"
    scopes = fw.notes.calls[-1]
    assert {s.environment for s in scopes} == {"development", "staging", "production"}
    assert all(s.service == "shop" for s in scopes)
    entry = audit(fw)[-1]
    assert (entry.action, entry.actor, entry.subject) == ("flag.created", "eve", "shop/new_checkout")
    assert entry.details["before"] is None and entry.details["after"]["type"] == "boolean"
    with pytest.raises(Conflict):
        create(fw)


def test_on_off_kill_and_rollout_audit_before_and_after(fw: FlagWorld) -> None:
    create(fw)
    on = state(fw, "rita", "on")
    assert on["enabled"] and on["version"] == 2 and on["updated_by"] == "rita"
    assert [(s.service, s.environment) for s in fw.notes.calls[-1]] == [("shop", "production")]
    rolled = service.rollout(fw.rt, fw.users["rita"], fw.notes, ("new_checkout", "shop", "production"), 25)
    assert rolled["enabled"] and rolled["strategies"][0]["rollout"] == 25 and rolled["version"] == 3
    killed = service.switch(fw.rt, fw.users["max"], fw.notes, ("new_checkout", None, "production"), "kill", "500s")
    assert not killed["enabled"] and killed["strategies"][0]["rollout"] == 25  # the rollout stays for next time
    entries = [e for e in audit(fw) if e.action.startswith("flag.")]
    assert [e.action for e in entries] == ["flag.created", "flag.enabled", "flag.rollout", "flag.killed"]
    kill = entries[-1]
    assert kill.actor == "max" and kill.details["reason"] == "500s" and kill.details["environment"] == "production"
    assert kill.details["before"]["enabled"] is True and kill.details["after"]["enabled"] is False
    assert entries[2].details["percent"] == 25 and entries[2].details["before"]["strategies"] == []


@pytest.mark.parametrize(
    ("user", "how", "env", "allowed"),
    [
        ("eve", "on", "staging", True),
        ("eve", "on", "production", False),
        ("rita", "on", "production", True),
        ("max", "on", "production", False),
        ("max", "kill", "production", True),
        ("eve", "kill", "production", False),
        ("eve", "kill", "staging", True),
        ("ada", "on", "staging", False),  # admin is not a deployer
        ("ada", "kill", "production", False),
    ],
)
def test_who_may_change_an_environment(fw: FlagWorld, user: str, how: str, env: str, allowed: bool) -> None:
    create(fw)
    before = len(audit(fw))
    if allowed:
        state(fw, user, how, env)
        return
    with pytest.raises(Forbidden, match=f"may not .* in {env}"):
        state(fw, user, how, env)
    entries = audit(fw)
    assert len(entries) == before + 1 and entries[-1].action == "forbidden" and entries[-1].actor == user
    with fw.rt.db.read() as conn:
        flag = service.describe(conn, fw.rt, *service.find(conn, "new_checkout", None))
    assert versions(flag)[env] == 1  # nothing changed


def test_unknown_environment_and_flag(fw: FlagWorld) -> None:
    create(fw)
    with pytest.raises(NotFound, match=r"no environment 'prod'.*development, production, staging"):
        state(fw, "rita", "on", "prod")
    with pytest.raises(NotFound, match="no flag 'nope'"):
        state(fw, "rita", "on", key="nope")


def test_set_state_keeps_what_it_is_not_given(fw: FlagWorld) -> None:
    create(fw)
    ref = ("new_checkout", None, "staging")
    rules = [{"constraints": [{"attribute": "country", "operator": "IN", "values": ["SE"]}]}]
    service.set_state(fw.rt, fw.users["eve"], fw.notes, ref, True, rules)
    state(fw, "eve", "kill", "staging")
    after = service.set_state(fw.rt, fw.users["eve"], fw.notes, ref, None, [*rules, {"rollout": 10}])
    assert after["enabled"] is False and len(after["strategies"]) == 2  # new rules do not undo the kill
    with pytest.raises(InvalidInput, match="strategy 1"):
        service.set_state(fw.rt, fw.users["eve"], fw.notes, ref, None, [{"rollout": "lots"}])
    with pytest.raises(InvalidInput, match="strategy 1 value"):
        service.set_state(fw.rt, fw.users["eve"], fw.notes, ref, None, [{"value": "yes"}])


def test_update_checks_values_against_every_environment_and_who_serves_it(fw: FlagWorld) -> None:
    create(fw, "colour", type="string", default="red")
    ref = ("colour", None, "production")
    service.set_state(fw.rt, fw.users["rita"], fw.notes, ref, True, [{"value": "green"}])
    with pytest.raises(Forbidden, match="production"):  # it is on in production: eve may not change it there
        service.update_flag(fw.rt, fw.users["eve"], fw.notes, "colour", None, {"default": "blue"})
    updated = service.update_flag(fw.rt, fw.users["rita"], fw.notes, "colour", None, {"default": "blue"})
    assert updated["default"] == "blue" and updated["on_value"] == "red"
    with pytest.raises(InvalidInput, match="strategy 1 value"):  # green is not a number
        service.update_flag(
            fw.rt, fw.users["rita"], fw.notes, "colour", None, {"type": "number", "default": 1, "on_value": 2}
        )
    entry = audit(fw)[-1]
    assert entry.action == "flag.updated" and entry.details["before"]["default"] == "red"
    assert entry.details["after"]["default"] == "blue"


def test_delete_only_when_off_everywhere(fw: FlagWorld) -> None:
    create(fw)
    state(fw, "eve", "on", "staging")
    with pytest.raises(Conflict, match="on in staging"):
        service.delete_flag(fw.rt, fw.users["eve"], fw.notes, "new_checkout", None)
    state(fw, "eve", "off", "staging")
    assert service.delete_flag(fw.rt, fw.users["eve"], fw.notes, "new_checkout", "shop")["deleted"]
    entry = audit(fw)[-1]
    assert entry.action == "flag.deleted" and entry.details["after"] is None
    assert entry.details["before"]["environments"]["staging"]["enabled"] is False
    assert service.list_flags(fw.rt, None) == []


def test_list_says_where_flags_are_on(fw: FlagWorld) -> None:
    create(fw)
    create(fw, "other")
    state(fw, "eve", "on", "staging")
    rows = {r["key"]: r for r in service.list_flags(fw.rt, "shop")}
    assert rows["new_checkout"]["enabled_in"] == ["staging"] and rows["other"]["enabled_in"] == []


def test_sdk_keys_need_deployers_or_admins_and_are_audited(fw: FlagWorld) -> None:
    made = access.create_key(fw.rt, fw.users["rita"], "shop", "production", "web")
    assert made["key"].startswith("cvf_") and made["environment"] == "production"
    assert access.create_key(fw.rt, fw.users["ada"], "shop", "production", None)["key"]
    with pytest.raises(Forbidden):
        access.create_key(fw.rt, fw.users["eve"], "shop", "production", None)
    with pytest.raises(NotFound, match="no environment"):
        access.create_key(fw.rt, fw.users["rita"], "shop", "qa", None)
    listed = access.list_keys(fw.rt, "shop", "production")
    assert len(listed) == 2 and all("key" not in k for k in listed)
    with pytest.raises(Forbidden):
        access.revoke_key(fw.rt, fw.users["eve"], made["id"])
    assert access.revoke_key(fw.rt, fw.users["rita"], made["id"])["revoked"]
    actions = [e.action for e in audit(fw)]
    assert actions.count("flag.sdk_key_created") == 2 and actions.count("flag.sdk_key_revoked") == 1
    assert made["key"] not in str([e.details for e in audit(fw)])

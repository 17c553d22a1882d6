"""Flags, states, ruleset versions and SDK keys in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.flags.conftest import FlagWorld

from conveyor.errors import Conflict, InvalidInput, NotFound, Unauthorized
from conveyor.flags import keys, store
from conveyor.flags.model import Definition, EnvState, Strategy, parse
from conveyor.flags.ruleset import RulesetCache, Scope, build_document
from conveyor.store import services as service_store

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def _service_id(fw: FlagWorld, name: str = "shop") -> int:
    with fw.db.read() as conn:
        return service_store.get_service(conn, name).id


def _add(fw: FlagWorld, key: str, service: str = "shop", **definition: object) -> int:
    with fw.db.begin() as conn:
        svc = service_store.get_service(conn, service)
        return store.insert_flag(conn, svc.id, svc.name, key, parse(Definition, definition, "flag"), "eve", NOW)


def test_flags_are_unique_per_service_and_resolved_by_key(fw: FlagWorld) -> None:
    _add(fw, "dark_mode")
    _add(fw, "dark_mode", service="billing", type="string", default="off")
    _add(fw, "only_shop")
    with pytest.raises(Conflict, match="already has a flag 'dark_mode'"):
        _add(fw, "dark_mode")
    with fw.db.read() as conn:
        assert store.resolve_flag(conn, "only_shop", None, None).service == "shop"
        with pytest.raises(InvalidInput, match=r"more than one service .* \(billing, shop\)"):
            store.resolve_flag(conn, "dark_mode", None, None)
        billing = store.resolve_flag(conn, "dark_mode", _service_id(fw, "billing"), "billing")
        assert billing.type == "string" and billing.definition.default == "off"
        with pytest.raises(NotFound, match="no flag 'nope'"):
            store.resolve_flag(conn, "nope", None, None)
        assert [f.key for f in store.list_flags(conn, _service_id(fw))] == ["dark_mode", "only_shop"]
        assert len(store.list_flags(conn)) == 3


def test_update_state_and_delete(fw: FlagWorld) -> None:
    flag_id = _add(fw, "beta", type="number", default=1)
    with fw.db.begin() as conn:
        assert store.get_state(conn, flag_id, "production").state == EnvState()  # never touched: off
        state = EnvState(enabled=True, strategies=[Strategy(rollout=30)])
        store.put_state(conn, flag_id, "production", state, "rita", NOW)
        store.put_state(conn, flag_id, "production", state.model_copy(update={"enabled": False}), "max", NOW)
        store.update_flag(conn, flag_id, parse(Definition, {"type": "number", "default": 2}, "f"), "eve", NOW)
    with fw.db.read() as conn:
        got = store.get_state(conn, flag_id, "production")
        assert not got.state.enabled and got.state.strategies[0].rollout == 30 and got.updated_by == "max"
        flag = store.get_flag(conn, flag_id)
        assert flag.definition.default == 2 and flag.updated_by == "eve" and flag.created_at == NOW
    with fw.db.begin() as conn:
        store.delete_flag(conn, flag_id)
    with fw.db.read() as conn:
        assert store.get_states(conn, [flag_id]) == {}
        with pytest.raises(NotFound):
            store.get_flag(conn, flag_id)


def test_versions_start_at_zero_and_count_every_bump(fw: FlagWorld) -> None:
    shop = _service_id(fw)
    with fw.db.begin() as conn:
        assert store.ruleset_version(conn, shop, "production") == 0
        assert [store.bump_version(conn, shop, "production", NOW) for _ in range(3)] == [1, 2, 3]
        assert store.bump_version(conn, shop, "staging", NOW) == 1
    with fw.db.read() as conn:
        assert store.ruleset_version(conn, shop, "production") == 3
        assert store.ruleset_version(conn, _service_id(fw, "billing"), "production") == 0


def test_ruleset_document_has_every_flag_of_the_service_as_the_environment_serves_it(fw: FlagWorld) -> None:
    shop = _service_id(fw)
    on_id = _add(fw, "on_flag")
    _add(fw, "untouched", type="string", default="a", variants=[{"name": "b", "value": "b", "weight": 1}])
    _add(fw, "elsewhere", service="billing")
    with fw.db.begin() as conn:
        store.put_state(conn, on_id, "production", EnvState(enabled=True), "rita", NOW)
        store.bump_version(conn, shop, "production", NOW)
        doc = build_document(conn, Scope(shop, "shop", "production"))
    assert doc["environment"] == "production" and doc["version"] == 1
    assert set(doc["flags"]) == {"on_flag", "untouched"}
    assert doc["flags"]["on_flag"] == {
        "key": "on_flag",
        "service": "shop",
        "type": "boolean",
        "enabled": True,
        "default": False,
        "on_value": True,
        "variants": [],
        "strategies": [],
    }
    assert doc["flags"]["untouched"]["enabled"] is False
    assert doc["flags"]["untouched"]["variants"] == [{"name": "b", "value": "b", "weight": 1}]


def test_the_cache_rebuilds_when_the_stored_version_moves(fw: FlagWorld) -> None:
    shop = _service_id(fw)
    scope = Scope(shop, "shop", "production")
    flag_id = _add(fw, "f")
    cache = RulesetCache()
    with fw.db.read() as conn:
        first = cache.get(conn, scope)
    with fw.db.read() as conn:
        assert cache.get(conn, scope) is first
    assert first.ruleset.evaluate("f", {}).reason == "DISABLED"
    with fw.db.begin() as conn:  # another process changes it: only the version tells
        store.put_state(conn, flag_id, "production", EnvState(enabled=True), "rita", NOW)
        store.bump_version(conn, shop, "production", NOW)
    with fw.db.read() as conn:
        second = cache.get(conn, scope)
    assert second.version == first.version + 1 and second.etag == f'"{second.version}"'
    assert second.ruleset.evaluate("f", {}).value is True
    assert '"enabled":true' in second.text and "\n" not in second.text


def test_sdk_keys_are_hashed_scoped_and_revocable(fw: FlagWorld) -> None:
    shop = _service_id(fw)
    with fw.db.begin() as conn:
        key, key_id = keys.create_key(conn, shop, "staging", "rita", NOW, "web")
    assert key.startswith("cvf_") and len(key) > 40
    with fw.db.read() as conn:
        found = keys.authenticate_key(conn, key)
        assert (found.service, found.environment, found.id, found.name) == ("shop", "staging", key_id, "web")
        assert keys.is_live(conn, key_id)
        stored = keys.list_keys(conn, shop)
        assert [k.prefix for k in stored] == [key[:12]] and key not in str(stored[0].as_json())
        for bad, message in (
            (None, "no SDK key"),
            ("", "no SDK key"),
            ("cvf_nope", "not valid"),
            ("cvy_x", "user API"),
        ):
            with pytest.raises(Unauthorized, match=message):
                keys.authenticate_key(conn, bad)
    with fw.db.begin() as conn:
        revoked = keys.revoke_key(conn, key_id, "rita", NOW)
        assert revoked.revoked_at is not None
        with pytest.raises(Conflict, match="already revoked"):
            keys.revoke_key(conn, key_id, "rita", NOW)
    with fw.db.read() as conn:
        assert not keys.is_live(conn, key_id)
        with pytest.raises(Unauthorized):
            keys.authenticate_key(conn, key)
        with pytest.raises(NotFound):
            keys.get_key(conn, 999)


def test_key_headers() -> None:
    assert keys.key_from_headers("k1", "Bearer k2") == "k1"
    assert keys.key_from_headers(None, "Bearer k2") == "k2"
    assert keys.key_from_headers(None, "bearer  k2 ") == "k2"
    assert keys.key_from_headers(" ", "Basic abc") is None
    assert keys.key_from_headers(None, None) is None

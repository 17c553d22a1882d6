"""What OFREP serves from memory (flags/keys.py KeyCache, flags/live.py Live.fresh) and how each
cache learns of a change: at once when the change is made in this process, within the time to
live when another server sharing the database makes it."""

from __future__ import annotations

import pytest
from tests.flags.conftest import FlagWorld

from conveyor.errors import Unauthorized
from conveyor.flags import access, keys, service
from conveyor.flags.live import Live
from conveyor.flags.ruleset import Scope


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_key_is_refused_by_the_next_request(fw: FlagWorld) -> None:
    made = access.create_key(fw.rt, fw.users["rita"], "shop", "production", "web")
    clock = Clock()
    cache = keys.KeyCache(ttl=1.0, clock=clock)
    with fw.db.read() as conn:
        assert cache.get(made["key"]) is None  # never asked: the database is
        assert cache.load(conn, made["key"]).id == made["id"]
        keys.CACHE.load(conn, made["key"])
    assert cache.get(made["key"]) is not None and cache.get("cvf_other") is None
    assert keys.CACHE.get(made["key"]) is not None
    access.revoke_key(fw.rt, fw.users["rita"], made["id"])  # this process: keys.CACHE forgets every key
    assert keys.CACHE.get(made["key"]) is None
    # another server revoked it: this cache still holds it until the time to live runs out
    assert cache.get(made["key"]) is not None
    clock.now += 1.01
    assert cache.get(made["key"]) is None
    with fw.db.read() as conn, pytest.raises(Unauthorized):
        cache.load(conn, made["key"])


def test_a_fill_that_started_before_a_revocation_is_not_kept(fw: FlagWorld) -> None:
    made = access.create_key(fw.rt, fw.users["rita"], "shop", "production", None)
    cache = keys.KeyCache()
    real = keys.authenticate_key

    def slow(conn: object, key: str | None) -> keys.SdkKey:
        found = real(conn, key)  # type: ignore[arg-type]
        cache.revoked()  # the revocation commits while this request reads the row
        return found

    keys.authenticate_key = slow  # type: ignore[assignment]
    try:
        with fw.db.read() as conn:
            cache.load(conn, made["key"])
    finally:
        keys.authenticate_key = real  # type: ignore[assignment]
    assert cache.get(made["key"]) is None


def test_a_change_reaches_the_next_evaluation_and_another_servers_within_the_ttl(fw: FlagWorld) -> None:
    clock = Clock()
    here, elsewhere = Live(fw.rt, clock=clock), Live(fw.rt, clock=clock)  # two servers, one database
    with fw.db.read() as conn:
        shop = conn.exec_driver_sql("SELECT id FROM services WHERE name = 'shop'").scalar_one()
    scope = Scope(shop, "shop", "staging")
    service.create_flag(fw.rt, fw.users["eve"], here.notify, "beta", "shop", {})
    first = here.snapshot(scope)
    elsewhere.snapshot(scope)
    assert here.fresh(scope) is first and elsewhere.fresh(scope) is not None
    service.switch(fw.rt, fw.users["eve"], here.notify, ("beta", "shop", "staging"), "on")
    assert here.fresh(scope) is None  # notified: the next request reads the new version
    assert here.snapshot(scope).version > first.version
    assert here.fresh(scope) is not None
    stale = elsewhere.fresh(scope)
    assert stale is not None and stale.version == first.version
    clock.now += 1.01
    assert elsewhere.fresh(scope) is None
    assert elsewhere.snapshot(scope).version > first.version

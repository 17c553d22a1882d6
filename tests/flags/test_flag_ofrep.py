"""OFREP v1 requests and answers, without a server: parsing, status codes, error codes, ETags."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conveyor.flags import ofrep
from conveyor.flags.evaluate import Ruleset, compile_ruleset

META = {"service": "shop", "environment": "production", "version": 7}


def flag(key: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "service": "shop", "type": "boolean", "enabled": True, "default": False, "on_value": True,
            "variants": [], "strategies": [], **fields}  # fmt: skip


DOCUMENT: dict[str, Any] = {
    "environment": "production",
    "version": 7,
    "flags": {
        "on": flag("on"),
        "off": flag("off", enabled=False),
        "se_only": flag(
            "se_only", strategies=[{"constraints": [{"attribute": "country", "operator": "IN", "values": ["SE"]}]}]
        ),
        "colour": flag(
            "colour",
            type="string",
            default="red",
            on_value="red",
            variants=[{"name": "blue", "value": "blue", "weight": 1}],
        ),
        "broken": flag("broken", type="number", default="x"),
        "half": flag("half", strategies=[{"rollout": 50}]),
        "ab": flag(
            "ab",
            type="string",
            default="a",
            on_value="a",
            variants=[{"name": "a", "value": "a", "weight": 1}, {"name": "b", "value": "b", "weight": 1}],
        ),
        "by_account": flag("by_account", strategies=[{"rollout": 50, "stickiness": "account"}]),
        "list": flag("list", type="json", default=[1, 2], on_value=[1, 2]),
        "limits": flag("limits", type="json", default={"max": 1}, on_value={"max": 2}),
    },
}
RULESET: Ruleset = compile_ruleset(DOCUMENT)
SERVED = ofrep.served(RULESET, DOCUMENT, META)


def one(key: str, body: Any) -> ofrep.Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ofrep.evaluate_one(SERVED, key, raw)


def test_success_bodies() -> None:
    a = one("on", {"context": {"targetingKey": "u1"}})
    assert a.status == 200
    assert a.body == {"key": "on", "value": True, "reason": "STATIC", "variant": "on", "metadata": META}
    assert one("off", {}).body == {
        "key": "off",
        "value": False,
        "reason": "DISABLED",
        "variant": "off",
        "metadata": META,
    }
    assert one("se_only", {"context": {"country": "SE"}}).body["reason"] == "TARGETING_MATCH"  # type: ignore[index]
    miss = one("se_only", {"context": {"country": "NO"}}).body
    assert miss is not None and (miss["value"], miss["reason"], miss["variant"]) == (
        False,
        "TARGETING_MATCH",
        "default",
    )
    split = one("colour", {"context": {"targetingKey": "u1"}}).body
    assert split is not None and (split["value"], split["reason"], split["variant"]) == ("blue", "SPLIT", "blue")


@pytest.mark.parametrize("raw", [b"", b"  ", b"{}", b'{"context": null}', b'{"context": {}}'])
def test_no_context_is_an_empty_context(raw: bytes) -> None:
    assert one("on", raw).status == 200


def test_targeting_key_is_the_user_id_unless_one_is_given() -> None:
    assert ofrep.parse_context(b'{"context": {"targetingKey": "u1"}}') == {"targetingKey": "u1", "user_id": "u1"}
    both = ofrep.parse_context(b'{"context": {"targetingKey": "u1", "user_id": "u2"}}')
    assert both["user_id"] == "u2"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "PARSE_ERROR"),
        (b"[1, 2]", "PARSE_ERROR"),
        (b'"context"', "PARSE_ERROR"),
        (b"\xff\xfe\x00garbage", "PARSE_ERROR"),
        (b"[" * 100_000 + b"]" * 100_000, "PARSE_ERROR"),
        (b'{"context": [1]}', "INVALID_CONTEXT"),
        (b'{"context": "user=1"}', "INVALID_CONTEXT"),
        (b'{"context": 5}', "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 5}}', "INVALID_CONTEXT"),
    ],
)
def test_bad_requests_are_400_with_an_ofrep_error_code(raw: bytes, code: str) -> None:
    a = one("on", raw)
    assert a.status == 400 and a.body is not None
    assert a.body["errorCode"] == code and a.body["key"] == "on" and a.body["errorDetails"]
    bulk = ofrep.evaluate_bulk(SERVED, raw, None)
    assert bulk.status == 400 and bulk.body is not None and bulk.body["errorCode"] == code and "key" not in bulk.body


def test_unknown_flag_is_404_flag_not_found() -> None:
    a = one("nope", {"context": {}})
    assert a.status == 404 and a.body is not None
    assert a.body["errorCode"] == "FLAG_NOT_FOUND" and a.body["key"] == "nope"


def test_a_broken_flag_is_a_400_general_error_and_spoils_nothing_else() -> None:
    a = one("broken", {})
    assert a.status == 400 and a.body is not None and a.body["errorCode"] == "GENERAL"
    bulk = ofrep.evaluate_bulk(SERVED, b"{}", None)
    assert bulk.status == 200 and bulk.body is not None
    by_key = {f["key"]: f for f in bulk.body["flags"]}
    assert list(by_key) == sorted(by_key)
    assert by_key["broken"]["errorCode"] == "GENERAL" and "value" not in by_key["broken"]
    assert by_key["on"]["value"] is True and by_key["off"]["reason"] == "DISABLED"


def test_odd_context_values_never_raise() -> None:
    odd = {"country": {"nested": [1, {"x": None}]}, "user_id": ["a"], "age": 1e308, "t": True}
    assert one("se_only", {"context": odd}).status == 200
    deep: Any = "x"
    for _ in range(500):
        deep = [deep]
    assert one("se_only", {"context": {"country": deep}}).status == 200


def test_bulk_etag_depends_on_version_and_context() -> None:
    first = ofrep.evaluate_bulk(SERVED, b'{"context": {"targetingKey": "u1"}}', None)
    tag = first.headers["ETag"]
    assert first.status == 200 and tag.startswith('"7-')
    again = ofrep.evaluate_bulk(SERVED, b'{"context": {"targetingKey": "u1"}}', tag)
    assert again.status == 304 and again.body is None and again.headers["ETag"] == tag
    other = ofrep.evaluate_bulk(SERVED, b'{"context": {"targetingKey": "u2"}}', tag)
    assert other.status == 200
    assert ofrep.matches(f'W/{tag}, "x"', tag) and ofrep.matches("*", tag) and ofrep.matches(tag.strip('"'), tag)
    assert not ofrep.matches(None, tag) and not ofrep.matches('"6-abc"', tag)


def test_configuration() -> None:
    conf = ofrep.configuration()
    assert conf["name"] == "conveyor" and conf["capabilities"]["cacheInvalidation"]["polling"]["enabled"]


def test_every_reason_is_in_the_schema_enum_and_default_is_a_targeting_match() -> None:
    bulk = ofrep.evaluate_bulk(SERVED, b'{"context": {"targetingKey": "u1", "country": "NO"}}', None)
    assert bulk.body is not None
    reasons = {f["key"]: f.get("reason") for f in bulk.body["flags"]}
    assert set(filter(None, reasons.values())) <= ofrep.REASONS
    assert reasons["se_only"] == "TARGETING_MATCH"  # no rule matched: the default, reason DEFAULT before


def test_a_split_without_a_targeting_key_is_targeting_key_missing() -> None:
    for key in ("half", "ab"):
        for raw in (b"{}", b'{"context": {}}', b'{"context": {"targetingKey": ""}}'):
            a = one(key, raw)
            assert a.status == 400 and a.body is not None, (key, raw)
            assert a.body["errorCode"] == "TARGETING_KEY_MISSING" and a.body["key"] == key
        assert one(key, {"context": {"targetingKey": "u1"}}).status == 200
        assert one(key, {"context": {"session_id": "s1"}}).status == 200
    answers = {one("half", {"context": {"targetingKey": f"u{i}"}}).body["value"] for i in range(40)}  # type: ignore[index]
    assert answers == {True, False}
    # no draw: flags without a split, and a custom stickiness (a missing attribute is a plain miss)
    assert one("on", b"{}").status == 200 and one("se_only", b"{}").status == 200
    assert one("colour", b"{}").status == 200  # one variant: no draw
    assert one("by_account", b"{}").status == 200
    bulk = ofrep.evaluate_bulk(SERVED, b"{}", None)
    assert bulk.status == 200 and bulk.body is not None
    by_key = {f["key"]: f for f in bulk.body["flags"]}
    assert by_key["half"]["errorCode"] == "TARGETING_KEY_MISSING" and "value" not in by_key["half"]
    assert by_key["on"]["value"] is True


def test_a_json_array_value_is_a_general_error_and_objects_are_served() -> None:
    a = one("list", {"context": {"targetingKey": "u1"}})
    assert a.status == 400 and a.body is not None
    assert a.body["errorCode"] == "GENERAL" and "JSON array" in a.body["errorDetails"]
    assert one("limits", {"context": {"targetingKey": "u1"}}).body["value"] == {"max": 2}  # type: ignore[index]
    bulk = ofrep.evaluate_bulk(SERVED, b'{"context": {"targetingKey": "u1"}}', None)
    assert bulk.body is not None
    by_key = {f["key"]: f for f in bulk.body["flags"]}
    assert by_key["list"]["errorCode"] == "GENERAL" and "value" not in by_key["list"]


def test_only_answers_that_the_ruleset_and_body_decide_may_be_cached() -> None:
    """api/ofrep.py keeps the encoded answer of a pure evaluation per ruleset version: never one
    that reads the clock or draws at random for the same body."""
    date = {"attribute": "current_time", "operator": "DATE_BEFORE", "values": ["2999-01-01T00:00:00Z"]}
    two = [{"name": "a", "value": "a", "weight": 1}, {"name": "b", "value": "b", "weight": 1}]
    document: dict[str, Any] = {
        "environment": "production",
        "version": 8,
        "segments": {"7": {"constraints": [date]}},
        "flags": {
            **DOCUMENT["flags"],
            "dated": flag("dated", strategies=[{"constraints": [date]}]),
            "dated_segment": flag("dated_segment", strategies=[{"segments": [7]}]),
            "coin": flag("coin", strategies=[{"rollout": 50, "stickiness": "random"}]),
            "by_team": flag("by_team", type="string", default="a", variants=two, variant_stickiness="team"),
            "child_of_dated": flag("child_of_dated", dependencies=[{"flag": "dated"}]),
            "child_of_half": flag("child_of_half", dependencies=[{"flag": "half"}]),
        },
    }
    served = ofrep.served(compile_ruleset(document), document, META)
    keyed, unkeyed = b'{"context": {"targetingKey": "u1"}}', b'{"context": {}}'

    def pure(key: str, raw: bytes) -> bool:
        return ofrep.answer_one(served, key, raw)[1]

    for key in ("on", "off", "se_only", "colour", "half", "ab", "by_account", "limits", "list", "broken"):
        assert pure(key, keyed), key
    assert pure("half", unkeyed) and pure("ab", unkeyed)  # TARGETING_KEY_MISSING, before any draw
    assert pure("nope", keyed) and pure("on", b"{not json") and pure("on", b'{"context": 1}')
    for key in ("dated", "dated_segment", "coin", "by_team", "child_of_dated"):
        assert not pure(key, keyed) and not pure(key, unkeyed), key
    assert pure("child_of_half", keyed) and not pure("child_of_half", unkeyed)  # its parent draws
    coins = {ofrep.evaluate_one(served, "coin", keyed).body["value"] for _ in range(40)}  # type: ignore[index]
    assert coins == {True, False}


def test_bodies_in_any_json_encoding_parse_as_json_loads_reads_them() -> None:
    """The UTF-8 fast path falls back to json.loads, so a BOM or UTF-16 body is read as before."""
    body = json.dumps({"context": {"targetingKey": "u1", "country": "SE"}})
    for raw in (body.encode(), b"\xef\xbb\xbf" + body.encode(), body.encode("utf-16"), body.encode("utf-32")):
        assert ofrep.parse_context(raw) == {"targetingKey": "u1", "country": "SE", "user_id": "u1"}, raw
    for bad in (b"\xff\xfe{", b'{"context": "\xc3"}', b"[" * 100_000):
        with pytest.raises(ofrep.BadRequest):
            ofrep.parse_context(bad)


def test_cached_answers_are_bounded_and_an_older_versions_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """api/ofrep.py keeps one Served per scope (a new version drops the older one and its answers)
    and at most CACHED_TOTAL answers in all scopes together."""
    from conveyor.api import ofrep as route
    from conveyor.flags.ruleset import Scope, Snapshot

    class Live:
        served: dict[Any, Any] = {}

    live = Live()
    shop, billing = Scope(1, "shop", "production"), Scope(2, "billing", "production")

    def snapshot(scope: Scope, version: int) -> Snapshot:
        return Snapshot(scope, version, DOCUMENT, "", compile_ruleset({**DOCUMENT, "version": version}))

    route._served(live, snapshot(shop, 7))  # type: ignore[arg-type]
    other = route._served(live, snapshot(billing, 1))  # type: ignore[arg-type]
    newer = route._served(live, snapshot(shop, 8))  # type: ignore[arg-type]
    assert list(live.served) == [(billing, 1), (shop, 8)]
    monkeypatch.setattr(route, "CACHED_TOTAL", 3)
    monkeypatch.setattr(route, "_cached", [0])
    for i in range(3):
        route._keep(live.served, newer.answers, ("on", b"%d" % i), (200, b"{}", ()))
    route._keep(live.served, other.answers, ("on", b"x"), (200, b"{}", ()))
    assert len(newer.answers) == 0 and len(other.answers) == 1

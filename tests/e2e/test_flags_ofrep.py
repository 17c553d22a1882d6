"""OFREP v1 on a real server: single and bulk evaluation, ETag/304, the documented error codes for
bad input (never a 500), and the real `openfeature-sdk` with the real `openfeature-provider-ofrep`
evaluating our flags through it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from tests.api import ofrep_schema
from tests.e2e.gates_world import GateWorld
from tests.e2e.test_flags import new_key

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

OPENFEATURE = ("openfeature-sdk", "openfeature-provider-ofrep")


def setup_flags(gw: GateWorld) -> str:
    """Flags of every kind, on in staging; returns a staging SDK key."""
    gw.ok_as("eve", "POST", "/flags", json={"key": "new_checkout"})
    gw.ok_as(
        "eve",
        "POST",
        "/flags",
        json={
            "key": "button_colour",
            "type": "string",
            "default": "grey",
            "variants": [
                {"name": "blue", "value": "blue", "weight": 1},
                {"name": "green", "value": "green", "weight": 1},
            ],
        },
    )
    gw.ok_as("eve", "POST", "/flags", json={"key": "nordics", "description": "only SE and NO"})
    gw.ok_as("eve", "POST", "/flags", json={"key": "half"})
    gw.ok_as("eve", "POST", "/flags", json={"key": "limits", "type": "json", "default": {"max": 1}})
    gw.ok_as("eve", "POST", "/flags", json={"key": "dormant"})
    rules = [{"constraints": [{"attribute": "country", "operator": "IN", "values": ["SE", "NO"]}]}]
    for flag, body in (
        ("new_checkout", {"enabled": True}),
        ("button_colour", {"enabled": True}),
        ("nordics", {"enabled": True, "strategies": rules}),
        ("half", {"enabled": True, "strategies": [{"rollout": 50}]}),
        ("limits", {"enabled": True, "strategies": [{"value": {"max": 10}}]}),
    ):
        gw.ok_as("eve", "PUT", f"/flags/{flag}/environments/staging", json=body)
    return new_key(gw, "staging", user="eve")


def ofrep(gw: GateWorld, key: str, flag: str | None = None, **kwargs: Any) -> httpx.Response:
    path = "/ofrep/v1/evaluate/flags" + (f"/{flag}" if flag is not None else "")
    headers = {"X-API-Key": key, **kwargs.pop("headers", {})}
    return httpx.post(gw.server.url + path, headers=headers, timeout=30, **kwargs)


def test_single_and_bulk_evaluation(gw: GateWorld) -> None:
    key = setup_flags(gw)
    one = ofrep(gw, key, "new_checkout", json={"context": {"targetingKey": "u1"}})
    assert one.status_code == 200
    assert one.json() == {
        "key": "new_checkout",
        "value": True,
        "reason": "STATIC",
        "variant": "on",
        "metadata": {"service": "shop", "environment": "staging", "version": one.json()["metadata"]["version"]},
    }
    assert ofrep(gw, key, "dormant", json={}).json()["reason"] == "DISABLED"
    se = ofrep(gw, key, "nordics", json={"context": {"country": "SE"}}).json()
    assert (se["value"], se["reason"]) == (True, "TARGETING_MATCH")
    us = ofrep(gw, key, "nordics", json={"context": {"country": "US"}}).json()
    assert (us["value"], us["reason"], us["variant"]) == (False, "TARGETING_MATCH", "default")
    colour = ofrep(gw, key, "button_colour", json={"context": {"targetingKey": "u7"}}).json()
    assert colour["reason"] == "SPLIT" and colour["value"] == colour["variant"] in ("blue", "green")
    assert ofrep(gw, key, "limits").json()["value"] == {"max": 10}
    missing = ofrep(gw, key, "nope", json={"context": {}})
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "FLAG_NOT_FOUND" and missing.json()["key"] == "nope"

    bulk = ofrep(gw, key, json={"context": {"targetingKey": "u1", "country": "NO"}})
    assert bulk.status_code == 200
    flags = {f["key"]: f for f in bulk.json()["flags"]}
    assert set(flags) == {"new_checkout", "button_colour", "nordics", "half", "limits", "dormant"}
    assert flags["nordics"]["value"] is True and flags["dormant"]["reason"] == "DISABLED"
    tag = bulk.headers["etag"]
    again = ofrep(gw, key, json={"context": {"targetingKey": "u1", "country": "NO"}}, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["etag"] == tag
    other_context = ofrep(gw, key, json={"context": {"targetingKey": "u2"}}, headers={"If-None-Match": tag})
    assert other_context.status_code == 200
    gw.ok_as("eve", "POST", "/flags/new_checkout/environments/staging/kill")
    changed = ofrep(gw, key, json={"context": {"targetingKey": "u1", "country": "NO"}}, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert {f["key"]: f for f in changed.json()["flags"]}["new_checkout"]["reason"] == "DISABLED"
    conf = httpx.get(gw.server.url + "/ofrep/v1/configuration", headers={"X-API-Key": key}, timeout=30)
    assert conf.status_code == 200 and conf.json()["name"] == "conveyor"


BAD_BODIES: list[tuple[bytes, str]] = [
    (b"{not json", "PARSE_ERROR"),
    (b"[]", "PARSE_ERROR"),
    (b"null", "PARSE_ERROR"),
    (b"\xff\xfe\xfd", "PARSE_ERROR"),
    (b'{"context": "a string"}', "INVALID_CONTEXT"),
    (b'{"context": [1, 2]}', "INVALID_CONTEXT"),
    (b'{"context": 42}', "INVALID_CONTEXT"),
    (b'{"context": {"targetingKey": {"id": 1}}}', "INVALID_CONTEXT"),
    (b"[" * 200_000 + b"]" * 200_000, "PARSE_ERROR"),
]


def test_bad_input_gets_the_documented_codes_and_never_a_500(gw: GateWorld) -> None:
    key = setup_flags(gw)
    for raw, code in BAD_BODIES:
        for flag in ("new_checkout", None):
            r = ofrep(gw, key, flag, content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (raw[:40], flag, r.status_code, r.text[:200])
            assert r.json()["errorCode"] == code and r.json()["errorDetails"]
            if flag:
                assert r.json()["key"] == flag
    # a huge body is refused before it is read
    huge = b'{"context": {"x": "' + b"a" * 2_000_000 + b'"}}'
    assert ofrep(gw, key, "new_checkout", content=huge).status_code == 413
    # odd but well-formed contexts evaluate
    odd: dict[str, Any] = {"country": {"nested": [1, None, {"a": True}]}, "age": 1e308, "targetingKey": "ü" * 1000}
    assert ofrep(gw, key, "nordics", json={"context": odd}).status_code == 200
    assert ofrep(gw, key, json={"context": odd}).status_code == 200
    # odd keys and methods
    for flag in ("a b", "%00", "x" * 2000, "..", "ünïcode"):
        r = ofrep(gw, key, flag, json={})
        assert r.status_code in (404, 405), (flag, r.status_code)
    assert httpx.get(gw.server.url + "/ofrep/v1/evaluate/flags/new_checkout", timeout=30).status_code == 405
    assert ofrep(gw, key, "new_checkout", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 200
    assert ofrep(gw, "cvf_bad", "new_checkout", json={}).status_code == 401
    assert "Traceback" not in gw.server.log()


def test_every_kind_of_answer_fits_the_official_schema_and_changes_are_seen_at_once(gw: GateWorld) -> None:
    key = setup_flags(gw)
    gw.ok_as("eve", "POST", "/flags", json={"key": "id_list", "type": "json", "default": [1, 2]})
    gw.ok_as("eve", "PUT", "/flags/id_list/environments/staging", json={"enabled": True})
    user = {"context": {"targetingKey": "u1", "country": "US"}}
    single: list[tuple[str, Any, int, str | None]] = [
        ("new_checkout", user, 200, "STATIC"),
        ("dormant", user, 200, "DISABLED"),
        ("nordics", user, 200, "TARGETING_MATCH"),  # no rule matched: the default
        ("nordics", {"context": {"targetingKey": "u1", "country": "SE"}}, 200, "TARGETING_MATCH"),
        ("button_colour", user, 200, "SPLIT"),
        ("limits", user, 200, "TARGETING_MATCH"),
        ("half", user, 200, None),
        ("half", {"context": {}}, 400, "TARGETING_KEY_MISSING"),
        ("button_colour", {}, 400, "TARGETING_KEY_MISSING"),
        ("id_list", user, 400, "GENERAL"),  # a JSON array: OFREP values are objects
        ("new_checkout", b"{not json", 400, "PARSE_ERROR"),
        ("new_checkout", {"context": [1]}, 400, "INVALID_CONTEXT"),
        ("nope", user, 404, "FLAG_NOT_FOUND"),
        ("a%2Fb", user, 404, "FLAG_NOT_FOUND"),
        ("a%2F", user, 404, "FLAG_NOT_FOUND"),
        ("%00", user, 404, "FLAG_NOT_FOUND"),
    ]
    for flag, body, status, code in single:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        r = ofrep(gw, key, flag, **kwargs)
        assert r.status_code == status, (flag, body, r.status_code, r.text)
        answer = r.json()
        assert not ofrep_schema.errors(ofrep_schema.SINGLE, status, answer), (flag, answer)
        assert answer["key"] == unquote(flag)
        if code is not None:
            assert code in (answer.get("reason"), answer.get("errorCode")), (flag, answer)
    for body in (user, {"context": {"country": "SE"}}, {}):  # with and without a targeting key
        bulk = ofrep(gw, key, json=body)
        assert bulk.status_code == 200
        assert not ofrep_schema.errors(ofrep_schema.BULK, 200, bulk.json()), bulk.json()
        codes = {f["key"]: f.get("errorCode") for f in bulk.json()["flags"]}
        assert codes["id_list"] == "GENERAL" and codes["new_checkout"] is None
        assert codes["half"] == (None if body is user else "TARGETING_KEY_MISSING")
        same = ofrep(gw, key, json=body, headers={"If-None-Match": bulk.headers["etag"]})
        assert same.status_code == 304 and same.content == b""
        assert not ofrep_schema.errors(ofrep_schema.BULK, 304, None)
    for raw in (b"[]", b'{"context": 5}'):
        bad = ofrep(gw, key, content=raw)
        assert bad.status_code == 400 and not ofrep_schema.errors(ofrep_schema.BULK, 400, bad.json()), bad.text
    for bad_key in ("cvf_bad", ""):
        assert ofrep(gw, bad_key, "new_checkout", json=user).status_code == 401  # declared, no body schema
        assert ofrep(gw, bad_key, json=user).status_code == 401

    # keys and rulesets are served from memory: a change and a revocation must reach the next request
    other = new_key(gw, "staging", user="eve")
    for percent in (0, 100, 0, 100, 0):
        gw.ok_as("eve", "POST", "/flags/half/environments/staging/rollout", json={"percent": percent})
        for _ in range(3):
            r = ofrep(gw, key, "half", json=user)
            assert r.status_code == 200 and r.json()["value"] is (percent == 100), (percent, r.text)
    # repeated answers come from a cache per ruleset version, but never one drawn at random
    gw.ok_as("eve", "POST", "/flags", json={"key": "coin"})
    coin = {"enabled": True, "strategies": [{"rollout": 50, "stickiness": "random"}]}
    gw.ok_as("eve", "PUT", "/flags/coin/environments/staging", json=coin)
    assert {ofrep(gw, key, "coin", json=user).json()["value"] for _ in range(30)} == {True, False}
    gw.ok_as("eve", "POST", "/flags/new_checkout/environments/staging/kill")
    assert ofrep(gw, key, "new_checkout", json=user).json()["reason"] == "DISABLED"
    assert ofrep(gw, key, json=user).status_code == 200
    listed = gw.ok_as("eve", "GET", "/flags/sdk-keys", params={"environment": "staging"})
    key_id = next(k["id"] for k in listed if key.startswith(k["prefix"]))
    gw.ok_as("eve", "DELETE", f"/flags/sdk-keys/{key_id}")
    for flag in ("half", None):
        denied = ofrep(gw, key, flag, json=user)
        assert denied.status_code == 401, denied.text
    assert ofrep(gw, other, "half", json=user).status_code == 200


def test_the_document_as_vendored_rejects_its_own_example() -> None:
    """Why ofrep_schema fixes the document in memory: if this fails, upstream fixed it; drop the fix."""
    example = {"key": "discount-banner", "value": True, "reason": "TARGETING_MATCH", "variant": "enabled"}
    assert ofrep_schema.errors(ofrep_schema.SINGLE, 200, example, fixed=False)
    assert not ofrep_schema.errors(ofrep_schema.SINGLE, 200, example)
    assert ofrep_schema.errors(ofrep_schema.SINGLE, 200, {**example, "value": [1]})
    assert ofrep_schema.errors(ofrep_schema.SINGLE, 200, {**example, "reason": "DEFAULT"})


@pytest.fixture
def openfeature() -> Iterator[Any]:
    """The real OpenFeature SDK and OFREP provider, installed into this venv if missing."""
    try:
        importlib.import_module("openfeature.contrib.provider.ofrep")
    except ImportError:
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *OPENFEATURE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        importlib.invalidate_caches()
        if install.returncode != 0:
            pytest.skip(f"cannot install {', '.join(OPENFEATURE)}: {install.stderr.strip()[-300:]}")
    from openfeature import api

    yield api
    api.shutdown()
    api.clear_providers()


def test_the_real_openfeature_sdk_evaluates_our_flags(gw: GateWorld, openfeature: Any) -> None:
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode
    from openfeature.flag_evaluation import Reason

    key = setup_flags(gw)
    openfeature.set_provider(OFREPProvider(gw.server.url, headers_factory=lambda: {"X-API-Key": key}))
    client = openfeature.get_client()
    user = EvaluationContext(targeting_key="user-1")

    boolean = client.get_boolean_details("new_checkout", False, user)
    assert (boolean.value, boolean.reason, boolean.error_code) == (True, Reason.STATIC, None)
    dormant = client.get_boolean_details("dormant", True, user)
    assert (dormant.value, dormant.reason) == (False, Reason.DISABLED)

    string = client.get_string_details("button_colour", "fallback", user)
    assert string.value in ("blue", "green") and string.variant == string.value and string.reason == Reason.SPLIT

    se = client.get_boolean_details("nordics", False, EvaluationContext("user-1", {"country": "SE"}))
    assert (se.value, se.reason) == (True, Reason.TARGETING_MATCH)
    us = client.get_boolean_details("nordics", True, EvaluationContext("user-1", {"country": "US"}))
    assert (us.value, us.reason, us.variant) == (False, Reason.TARGETING_MATCH, "default")

    split = [client.get_boolean_value("half", False, EvaluationContext(f"user-{i}")) for i in range(200)]
    assert 70 < sum(split) < 130, sum(split)
    assert split == [client.get_boolean_value("half", False, EvaluationContext(f"user-{i}")) for i in range(200)]

    limits = client.get_object_details("limits", {}, user)
    assert limits.value == {"max": 10}

    missing = client.get_boolean_details("no_such_flag", True, user)
    assert (missing.value, missing.error_code, missing.reason) == (True, ErrorCode.FLAG_NOT_FOUND, Reason.ERROR)
    wrong_type = client.get_string_details("new_checkout", "dflt", user)
    assert (wrong_type.value, wrong_type.error_code) == ("dflt", ErrorCode.TYPE_MISMATCH)

    # the kill switch reaches the next evaluation
    gw.ok_as("eve", "POST", "/flags/new_checkout/environments/staging/kill")
    assert client.get_boolean_details("new_checkout", True, user).reason == Reason.DISABLED

    # a bad key: the provider reports an error and the caller's default is served
    openfeature.set_provider(OFREPProvider(gw.server.url, headers_factory=lambda: {"X-API-Key": "cvf_bad"}))
    denied = openfeature.get_client().get_boolean_details("new_checkout", True, user)
    assert denied.value is True and denied.error_code == ErrorCode.GENERAL

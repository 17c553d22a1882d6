"""Feature flags end to end, on a real server: the admin API and CLI with the audit log, the kill
switch, rollouts, SDK keys, the ruleset with ETag/304 across a restart, and the SSE stream.
(OFREP and the real OpenFeature SDK are in test_flags_ofrep.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.gates_world import GateWorld

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

SDK_HEADERS = "X-API-Key"


def cli(world: GateWorld, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "flags", *args],
        env=world.env_for(user),
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_json(world: GateWorld, user: str, *args: str) -> Any:
    result = cli(world, user, *args, "--json")
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


def new_key(world: GateWorld, environment: str, user: str = "rita") -> str:
    key: str = world.ok_as(user, "POST", "/flags/sdk-keys", json={"environment": environment})["key"]
    return key


def sdk_get(world: GateWorld, path: str, key: str | None, **kwargs: Any) -> httpx.Response:
    headers = {SDK_HEADERS: key} if key else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.get(world.server.url + "/api/v1/flags" + path, headers=headers, timeout=30, **kwargs)


def evaluate(world: GateWorld, key: str, flag: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    r = world.http.post(f"/ofrep/v1/evaluate/flags/{flag}", headers={SDK_HEADERS: key}, json={"context": context or {}})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def flag_audit(world: GateWorld) -> list[dict[str, Any]]:
    entries = world.ok_as("ada", "GET", "/audit", params={"limit": 1000})["entries"]
    return [e for e in reversed(entries) if e["action"].startswith("flag.") or e["action"] == "forbidden"]


def test_crud_from_the_cli_and_api_audited_with_before_and_after(gw: GateWorld) -> None:
    created = cli_json(gw, "eve", "create", "new_checkout", "--description", "one-page checkout")
    assert created["type"] == "boolean" and created["default"] is False and created["on_value"] is True
    assert [e["enabled"] for e in created["environments"]] == [False, False, False]  # off everywhere
    colour = cli_json(gw, "eve", "create", "colour", "--service", "shop", "--type", "string", "--default", "red")
    assert (colour["default"], colour["on_value"]) == ("red", "red")
    bad = cli(gw, "eve", "create", "limit", "--type", "number", "--default", "lots")
    assert bad.returncode == 2 and "not a number" in bad.stderr
    dup = cli(gw, "eve", "create", "colour")
    assert dup.returncode == 1 and "already has a flag 'colour'" in dup.stderr

    variants = [{"name": "blue", "value": "blue", "weight": 1}, {"name": "green", "value": "green", "weight": 1}]
    updated = gw.ok_as("eve", "PATCH", "/flags/colour", json={"variants": variants, "description": "button"})
    assert updated["variants"] == variants and updated["default"] == "red" and updated["description"] == "button"
    wrong = gw.as_("eve", "PATCH", "/flags/colour", json={"variants": [{"name": "x", "value": 3}]})
    assert wrong.status_code == 400 and "variant 'x': 3 is not a string" in wrong.json()["message"]

    listed = {f["key"]: f for f in cli_json(gw, "eve", "list")}
    assert set(listed) == {"new_checkout", "colour"} and listed["colour"]["enabled_in"] == []
    assert cli_json(gw, "eve", "on", "colour", "--env", "staging")["enabled"]
    shown = cli_json(gw, "max", "show", "colour")
    assert {e["environment"]: e["enabled"] for e in shown["environments"]} == {
        "development": False,
        "staging": True,
        "production": False,
    }
    human = cli(gw, "eve", "show", "colour", "--service", "shop")
    assert human.returncode == 0 and "staging" in human.stdout and "colour" in human.stdout
    assert cli_json(gw, "eve", "update", "new_checkout", "--default", "true", "--on-value", "false")["default"] is True
    assert cli(gw, "eve", "update", "new_checkout", "--default", "maybe").returncode == 2

    refused = cli(gw, "eve", "delete", "colour")
    assert refused.returncode == 1 and "on in staging" in refused.stderr
    cli_json(gw, "eve", "off", "colour", "--env", "staging")
    assert cli_json(gw, "eve", "delete", "colour")["deleted"]
    assert gw.as_("eve", "GET", "/flags/colour").status_code == 404

    entries = flag_audit(gw)
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("flag.created", "eve"),
        ("flag.created", "eve"),
        ("flag.updated", "eve"),
        ("flag.enabled", "eve"),
        ("flag.updated", "eve"),
        ("flag.disabled", "eve"),
        ("flag.deleted", "eve"),
    ]
    update = entries[2]
    assert update["subject"] == "shop/colour"
    assert update["details"]["before"]["variants"] == [] and update["details"]["after"]["variants"] == variants
    enabled = entries[3]["details"]
    assert enabled["environment"] == "staging" and not enabled["before"]["enabled"] and enabled["after"]["enabled"]
    assert entries[4]["details"]["after"]["on_value"] is False and entries[4]["subject"] == "shop/new_checkout"
    assert entries[6]["details"]["after"] is None and entries[6]["details"]["before"]["type"] == "string"
    assert gw.ok_as("ada", "GET", "/audit")["chain"]["ok"]


def test_kill_switch_from_the_cli_and_the_api(gw: GateWorld) -> None:
    gw.ok_as("eve", "POST", "/flags", json={"key": "payments_v2"})
    key = new_key(gw, "production")
    # only production's deployers turn it on there
    eng = cli(gw, "eve", "on", "payments_v2", "--env", "production")
    assert eng.returncode == 1 and "may not change flags in production; only release_manager may" in eng.stderr
    assert cli_json(gw, "rita", "on", "payments_v2", "--env", "production")["enabled"]
    assert evaluate(gw, key, "payments_v2")["value"] is True

    # a manager may kill it (but not turn it on), from the CLI, with a reason for the audit log
    assert cli(gw, "max", "on", "payments_v2", "--env", "production").returncode == 1
    killed = cli(gw, "max", "kill", "payments_v2", "--env", "production", "--reason", "card errors")
    assert killed.returncode == 0, killed.stderr
    assert "off" in killed.stdout
    answer = evaluate(gw, key, "payments_v2")
    assert (answer["value"], answer["reason"]) == (False, "DISABLED")
    refused = cli(gw, "eve", "kill", "payments_v2", "--env", "production")
    assert refused.returncode == 1 and "may not kill flags in production" in refused.stderr

    # and from the API, in one call
    gw.ok_as("rita", "POST", "/flags/payments_v2/environments/production/on")
    r = gw.as_("rita", "POST", "/flags/payments_v2/environments/production/kill", json={"reason": "again"})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert evaluate(gw, key, "payments_v2")["reason"] == "DISABLED"
    unknown = gw.as_("rita", "POST", "/flags/payments_v2/environments/prod/kill")
    assert unknown.status_code == 404 and "development, production, staging" in unknown.json()["fix"]

    kills = [e for e in flag_audit(gw) if e["action"] == "flag.killed"]
    assert [(k["actor"], k["details"]["reason"]) for k in kills] == [("max", "card errors"), ("rita", "again")]
    assert all(k["details"]["before"]["enabled"] and not k["details"]["after"]["enabled"] for k in kills)
    forbidden = [e for e in flag_audit(gw) if e["action"] == "forbidden"]
    assert {(e["actor"], e["details"]["attempted"]) for e in forbidden} == {
        ("eve", "flag.enabled"),
        ("max", "flag.enabled"),
        ("eve", "flag.killed"),
    }


def test_rollout_narrows_who_gets_it_and_is_sticky(gw: GateWorld, tmp_path: Path) -> None:
    gw.ok_as("eve", "POST", "/flags", json={"key": "search_v2"})
    key = new_key(gw, "staging", user="eve")
    rolled = cli_json(gw, "eve", "rollout", "search_v2", "30", "--env", "staging")
    assert rolled["enabled"] is False and rolled["strategies"] == [
        {"constraints": [], "rollout": 30, "stickiness": "default", "group_id": None, "value": None, "variants": None}
    ]
    assert evaluate(gw, key, "search_v2", {"targetingKey": "u1"})["reason"] == "DISABLED"  # rollout is not "on"
    cli_json(gw, "eve", "on", "search_v2", "--env", "staging")

    def share() -> tuple[float, list[bool]]:
        values = [evaluate(gw, key, "search_v2", {"targetingKey": f"user-{i}"})["value"] for i in range(300)]
        return sum(values) / len(values), values

    fraction, first = share()
    assert 0.2 < fraction < 0.4, fraction
    assert share()[1] == first  # sticky by targetingKey
    # a targeting rule goes before the rollout, which keeps its percentage
    rules = [{"constraints": [{"attribute": "email", "operator": "STR_ENDS_WITH", "values": ["@acme.com"]}]}]
    (tmp_path / "rules.json").write_text(json.dumps([*rules, rolled["strategies"][0]]))
    state = cli_json(gw, "eve", "set", "search_v2", "--env", "staging", "--strategies", f"@{tmp_path / 'rules.json'}")
    assert state["enabled"] and len(state["strategies"]) == 2
    bad_rules = cli(gw, "eve", "set", "search_v2", "--env", "staging", "--strategies", '[{"rollout": "most"}]')
    assert bad_rules.returncode == 1 and "strategy 1" in bad_rules.stderr
    staff = evaluate(gw, key, "search_v2", {"targetingKey": "user-0", "email": "a@acme.com"})
    assert (staff["value"], staff["reason"]) == (True, "TARGETING_MATCH")
    assert cli_json(gw, "eve", "rollout", "search_v2", "100", "--env", "staging")["strategies"][1]["rollout"] == 100
    assert share()[0] == 1.0
    cli_json(gw, "eve", "rollout", "search_v2", "0", "--env", "staging")
    assert share()[0] == 0.0
    bad = gw.as_("eve", "POST", "/flags/search_v2/environments/staging/rollout", json={"percent": 101})
    assert bad.status_code == 422
    assert cli(gw, "eve", "rollout", "search_v2", "150", "--env", "staging").returncode == 2


def test_sdk_keys_read_one_environment_only(gw: GateWorld) -> None:
    gw.ok_as("eve", "POST", "/flags", json={"key": "beta"})
    gw.ok_as("rita", "POST", "/flags/beta/environments/production/on")
    made = cli(gw, "eve", "key", "create", "--env", "staging", "--name", "web")
    assert made.returncode == 0 and "shown once" in made.stderr
    staging = made.stdout.strip()
    assert staging.startswith("cvf_") and "\n" not in staging
    assert cli(gw, "eve", "key", "create", "--env", "production").returncode == 1  # production: release managers
    production = new_key(gw, "production")

    assert sdk_get(gw, "/ruleset", staging).json()["flags"]["beta"]["enabled"] is False
    assert sdk_get(gw, "/ruleset", production).json()["flags"]["beta"]["enabled"] is True
    other_env = sdk_get(gw, "/ruleset", staging, params={"environment": "production"})
    assert other_env.status_code == 403 and "reads shop/staging, not shop/production" in other_env.json()["message"]
    assert sdk_get(gw, "/ruleset", staging, params={"environment": "staging"}).status_code == 200
    bearer = sdk_get(gw, "/ruleset", None, headers={"Authorization": f"Bearer {staging}"})
    assert bearer.status_code == 200 and bearer.json()["environment"] == "staging"

    for headers in ({}, {SDK_HEADERS: "cvf_wrong"}, {"Authorization": "Bearer nope"}, {SDK_HEADERS: gw.tokens["ada"]}):
        for method, url in (
            ("GET", "/api/v1/flags/ruleset"),
            ("GET", "/api/v1/flags/stream"),
            ("POST", "/ofrep/v1/evaluate/flags/beta"),
            ("POST", "/ofrep/v1/evaluate/flags"),
        ):
            r = httpx.request(method, gw.server.url + url, headers=headers, json={}, timeout=30)
            assert r.status_code == 401, (headers, url, r.status_code, r.text)

    listed = cli_json(gw, "ada", "key", "list", "--env", "staging")
    assert [(k["name"], k["revoked"]) for k in listed] == [("web", False)] and staging not in json.dumps(listed)
    assert cli_json(gw, "eve", "key", "revoke", str(listed[0]["id"]))["revoked"]
    assert sdk_get(gw, "/ruleset", staging).status_code == 401
    assert sdk_get(gw, "/ruleset", production).status_code == 200
    actions = [e["action"] for e in flag_audit(gw)]
    assert actions.count("flag.sdk_key_created") == 2 and actions.count("flag.sdk_key_revoked") == 1


def test_ruleset_etag_and_304_survive_a_restart(gw: GateWorld) -> None:
    gw.ok_as("eve", "POST", "/flags", json={"key": "banner", "type": "string", "default": "none"})
    key = new_key(gw, "staging", user="eve")
    first = sdk_get(gw, "/ruleset", key)
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag == f'"{first.json()["version"]}"'
    same = sdk_get(gw, "/ruleset", key, headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.headers["etag"] == tag and same.content == b""
    gw.ok_as(
        "eve", "PUT", "/flags/banner/environments/staging", json={"enabled": True, "strategies": [{"value": "sale"}]}
    )
    changed = sdk_get(gw, "/ruleset", key, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert changed.json()["version"] == first.json()["version"] + 1

    gw.server.stop()
    gw.server.start()
    after = sdk_get(gw, "/ruleset", key, headers={"If-None-Match": changed.headers["etag"]})
    assert after.status_code == 304  # the version is stored: nothing was lost
    assert sdk_get(gw, "/ruleset", key).json() == changed.json()
    assert evaluate(gw, key, "banner")["value"] == "sale"


def read_event(lines: Any, deadline: float) -> dict[str, Any]:
    """The next `event: ruleset` of an SSE stream, before the deadline."""
    event, data = None, None
    for line in lines:
        assert time.monotonic() < deadline, "no event before the deadline"
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1].strip()
        elif line == "" and event == "ruleset" and data:
            result: dict[str, Any] = json.loads(data)
            return result
    raise AssertionError("the stream ended")


def test_the_stream_sends_the_ruleset_then_every_change_at_once(gw: GateWorld) -> None:
    gw.ok_as("eve", "POST", "/flags", json={"key": "live"})
    gw.ok_as("rita", "POST", "/flags/live/environments/production/on")
    key = new_key(gw, "production")
    url = gw.server.url + "/api/v1/flags/stream"
    with httpx.stream("GET", url, headers={SDK_HEADERS: key}, timeout=httpx.Timeout(30, read=20)) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = read_event(lines, time.monotonic() + 10)
        assert first["environment"] == "production" and first["flags"]["live"]["enabled"] is True
        delays = []
        for on in (False, True, False):
            action = "on" if on else "kill"
            gw.ok_as("rita", "POST", f"/flags/live/environments/production/{action}")
            returned = time.monotonic()
            change = read_event(lines, returned + 5)
            delays.append(time.monotonic() - returned)
            assert change["flags"]["live"]["enabled"] is on
            first = change
        assert first["version"] > 0 and max(delays) < 2, delays
        # a change elsewhere (staging) does not reach production's stream; production's next one does
        gw.ok_as("eve", "POST", "/flags/live/environments/staging/on")
        gw.ok_as("rita", "POST", "/flags/live/environments/production/rollout", json={"percent": 10})
        nxt = read_event(lines, time.monotonic() + 5)
        assert nxt["version"] == first["version"] + 1 and nxt["flags"]["live"]["strategies"][0]["rollout"] == 10

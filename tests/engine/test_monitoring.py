"""Monitoring in the deployment workflow, with a real server (in this process) and a command-target
service whose scripts record what they do: the state moves (running -> monitoring -> an end), a
sample stored once however often its step runs, and who may end monitoring early.

A command target has no built-in counters, so its windows are empty: "not enough traffic" unless a
person ends them first. The local target's numbers are tested end to end in tests/e2e/test_monitoring.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e.harness import Server, commit, effects, make_service_repo, service_config
from tests.notify.receivers import Call, HttpReceiver

from conveyor.devserver import make_token
from conveyor.runtime import runtime
from conveyor.store import monitor_samples as samples

MONITOR = "    monitor: {for: 1m, interval: 1s, min_requests: 10, rollback_if: {error_rate: '> 2%'}}\n"
SHORT = "    monitor: {for: 3s, interval: 1s, min_requests: 10, rollback_if: {error_rate: '> 2%'}}\n"


@dataclass
class World:
    server: Server
    repo: Path
    effects: Path
    tokens: dict[str, str]

    def as_(self, user: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.request(method, self.server.url + "/api/v1" + path, headers=headers, timeout=60, **kw)

    def deploy(self) -> str:
        d = self.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
        return str(d["id"])

    def wait_state(self, deployment_id: str, state: str) -> dict[str, Any]:
        return wait_until(
            lambda: (d := self.server.deployment(deployment_id))["state"] == state and d,
            timeout=60,
            what=f"{deployment_id} {state}",
        )


def make_world(tmp_path: Path, database_url: str, monitor: str) -> Iterator[World]:
    fx = tmp_path / "effects"
    repo = make_service_repo(tmp_path / "shop", fx)
    commit(repo, {"conveyor.yml": service_config(fx, extra=monitor)}, "monitor production")
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0).start()
    tokens = {
        "alice": server.token,
        "ron": make_token(database_url, "ron", ["release_manager"]),
        "eve": make_token(database_url, "eve", ["engineer"]),
    }
    server.ok("POST", "/services", json={"source": str(repo)})
    w = World(server, repo, fx, tokens)
    try:
        yield w
    finally:
        for d in server.ok("GET", "/deployments"):  # end the windows still open before the server stops
            if d["state"] == "monitoring":
                w.as_("alice", "POST", f"/deployments/{d['id']}/monitoring/accept", json={"reason": "test over"})
        server.stop()


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, MONITOR)


@pytest.fixture
def short(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, SHORT)


def _second_release(w: World) -> str:
    """v1 accepted by a release manager, then v2 deployed and left monitoring: its id."""
    first = w.deploy()
    w.wait_state(first, "monitoring")
    accepted = w.as_("ron", "POST", f"/deployments/{first}/monitoring/accept", json={"reason": "first one"})
    assert accepted.status_code in (200, 409), accepted.text  # 409: a short window ended by itself first
    assert w.server.wait_finished(first)["state"] == "succeeded"
    commit(w.repo, {"app.txt": "version two\n"}, "two")
    second = w.deploy()
    w.wait_state(second, "monitoring")
    return second


@pytest.mark.sqlite_only  # policy or monitoring rules; the store tests cover their database work on PostgreSQL
def test_a_window_too_quiet_to_judge_ends_succeeded_and_says_so(short: World) -> None:
    d = short.deploy()
    short.wait_state(d, "monitoring")
    done = short.server.wait_finished(d, timeout=60)
    assert done["state"] == "succeeded"
    assert done["reason"].startswith("not enough traffic to judge: 0 requests"), done["reason"]
    view = short.server.ok("GET", f"/deployments/{d}/monitoring")
    assert view["monitoring"]["outcome"] == "not_enough_traffic"
    assert [s["seq"] for s in view["samples"]] == [0, 1, 2]
    moves = [e for e in short.server.ok("GET", "/audit", params={"limit": 200})["entries"] if e.get("subject") == d]
    actions = [e["action"] for e in moves]
    assert actions.index("deployment.monitoring") > actions.index("deployment.succeeded"), actions  # newest first


def test_a_stored_sample_is_not_stored_again_when_its_step_runs_again(short: World) -> None:
    from conveyor.engine.monitoring import sample

    d = short.deploy()
    done = short.server.wait_finished(d, timeout=60)
    assert done["state"] == "succeeded"
    rt = runtime()
    with rt.db.read() as conn:
        before = [s.as_json() for s in samples.samples(conn, d)]
    assert sample(d, 1) == "succeeded"  # the step again, after the end: it changes nothing
    with rt.db.begin() as conn:
        again = samples.add_sample(
            conn, d, 1, samples.samples(conn, d)[1].since, samples.samples(conn, d)[1].until,
            samples.samples(conn, d)[0].window, "breach", [], rt.clock.now(),
        )  # fmt: skip
        after = [s.as_json() for s in samples.samples(conn, d)]
    assert again.verdict == before[1]["verdict"] and after == before


@pytest.mark.sqlite_only  # policy or monitoring rules; the store tests cover their database work on PostgreSQL
def test_an_engineer_may_not_accept_now(world: World) -> None:
    d = _second_release(world)
    refused = world.as_("eve", "POST", f"/deployments/{d}/monitoring/accept", json={"reason": "looks fine to me"})
    assert refused.status_code == 403, refused.text
    assert "only release_manager, admin may" in refused.json()["message"]
    assert world.server.deployment(d)["state"] == "monitoring"
    entries = world.server.ok("GET", "/audit", params={"limit": 50})["entries"]
    assert any(e["action"] == "forbidden" and e["actor"] == "eve" and e["subject"] == d for e in entries)


@pytest.mark.sqlite_only  # policy or monitoring rules; the store tests cover their database work on PostgreSQL
def test_an_engineer_may_not_roll_back_now(world: World) -> None:
    d = _second_release(world)
    refused = world.as_("eve", "POST", f"/deployments/{d}/monitoring/rollback", json={"reason": "I am worried"})
    assert refused.status_code == 403, refused.text
    assert world.server.deployment(d)["state"] == "monitoring"


def test_a_release_manager_rolls_back_now_and_the_previous_release_serves(world: World) -> None:
    d = _second_release(world)
    done = world.as_("ron", "POST", f"/deployments/{d}/monitoring/rollback", json={"reason": "support tickets"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["state"] == "rolled_back"
    assert body["reason"].startswith("rolled back during monitoring by ron: support tickets"), body["reason"]
    assert effects(world.effects)[-1].startswith("rollback production v0.1.0"), effects(world.effects)[-3:]
    view = world.server.ok("GET", f"/deployments/{d}/monitoring")
    assert (view["monitoring"]["decided_by"], view["monitoring"]["outcome"]) == ("ron", "rolled_back")
    again = world.as_("ron", "POST", f"/deployments/{d}/monitoring/accept", json={"reason": "too late"})
    assert again.status_code == 409, again.text


def test_a_new_deployment_waits_while_the_environment_is_monitored(world: World) -> None:
    d = _second_release(world)
    commit(world.repo, {"app.txt": "version three\n"}, "three")
    third = world.deploy()
    world.wait_state(third, "queued")  # production lints its migrations (none here) while pending, then queues
    done = world.as_("alice", "POST", f"/deployments/{d}/monitoring/accept", json={"reason": "numbers fine"})
    assert done.json()["state"] == "succeeded"
    world.wait_state(third, "monitoring")


ALERTS = "    monitor: {for: 1m, interval: 1s, min_requests: 10, alerts: {alertmanager: true}}\n"


@pytest.fixture
def alerting(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, ALERTS)


@pytest.mark.sqlite_only  # policy or monitoring rules; the store tests cover their database work on PostgreSQL
def test_an_alertmanager_alert_firing_during_the_window_rolls_back_whatever_the_traffic(alerting: World) -> None:
    w = alerting
    d = _second_release(w)
    fire_alert(w)
    done = w.server.wait_finished(d, timeout=30)
    assert done["state"] == "rolled_back", done
    assert "alert CheckoutDown" in done["reason"] and "v0.1.0 restored and serving" in done["reason"], done["reason"]


def fire_alert(w: World) -> None:
    """Alertmanager's webhook: CheckoutDown for shop in production, firing since now."""
    reporter = make_token(w.server.database_url, "alertmanager", ["reporter"])
    started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = {
        "receiver": "conveyor",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "CheckoutDown", "service": "shop", "environment": "production"},
                "annotations": {"summary": "checkout answers 503"},
                "startsAt": started,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "0011223344556677",
            }
        ],
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}",
        "truncatedAlerts": 0,
    }
    sent = httpx.post(
        w.server.url + "/api/v1/alerts/alertmanager",
        json=body,
        headers={"Authorization": f"Bearer {reporter}"},
        timeout=30,
    )
    assert sent.status_code < 300, sent.text


class Hook(HttpReceiver):
    def handle(self, call: Call) -> tuple[int, Any]:
        return 204, ""


@pytest.mark.sqlite_only  # policy or monitoring rules; the store tests cover their database work on PostgreSQL
def test_on_breach_alert_notifies_the_breach_keeps_watching_and_ends_succeeded(
    tmp_path: Path, database_url: str
) -> None:
    hook = Hook().start()
    monitor = (
        "    monitor: {for: 4s, interval: 1s, min_requests: 10, on_breach: alert, alerts: {alertmanager: true}}\n"
        f"    notify: [{{webhook: {{url: '{hook.url}/hook', events: [monitoring_breach]}}}}]\n"
    )
    try:
        for w in make_world(tmp_path, database_url, monitor):
            d = _second_release(w)
            fire_alert(w)
            done = w.server.wait_finished(d, timeout=30)
            assert done["state"] == "succeeded", done
            assert "on_breach: alert kept it" in done["reason"] and "alert CheckoutDown" in done["reason"]
            sent = wait_until(lambda: [c.json for c in hook.calls], timeout=30, what="the breach message")
            assert [m["event"] for m in sent] == ["monitoring_breach"], sent
            assert "Monitoring breach: shop v0.2.0 in production" in sent[0]["text"], sent[0]["text"]
            assert "alert CheckoutDown" in sent[0]["text"] and "alert: recorded, still watching" in sent[0]["text"]
    finally:
        hook.stop()


KILL_FLAGS = (
    "    monitor: {for: 1m, interval: 1s, min_requests: 10, on_breach: kill_flags, alerts: {alertmanager: true}}\n"
)


@pytest.fixture
def killing(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, KILL_FLAGS)


@pytest.mark.sqlite_only  # policy or monitoring rules; the store tests cover their database work on PostgreSQL
def test_kill_flags_kills_the_flag_turned_on_during_the_window_then_judges_again(killing: World) -> None:
    w = killing
    w.server.ok("POST", "/flags", json={"key": "new-checkout", "service": "shop"})
    d = _second_release(w)
    w.server.ok("POST", "/flags/new-checkout/environments/production/on")
    fire_alert(w)  # still firing after the kill: the next interval breaches again, so the code goes back
    done = w.server.wait_finished(d, timeout=30)
    assert done["state"] == "rolled_back", done
    assert "flags changed meanwhile: new-checkout (enabled by alice)" in done["reason"], done["reason"]
    assert "killed new-checkout first, still breaching" in done["reason"], done["reason"]
    view = w.server.ok("GET", f"/deployments/{d}/monitoring")
    assert view["monitoring"]["killed_flags"] == ["new-checkout"]
    entries = w.server.ok("GET", "/audit", params={"limit": 100})["entries"]
    killed = [e for e in entries if e["action"] == "flag.killed"]
    assert [e["actor"] for e in killed] == ["conveyor"], killed


def test_cancel_during_monitoring_puts_the_previous_release_back(world: World) -> None:
    d = _second_release(world)
    world.server.ok("POST", f"/deployments/{d}/cancel")
    done = world.server.wait_finished(d, timeout=30)
    assert done["state"] == "cancelled", done
    assert done["reason"] == "cancelled during monitoring; v0.1.0 restored and serving", done["reason"]
    assert effects(world.effects)[-1].startswith("rollback production v0.1.0"), effects(world.effects)[-3:]


SMOKE_EVERY = "    monitor: {for: 1m, interval: 1s, min_requests: 10, smoke_every: 2s}\n"


@pytest.fixture
def smoking(tmp_path: Path, database_url: str) -> Iterator[World]:
    yield from make_world(tmp_path, database_url, SMOKE_EVERY)


@pytest.mark.sqlite_only  # policy or monitoring rules; the store tests cover their database work on PostgreSQL
def test_smoke_every_runs_the_smoke_test_again_and_a_failure_rolls_back(smoking: World) -> None:
    w = smoking
    d = _second_release(w)
    wait_until(
        lambda: (
            any(line == "smoke done production v0.2.0" for line in effects(w.effects)[-3:])
            and effects(w.effects).count("smoke done production v0.2.0") >= 2
        ),
        timeout=30,
        what="the smoke test run again during monitoring",
    )
    (w.effects / "fail-smoke").write_text("")
    done = w.server.wait_finished(d, timeout=30)
    assert done["state"] == "rolled_back", done
    assert "smoke test" in done["reason"] and "exited with code 7" in done["reason"], done["reason"]
    assert "v0.1.0 restored and serving" in done["reason"]


DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_documented_monitor_examples_are_valid_as_written() -> None:
    from conveyor.spec import parse_spec

    guide = (DOCS / "monitoring.md").read_text()
    environments = re.search(r"## Monitoring in the deployment\n\n.*?```yaml\n(.*?)```", guide, re.S)
    assert environments is not None
    spec = parse_spec("service: shop\nrun: python3 app.py\n" + environments.group(1))
    monitor = spec.environment("production").monitor
    assert monitor is not None and (monitor.for_, monitor.interval, monitor.smoke_every) == (1800.0, 10.0, 300.0)
    reference = (DOCS / "conveyor-yml.md").read_text()
    section = reference[reference.index("### `monitor`") :]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)[:2]
    for block in blocks:  # each a monitor: mapping, under an environment
        indented = "".join(f"    {line}\n" for line in block.splitlines())
        text = (
            f"service: shop\nrun: x\nenvironments:\n  production:\n    target: {{kind: local, port: 8003}}\n{indented}"
        )
        assert parse_spec(text).environment("production").monitor is not None

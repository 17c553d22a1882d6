"""Failures and rollbacks are told; a receiver down for a minute gets every message afterwards,
once; a Slack that answers after 10 s does not slow a rollout; a notifier Conveyor does not know
is refused by `conveyor validate` at its line and column."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import SCRIPTS, commit
from tests.notify.world import World, make_world


def test_failed_and_rolled_back_deploys_say_so(world: World) -> None:
    ok = world.deploy("staging")
    assert world.server.wait_finished(ok["id"])["state"] == "succeeded"
    commit(world.repo, {"app.txt": "version two\n"}, "Version two")
    (world.effects / "fail-smoke").write_text("")
    smoke = world.deploy("staging")
    assert world.server.wait_finished(smoke["id"])["state"] == "rolled_back"
    (world.effects / "fail-smoke").unlink()
    (world.effects / "fail-rollout").write_text("")
    broken = world.deploy("staging")
    assert world.server.wait_finished(broken["id"])["state"] == "failed"
    world.all_delivered()
    assert world.slack.problems == []
    texts = [text for kind, _, text in world.slack.log() if kind == "webhook"]
    rolled = next(t for t in texts if t.startswith("↩️"))
    head = rolled.splitlines()[0]
    assert head.startswith("↩️ Rolled back: shop in staging: ") and head.endswith(" serves again"), head
    assert world.server.deployment(smoke["id"])["version"] in head
    assert "- Why: smoke: `./scripts/step.sh smoke` exited" in rolled
    assert "- By: Conveyor, by itself (smoke failed)" in rolled
    failed = next(t for t in texts if t.startswith("❌"))
    lines = failed.splitlines()
    assert lines[0] == f"❌ Deployment failed: shop {world.server.deployment(broken['id'])['version']} to staging"
    assert lines[1].startswith("- Failed step: rollout: ")
    assert "rollout failing on purpose" in failed  # the last lines of its output
    assert "- Deployed by: <@U0ALICE>" in failed
    # one message per event through the incoming webhook: requested, started, each step, the outcome
    firsts = [t.split(":")[0] for t in texts]
    assert firsts.count("🚀 Deployment requested") == 3 and firsts.count("✅ Deployment complete") == 1


@pytest.mark.slow
def test_receiver_down_for_a_minute_gets_every_message_afterwards_once(world: World) -> None:
    world.slack.stop()
    down_at = time.monotonic()
    d = world.deploy("staging")
    assert world.server.wait_finished(d["id"])["state"] == "succeeded"
    wait_until(lambda: world.deliveries(d["id"])[0].attempts >= 2, what="retries while it is down")
    assert world.slack.calls == []
    # the outage lasts a minute in all (the deployment did not wait for it)
    wait_until(lambda: time.monotonic() - down_at >= 60, timeout=75, what="a minute of outage")
    world.slack.start()
    rows = world.all_delivered(timeout=30)
    texts = [text for _, _, text in world.slack.log()]
    assert len(texts) == len(rows) == len(set(texts)) == 7  # requested, started, 4 steps, complete: once each
    assert texts[0].startswith("🚀 Deployment requested") and texts[-1].startswith("✅ Deployment complete")
    assert all(r.attempts > 1 for r in rows[:1])


def test_a_slack_answering_after_10s_does_not_slow_the_rollout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = '- slack: {token: "${T_SLACK_TOKEN}", channel: "#deployments"}\n'
    gen = make_world(tmp_path, monkeypatch, production_notify=bot, staging_notify="[]\n")
    world = next(gen)
    try:
        slow = "#!/bin/sh\nsleep 1\n" + SCRIPTS["scripts/deploy.sh"].removeprefix("#!/bin/sh\n")
        commit(world.repo, {"scripts/deploy.sh": slow}, "A rollout that takes a second")
        world.slack.delay = 10.0

        def timed(environment: str) -> tuple[float, dict]:
            d = world.deploy(environment)
            if environment == "production":
                wait_until(lambda: world.server.deployment(d["id"])["gates"], what="gates")
                world.as_("ron", "POST", f"/deployments/{d['id']}/approvals", json={})
            done = world.server.wait_finished(d["id"])
            steps = {s["name"]: s for s in done["steps"]}
            return _seconds(steps["rollout"]), done

        quiet_rollout, quiet = timed("staging")  # staging notifies nobody
        loud_rollout, loud = timed("production")  # production tells a Slack that takes 10 s per call
        assert quiet["state"] == loud["state"] == "succeeded"
        ratio = loud_rollout / quiet_rollout
        print(f"rollout: {loud_rollout:.3f}s with a 10 s Slack, {quiet_rollout:.3f}s without: ratio {ratio:.2f}")
        assert ratio < 1.5, (loud_rollout, quiet_rollout)
        # Slack was being called while the rollout ran, and had not answered when the deployment ended
        first = wait_until(lambda: world.slack.calls[:1] or None, timeout=30, what="Slack to answer once")[0]
        assert first.answered_at - first.at >= 10
    finally:
        gen.close()


def _seconds(step: dict) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(step["started_at"])).total_seconds()


def test_an_unknown_notifier_is_refused_at_its_line_and_column(tmp_path: Path) -> None:
    spec = tmp_path / "conveyor.yml"
    spec.write_text(
        "service: shop\nenvironments:\n  production:\n    target: {kind: command, deploy: ./d.sh}\n"
        "    notify: [{pigeon: coo}]\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "conveyor", "validate", str(spec)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert f"{spec}:5:15: unknown key 'pigeon' in environments.production.notify[0]" in out.stdout + out.stderr

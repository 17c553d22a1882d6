"""`conveyor notify test ENV` sends a sample through every notifier of the environment, for whoever
may deploy there (a lower role is refused, audited, and nothing is sent); `conveyor logs ID`
lists a deployment's messages and what became of each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from tests.notify.world import World

from conveyor.auth.users import add_user, create_token
from conveyor.store.tables import audit_log


def conveyor(world: World, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVEYOR_URL": world.server.url, "CONVEYOR_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "conveyor", *args], env=env, capture_output=True, text=True)


def test_a_sample_goes_through_every_notifier_and_a_lower_role_is_refused(world: World) -> None:
    now = datetime.now(UTC)
    with world.db.begin() as conn:
        reporter = create_token(conn, add_user(conn, "rex", ["reporter"], now), now)
    refused = httpx.post(
        world.server.url + "/api/v1/environments/production/notify/test",
        json={},
        headers={"Authorization": f"Bearer {reporter}"},
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    assert "may not send notifications for production" in refused.json()["message"]
    assert world.slack.log() == []  # nothing was sent for the refused request
    with world.db.read() as conn:
        entry = conn.execute(select(audit_log).where(audit_log.c.action == "forbidden")).all()[-1]
    assert (entry.actor, entry.details["attempted"]) == ("rex", "notify.test")

    done = conveyor(world, world.tokens["ron"], "notify", "test", "production", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["service"], answer["environment"]) == ("shop", "production")
    assert [(r["notifier"], r["ok"]) for r in answer["results"]] == [
        ("slack", True),
        ("github", True),
        ("email", True),
        ("webhook", True),
    ], answer
    assert [kind for kind, _, _ in world.slack.log()] != []  # the sample reached the Slack receiver
    assert world.slack.problems == []
    with world.db.read() as conn:
        sent = conn.execute(select(audit_log).where(audit_log.c.action == "notify.test")).all()
    assert [(e.actor, e.subject) for e in sent] == [("ron", "shop/production")]

    human = conveyor(world, world.tokens["ron"], "notify", "test", "production")
    assert human.returncode == 0, human.stderr
    assert "sent slack" in human.stdout and "sent webhook" in human.stdout


def test_logs_list_each_message_of_a_deployment(world: World) -> None:
    d = world.deploy("staging")
    assert world.server.wait_finished(d["id"])["state"] == "succeeded"
    rows = world.all_delivered()
    out = conveyor(world, world.tokens["alice"], "logs", d["id"])
    assert out.returncode == 0, out.stderr
    assert "── notifications" in out.stdout
    listed = [line for line in out.stdout.splitlines() if line.startswith("   slack ")]
    assert len(listed) == len([r for r in rows if r.deployment_id == d["id"]]) > 0
    assert all(": delivered" in line for line in listed), listed
    as_json = json.loads(conveyor(world, world.tokens["alice"], "logs", d["id"], "--json").stdout)
    assert {n["state"] for n in as_json["notifications"]} == {"delivered"}

"""A service's own templates (`templates:` in its conveyor.yml) are what receivers get: the
completion template of docs/notifications.md, as written there, through Slack's thread and a
signed webhook; a `summary` for the Slack message updated in place; and a template naming a value
that does not exist fails its deliveries at once, with the error, while the rest go out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import wait_until
from tests.e2e.harness import commit
from tests.notify.world import World, make_world

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
STAGING_NOTIFY = """\
- slack: {token: "${T_SLACK_TOKEN}", channel: "#deployments"}
- webhook: {url: "WEBHOOK_URL", secret: "${T_HOOK_SECRET}", events: [started, succeeded]}
"""


def documented_templates() -> str:
    """The `templates:` example of docs/notifications.md."""
    found = [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S) if b.startswith("templates:")]
    assert len(found) == 1, found
    return str(found[0])


@pytest.fixture
def own_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    tail = documented_templates()
    tail += '  summary: "{{ state_mark }} {{ service }} in {{ environment }}: {{ state_words }}"\n'
    tail += '  started: "{{ no_such_value }} started"\n'
    yield from make_world(tmp_path, monkeypatch, production_notify="[]\n", staging_notify=STAGING_NOTIFY, tail=tail)


def test_a_services_own_templates_are_what_the_receivers_get(own_templates: World) -> None:
    world = own_templates
    commit(world.repo, {"search.txt": "search\n"}, "Add search (#12)")
    d = world.deploy("staging")
    assert world.server.wait_finished(d["id"])["state"] == "succeeded"

    def settled() -> list | None:
        rows = world.deliveries(d["id"])
        done = [r for r in rows if r.event == "succeeded" and r.state != "pending"]
        return rows if len(done) == 2 and all(r.state != "pending" for r in rows) else None

    rows = wait_until(settled, what="every message of the deployment sent or failed")
    release = world.server.deployment(d["id"])["version"]  # staging makes no tag: its version names the commit

    # the documented completion template, written for each notifier
    slack = [text for kind, thread, text in world.slack.log() if kind == "post" and thread is not None]
    assert slack == [f":rocket: shop {release} is live in staging (<@U0ALICE>)\n• Initial service\n• Add search"]
    (hook,) = [c.json for c in world.hooks.calls]
    assert hook["event"] == "succeeded"
    assert hook["text"] == f":rocket: shop {release} is live in staging (@alice)\n• Initial service\n• Add search"
    # the service's summary is the Slack message, updated in place to the end
    (top,) = [m for m in world.slack.messages.values() if "thread_ts" not in m]
    assert top["text"].startswith("✅ shop in staging: succeeded in "), top

    # a template naming a value that does not exist: its deliveries fail at once, the others go out
    failed = [(r.notifier, r.event, r.state, r.attempts) for r in rows if r.state != "delivered"]
    assert failed == [("slack", "started", "failed", 1), ("webhook", "started", "failed", 1)]
    error = next(r.last_error for r in rows if r.state == "failed")
    assert error == "refused: the started template: UndefinedError: 'no_such_value' is undefined", error
    assert world.slack.problems == [] and world.hooks.problems == []

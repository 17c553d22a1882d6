"""A deployment whose very first step cannot run (here: a pushed commit the repository does not
have) fails with the reason; it never stays queued."""

from __future__ import annotations

from tests.conftest import wait_until
from tests.e2e.test_webhooks import HookWorld, deliver, encode, hooks, push_payload  # noqa: F401

MISSING = "1234567" * 5 + "89abc"


def test_a_deployment_that_cannot_start_fails_with_its_reason(hooks: HookWorld) -> None:  # noqa: F811
    server = hooks.server
    before = server.deployments("development")[0]
    response = deliver(server, encode(push_payload(hooks.repo, "refs/heads/develop", before["sha"], MISSING)))
    assert response.status_code == 202, response.text
    [started] = response.json()["deployments"]
    assert started["sha"] == MISSING

    def finished() -> dict[str, object] | None:
        d: dict[str, object] = server.ok("GET", f"/deployments/{started['id']}")
        return d if d["state"] not in ("pending", "queued", "running") else None

    done = wait_until(finished, timeout=60, what="the deployment of a missing commit to finish")
    assert done["state"] == "failed", done
    assert "could not start" in str(done["reason"]) and MISSING in str(done["reason"])
    # the environment keeps serving what it served, and the next push deploys normally
    assert server.ok("GET", "/status", params={"environment": "development"})[0]["current"]["sha"] == before["sha"]

"""The release invariant: after any deployment ends, the environment serves a release that was
built, passed its health checks, and is recorded as serving.

Checked over every step a deployment runs in a worktree or on the agent (prepare, migrate, rollout,
smoke) and every way it can end: success, failure in that step, cancel during that step, and SIGKILL
of the server during that step followed by a restart. Rollbacks are deployments too: a warm
rollback's only step that runs a command is smoke, so it is checked there.

"Serves" is checked through the router: GET / answers 200 with the build content (built.txt, which
only the build writes) of the release the server records as serving, on every replica, and the
agent's instances of that release are all ready. One server and one service are shared by every
case, in order: each case deploys a new commit on top of whatever the previous one left serving.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.e2e.rollback_world import Site, start_site, stop_site

STEPS = ["prepare", "migrate", "rollout", "smoke"]
CASES = [("deploy", "-", "success")]
CASES += [("deploy", step, ending) for step in STEPS for ending in ("fail", "cancel", "kill")]
CASES += [("rollback", "-", "success")]
CASES += [("rollback", "smoke", ending) for ending in ("fail", "cancel", "kill")]
# with `quick_rollback: 0s` nothing is kept warm: the ways to end that put the previous release back
COLD_CASES = [("deploy", "smoke", "fail"), ("deploy", "smoke", "cancel"), ("rollback", "-", "success")]
COLD_CASES += [("rollback", "smoke", "fail")]


def shared_site(tmp_path_factory: pytest.TempPathFactory, quick_rollback: str) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("invariant")
    # a child-process server: the cases SIGKILL it in the middle of a step
    site = start_site(
        root, f"sqlite:///{root / 'c.db'}", quick_rollback=quick_rollback, health_timeout="10s", process=True
    )
    try:
        first = site.deploy()
        assert first["state"] == "succeeded", site.explain(first)
        yield site
    finally:
        stop_site(site)


@pytest.fixture(scope="module")
def warm_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from shared_site(tmp_path_factory, "15m")


@pytest.fixture(scope="module")
def cold_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from shared_site(tmp_path_factory, "0s")


@contextmanager
def clean(site: Site) -> Iterator[Site]:
    """Each case starts with no hold or fail switch and an empty effects log, and leaves nothing running."""
    log = site.control / "effects.log"
    log.write_text("")
    try:
        yield site
    finally:
        cleanup(site)


def cleanup(site: Site) -> None:
    release_switches(site)
    if site.server.proc is None or site.server.proc.poll() is not None:
        site.server.start()
    for d in site.server.deployments("production"):
        if d["state"] not in {"succeeded", "failed", "rolled_back", "cancelled"}:
            site.server.api("POST", f"/deployments/{d['id']}/cancel")
            site.server.wait_finished(d["id"], timeout=120)


def release_switches(site: Site) -> None:
    for path in site.control.iterdir():
        if path.name != "effects.log":
            path.unlink()


def started(site: Site, step: str, sha: str) -> bool:
    log = site.control / "effects.log"
    return f"{step} start {sha}" in log.read_text().splitlines()


def wait_in_step(site: Site, deployment: dict[str, Any], step: str, sha: str) -> None:
    """Until the deployment is inside ``step`` (held there by the test), or it has ended."""

    def inside() -> bool:
        if site.finished(deployment["id"]):
            return True
        if step == "rollout":
            steps = {s["name"]: s["state"] for s in site.server.deployment(deployment["id"])["steps"]}
            return steps.get("rollout") == "running"
        return started(site, step, sha)

    wait_until(inside, timeout=120, what=f"deployment {deployment['id']} to reach {step}")


@pytest.mark.parametrize(("kind", "step", "ending"), CASES, ids=["-".join(c) for c in CASES])
def test_after_a_deployment_ends_the_environment_serves_what_is_recorded(
    warm_site: Site, kind: str, step: str, ending: str
) -> None:
    with clean(warm_site):
        run_case(warm_site, kind, step, ending)


@pytest.mark.parametrize(("kind", "step", "ending"), COLD_CASES, ids=["-".join(c) for c in COLD_CASES])
def test_with_nothing_kept_warm_the_environment_serves_what_is_recorded(
    cold_site: Site, kind: str, step: str, ending: str
) -> None:
    with clean(cold_site):
        run_case(cold_site, kind, step, ending)


def run_case(site: Site, kind: str, step: str, ending: str) -> None:
    """End one deployment (``kind``) in ``step`` the way ``ending`` says, then check the invariant."""
    new = site.release(f"{kind} {step} {ending}")
    if kind == "rollback":  # the release to go back to is the one serving now; the new one goes first
        target = site.recorded()
        forward = site.deploy()
        assert forward["state"] == "succeeded", site.explain(forward)
        sha_in_step = target["sha"]
    else:
        target = {"sha": new}
        sha_in_step = new
    before = site.recorded()

    switch = {"fail": "fail", "cancel": "hold", "kill": "hold"}.get(ending)
    if switch and step == "rollout":
        (site.control / f"unhealthy-{sha_in_step}").touch()  # never healthy: holds, then fails, the rollout
    elif switch:
        (site.control / f"{switch}-{step}").touch()

    d = site.start_rollback() if kind == "rollback" else site.start_deploy()
    reached = True
    if ending in ("cancel", "kill"):
        wait_in_step(site, d, step, sha_in_step)
        reached = not site.finished(d["id"])
        if reached and ending == "cancel":
            site.server.ok("POST", f"/deployments/{d['id']}/cancel")  # the hold stays until it ends
        elif reached:
            site.server.kill()  # the step's process (or the agent's operation) goes on without it
            release_switches(site)
            site.server.start()
    final = site.server.wait_finished(d["id"], timeout=180)
    release_switches(site)

    # the invariant, whatever the deployment's outcome
    site.serves_what_is_recorded()

    # and the outcome each way of ending should have
    assert reached, f"the deployment ended before its {step} step could be interrupted: {site.explain(final)}"
    recorded = site.recorded()
    if ending in ("success", "kill"):
        assert final["state"] == "succeeded", site.explain(final)
        assert recorded["sha"] == target["sha"], recorded
    else:
        expected = {"cancel": {"cancelled"}, "fail": {"failed", "rolled_back"}}[ending]
        assert final["state"] in expected, site.explain(final)
        assert recorded["sha"] == before["sha"], f"{before} was serving, now {recorded}: {site.explain(final)}"

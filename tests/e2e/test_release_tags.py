"""Release tags claim production only for what served there: a production deployment that failed
(in migrate, in a rollout whose release never became healthy, in smoke) or was cancelled while
running leaves no tag in the git repository; one that succeeded has its vX.Y.Z tag, and the serving
version shown by `conveyor status --json` is that tag, in every environment running the commit,
never `git describe` output such as v0.1.0-2-gf4357a2.

One server and one service are shared by the cases, in order; each deploys a new commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import wait_until
from tests.e2e.rollback_world import Site, start_site, stop_site

RELEASE_TAG = re.compile(r"v\d+\.\d+\.\d+")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("tags")
    site = start_site(root, f"sqlite:///{root / 'c.db'}", staging=True, health_timeout="10s")
    try:
        first = site.deploy()
        assert first["state"] == "succeeded" and first["version"] == "v0.1.0", site.explain(first)
        yield site
    finally:
        stop_site(site)


@pytest.fixture
def clean(site: Site) -> Iterator[Site]:
    yield site
    for path in site.control.iterdir():
        path.unlink()
    for d in site.server.deployments():
        if d["state"] not in {"succeeded", "failed", "rolled_back", "cancelled"}:
            site.server.api("POST", f"/deployments/{d['id']}/cancel")
            site.server.wait_finished(d["id"], timeout=120)


def assert_only_succeeded_releases_are_tagged(site: Site) -> None:
    production = site.server.deployments("production")
    succeeded = {d["version"] for d in production if d["state"] == "succeeded" and d["kind"] == "deploy"}
    assert sorted(site.tags()) == sorted(succeeded), f"tags {site.tags()}, succeeded production releases {succeeded}"


def assert_untagged(site: Site, sha: str, final: dict[str, Any]) -> None:
    assert site.tags_at(sha) == [], (
        f"the {final['state']} production deployment of {sha[:12]} left tags {site.tags_at(sha)}: {site.explain(final)}"
    )


@pytest.mark.parametrize("how", ["migrate", "rollout", "smoke"])
def test_a_failed_production_deployment_leaves_no_tag(clean: Site, how: str) -> None:
    site = clean
    sha = site.release(f"fails in {how}")
    if how == "rollout":
        (site.control / f"unhealthy-{sha}").touch()  # its instances never pass their health checks
    else:
        (site.control / f"fail-{how}").touch()
    final = site.deploy()
    assert final["state"] in {"failed", "rolled_back"}, site.explain(final)
    assert_untagged(site, sha, final)
    assert_only_succeeded_releases_are_tagged(site)


@pytest.mark.parametrize("step", ["migrate", "rollout"])
def test_a_production_deployment_cancelled_while_running_leaves_no_tag(clean: Site, step: str) -> None:
    site = clean
    sha = site.release(f"cancelled in {step}")
    hold = site.control / (f"unhealthy-{sha}" if step == "rollout" else f"hold-{step}")
    hold.touch()
    d = site.start_deploy()

    def inside() -> bool:
        steps = {s["name"]: s["state"] for s in site.server.deployment(d["id"])["steps"]}
        return steps.get(step) == "running"

    wait_until(inside, timeout=120, what=f"the deployment to run {step}")
    site.server.ok("POST", f"/deployments/{d['id']}/cancel")
    final = site.server.wait_finished(d["id"], timeout=120)
    hold.unlink()
    assert final["state"] == "cancelled", site.explain(final)
    assert_untagged(site, sha, final)
    assert_only_succeeded_releases_are_tagged(site)


def test_a_succeeded_deployment_is_tagged_and_shown_by_its_tag(clean: Site) -> None:
    site = clean
    sha = site.release("ships")
    staged = site.deploy("staging")  # before production tags the commit, as a branch deploy would
    assert staged["state"] == "succeeded", site.explain(staged)
    final = site.deploy()
    assert final["state"] == "succeeded", site.explain(final)
    tags = site.tags_at(sha)
    assert tags == [final["version"]] and RELEASE_TAG.fullmatch(tags[0]), (tags, final["version"])
    for env in ("production", "staging"):
        current = site.cli_status(env)["current"]
        assert current["sha"] == sha, current
        assert current["version"] == tags[0], f"conveyor status --json shows {current['version']!r} in {env}"
    assert_only_succeeded_releases_are_tagged(site)

"""The foundation end to end, with real git repositories and a real server process:
auto-deploys from develop and main, tagged production releases, rollback, ordering, failures."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from tests.conftest import wait_until
from tests.e2e.conftest import World
from tests.e2e.harness import commit, effects, git


def add_service(world: World) -> dict[str, Any]:
    result: dict[str, Any] = world.server.ok("POST", "/services", json={"source": str(world.repo)})
    return result


def serving(world: World, env: str) -> str:
    path = world.effects / f"serving-{env}"
    return path.read_text().split()[1] if path.exists() else ""


def latest(world: World, env: str) -> dict[str, Any] | None:
    found = world.server.deployments(env)
    return found[0] if found else None


def test_adding_a_service_deploys_followed_branches(world: World) -> None:
    added = add_service(world)
    assert added["service"] == "shop"
    # the add and the poller race to see the heads first; either way each deploys once
    by_env = wait_until(
        lambda: len(x := {d["environment"]: d for d in world.server.deployments()}) >= 2 and x,
        what="both followed branches deployed",
    )
    assert set(by_env) == {"development", "staging"}  # production is not auto_deploy
    for d in by_env.values():
        assert world.server.wait_finished(d["id"])["state"] == "succeeded"
    head = git(world.repo, "rev-parse", "main")
    assert serving(world, "development") == head and serving(world, "staging") == head


def test_push_to_develop_deploys_to_development_without_anyone_acting(world: World) -> None:
    for d in add_service(world)["deployments"]:
        world.server.wait_finished(d["id"])
    git(world.repo, "checkout", "-q", "develop")
    sha = commit(world.repo, {"app.txt": "version two\n"}, "feature")

    def new_deploy() -> dict[str, Any] | None:
        d = latest(world, "development")
        return d if d and d["sha"] == sha else None

    d = wait_until(new_deploy, what="the poller to deploy the new develop head")
    assert d["trigger"] == "poll" and d["actor"] == "conveyor"
    assert world.server.wait_finished(d["id"])["state"] == "succeeded"
    assert serving(world, "development") == sha
    assert serving(world, "staging") != sha  # staging follows main only

    # a merge to main deploys to staging
    git(world.repo, "checkout", "-q", "main")
    git(world.repo, "merge", "-q", "--no-ff", "develop", "-m", "merge develop")
    merged = git(world.repo, "rev-parse", "HEAD")
    d = wait_until(lambda: (x := latest(world, "staging")) and x["sha"] == merged and x, what="staging deploy")
    assert world.server.wait_finished(d["id"])["state"] == "succeeded"
    assert serving(world, "staging") == merged


def test_production_deploys_create_semver_tags_and_rollback_returns_the_previous(world: World) -> None:
    add_service(world)
    first = world.server.ok(
        "POST",
        "/deployments",
        json={"environment": "production", "ref": "main", "notes": "first release", "ticket": "PROJ-1"},
    )
    first = world.server.wait_finished(first["id"])
    assert first["state"] == "succeeded", first
    assert first["version"] == "v0.1.0"
    assert git(world.repo, "rev-list", "-n1", "v0.1.0") == first["sha"]
    assert [s["state"] for s in first["steps"]] == ["succeeded"] * 6
    assert [s["name"] for s in first["steps"]] == ["prepare", "tag", "migrate", "rollout", "smoke", "announce"]

    second_sha = commit(world.repo, {"app.txt": "version two\n"}, "second")
    second = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": second_sha})
    second = world.server.wait_finished(second["id"])
    assert second["state"] == "succeeded" and second["version"] == "v0.2.0"
    assert git(world.repo, "rev-list", "-n1", "v0.2.0") == second_sha
    assert serving(world, "production") == second_sha

    back = world.server.ok("POST", "/rollbacks", json={"environment": "production"})
    back = world.server.wait_finished(back["id"])
    assert back["state"] == "succeeded" and back["kind"] == "rollback"
    assert back["version"] == "v0.1.0"
    assert serving(world, "production") == first["sha"]
    assert "rollback production v0.1.0 from v0.2.0" in effects(world.effects)
    status = world.server.ok("GET", "/status", params={"environment": "production"})
    assert status[0]["current"]["version"] == "v0.1.0"
    assert httpx.get(world.server.url + "/metrics").status_code == 401  # scraping needs a token
    auth = {"Authorization": f"Bearer {world.server.token}"}
    metrics = httpx.get(world.server.url + "/metrics", headers=auth).text
    assert 'conveyor_deployments{environment="production",service="shop",state="succeeded"} 3.0' in metrics
    # no new tag was made by the rollback, and migrations did not run for it
    assert git(world.repo, "tag", "--list", "v*").split() == ["v0.1.0", "v0.2.0"]


def test_concurrent_requests_queue_in_order(world: World) -> None:
    add_service(world)
    shas = [commit(world.repo, {"app.txt": f"v{i}\n"}, f"c{i}") for i in range(3)]
    (world.effects / "hold-rollout").touch()
    ids = [world.server.ok("POST", "/deployments", json={"environment": "production", "ref": s})["id"] for s in shas]
    wait_until(lambda: world.server.deployment(ids[0])["state"] == "running", what="first to run")
    # each passes its gates (pending) and then waits behind the first, held in its rollout
    wait_until(
        lambda: [world.server.deployment(i)["state"] for i in ids[1:]] == ["queued", "queued"],
        what="the other two queued behind the first",
    )
    assert world.server.deployment(ids[0])["state"] == "running"
    (world.effects / "hold-rollout").unlink()
    done = [world.server.wait_finished(i) for i in ids]
    assert [d["state"] for d in done] == ["succeeded"] * 3
    assert [d["version"] for d in done] == ["v0.1.0", "v0.2.0", "v0.3.0"]
    for before, after in itertools.pairwise(done):
        assert before["finished_at"] <= after["started_at"]  # one at a time, in request order
    assert serving(world, "production") == shas[-1]


def test_an_older_commit_never_runs_over_a_newer_one(world: World) -> None:
    add_service(world)
    old = git(world.repo, "rev-parse", "HEAD")
    new = commit(world.repo, {"app.txt": "new\n"}, "new")
    d = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": new})
    assert world.server.wait_finished(d["id"])["state"] == "succeeded"
    # `why` and the request agree, before anything is queued: the same sentence, and nothing recorded
    why = world.server.api("GET", "/why", params={"environment": "production", "ref": old}).json()
    blocked = [g for g in why["gates"] if not g["passed"]]
    assert [g["gate"] for g in blocked] == ["history"] and "superseded" in blocked[0]["reason"]
    before = len(world.server.deployments("production"))
    stale = world.server.api("POST", "/deployments", json={"environment": "production", "ref": old})
    assert stale.status_code == 409 and stale.json()["message"] == blocked[0]["reason"]
    assert len(world.server.deployments("production")) == before
    assert serving(world, "production") == new


def test_a_failed_step_leaves_the_previous_release_serving(world: World) -> None:
    add_service(world)
    good = world.server.wait_finished(
        world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})["id"]
    )
    commit(world.repo, {"app.txt": "broken\n"}, "broken")
    (world.effects / "fail-migrate").touch()
    bad = world.server.wait_finished(
        world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})["id"]
    )
    assert bad["state"] == "failed"
    assert "migrate" in bad["reason"] and "exited with code 7" in bad["reason"]
    assert [s["state"] for s in bad["steps"]] == ["succeeded", "succeeded", "failed", "skipped", "skipped", "skipped"]
    assert serving(world, "production") == good["sha"]

    # a failing smoke test after rollout puts the previous release back
    (world.effects / "fail-migrate").unlink()
    (world.effects / "fail-smoke").touch()
    smoked = world.server.wait_finished(
        world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})["id"]
    )
    assert smoked["state"] == "rolled_back", smoked
    assert f"{good['version']} restored" in smoked["reason"]
    assert serving(world, "production") == good["sha"]
    status = world.server.ok("GET", "/status", params={"environment": "production"})
    assert status[0]["current"]["version"] == good["version"]


def test_cancel_while_queued_and_while_running(world: World) -> None:
    add_service(world)
    base = world.server.wait_finished(
        world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})["id"]
    )
    commit(world.repo, {"app.txt": "x\n"}, "x")
    (world.effects / "hold-rollout").touch()
    before = len(effects(world.effects))
    running = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
    queued = world.server.ok("POST", "/deployments", json={"environment": "production", "ref": "main"})
    # the new commit also deploys itself to staging meanwhile: look at every effect since the requests
    wait_until(
        lambda: any(e.startswith("rollout start production") for e in effects(world.effects)[before:]),
        what="rollout to start",
    )
    assert world.server.ok("POST", f"/deployments/{queued['id']}/cancel")["state"] == "cancelled"
    world.server.ok("POST", f"/deployments/{running['id']}/cancel")
    done = world.server.wait_finished(running["id"])
    assert done["state"] == "cancelled"
    assert serving(world, "production") == base["sha"]  # the previous release was put back
    assert world.server.deployment(queued["id"])["steps"][0]["state"] == "cancelled"
    assert world.server.api("POST", f"/deployments/{running['id']}/cancel").status_code == 409


def test_bad_input_changes_nothing(world: World) -> None:
    add_service(world)
    # adding the service deploys its followed branches (development, staging) in the background:
    # count once both are there, so that only what the bad requests might add is compared
    before = len(wait_until(lambda: found if len(found := world.server.deployments()) >= 2 else None))
    r = world.server.api("POST", "/deployments", json={"environment": "production", "ref": "no-such-branch"})
    assert r.status_code == 400 and "no-such-branch" in r.json()["message"]
    r = world.server.api("POST", "/deployments", json={"environment": "prod", "ref": "main"})
    assert r.status_code == 404 and "prod" in r.json()["message"]
    r = world.server.api("POST", "/deployments", json={"environment": "production", "ref": "--upload-pack=x"})
    assert r.status_code == 400
    r = world.server.api(
        "POST",
        "/deployments",
        headers={"Authorization": "Bearer nope"},
        json={"environment": "production", "ref": "main"},
    )
    assert r.status_code == 401
    r = world.server.api("POST", "/deployments", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert len(world.server.deployments()) == before

"""GitHub push webhooks end to end: a real server with polling off, so only a signed push
deploys; bad signatures are refused before anything is read or recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.harness import Server, commit, effects, git, make_service_repo

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

SECRET = "It's a Secret to Everybody"
ZERO = "0" * 40


@dataclass
class HookWorld:
    repo: Path
    effects: Path
    server: Server


def start_world(tmp_path: Path, database_url: str, secret: str | None) -> HookWorld:
    effects_dir = tmp_path / "effects"
    repo = make_service_repo(tmp_path / "shop", effects_dir)
    server = Server(home=tmp_path / "home", database_url=database_url, poll_interval=0, webhook_secret=secret)
    server.start()
    try:
        added = server.ok("POST", "/services", json={"source": str(repo)})
        for d in added["deployments"]:  # adding deploys the current heads; let those finish first
            done = server.wait_finished(d["id"])
            assert done["state"] == "succeeded", done
    except BaseException:
        server.stop()
        raise
    return HookWorld(repo, effects_dir, server)


@pytest.fixture
def hooks(tmp_path: Path, database_url: str) -> Iterator[HookWorld]:
    """A service whose develop and main heads are deployed, on a server that takes signed webhooks."""
    world = start_world(tmp_path, database_url, SECRET)
    try:
        yield world
    finally:
        world.server.stop()


def push_payload(repo: Path, ref: str, before: str, after: str, *, pusher: str = "octocat") -> dict[str, Any]:
    """A push event shaped like GitHub's (https://docs.github.com/webhooks/webhook-events-and-payloads#push)."""
    deleted = after == ZERO
    head = None if deleted else git(repo, "log", "-1", "--format=%H%n%s", after).split("\n", 1)
    commit_json = (
        None
        if head is None
        else {
            "id": head[0],
            "tree_id": git(repo, "rev-parse", f"{after}^{{tree}}"),
            "distinct": True,
            "message": head[1],
            "timestamp": "2025-03-04T10:00:00-08:00",
            "url": f"https://github.com/dev/shop/commit/{head[0]}",
            "author": {"name": "Dev", "email": "dev@example.com", "username": pusher},
            "committer": {"name": "Dev", "email": "dev@example.com", "username": pusher},
            "added": [],
            "removed": [],
            "modified": ["app.txt"],
        }
    )
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "created": before == ZERO,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/dev/shop/compare/{before[:12]}...{after[:12]}",
        "commits": [commit_json] if commit_json else [],
        "head_commit": commit_json,
        "repository": {
            "id": 1296269,
            "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": "shop",
            "full_name": "dev/shop",
            "private": True,
            "owner": {"name": "dev", "login": "dev", "id": 583231, "type": "Organization"},
            "html_url": "https://github.com/dev/shop",
            "clone_url": str(repo),
            "ssh_url": "git@github.com:dev/shop.git",
            "git_url": "git://github.com/dev/shop.git",
            "default_branch": "main",
            "master_branch": "main",
            "pushed_at": 1741111200,
        },
        "pusher": {"name": pusher, "email": f"{pusher}@example.com"},
        "sender": {"login": pusher, "id": 1, "type": "User"},
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    server: Server,
    body: bytes,
    *,
    event: str = "push",
    signature: str | None = "auto",
    delivery: str | None = None,
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
    }
    if signature == "auto":
        signature = sign(body)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return httpx.post(server.url + "/api/v1/hooks/github", content=body, headers=headers, timeout=30)


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, indent=2).encode()  # GitHub's formatting is not ours: bytes are what is signed


def audit_count(server: Server) -> int:
    result: int = server.ok("GET", "/audit", params={"limit": 1})["chain"]["entries"]
    return result


def new_develop_commit(world: HookWorld, text: str) -> tuple[str, str]:
    before = git(world.repo, "rev-parse", "develop")
    git(world.repo, "checkout", "-q", "develop")
    after = commit(world.repo, {"app.txt": text}, f"change: {text.strip()}")
    git(world.repo, "checkout", "-q", "main")
    return before, after


def test_a_signed_push_to_develop_deploys_exactly_that_commit(hooks: HookWorld) -> None:
    server = hooks.server
    staging_before = len(server.deployments("staging"))
    before, sha = new_develop_commit(hooks, "version two\n")
    body = encode(push_payload(hooks.repo, "refs/heads/develop", before, sha))

    response = deliver(server, body)
    assert response.status_code == 202, response.text
    started = response.json()["deployments"]
    assert [(d["environment"], d["sha"]) for d in started] == [("development", sha)]

    latest = server.deployments("development")[0]
    assert latest["id"] == started[0]["id"]
    assert latest["trigger"] == "webhook" and latest["actor"] == "octocat"
    done = server.wait_finished(latest["id"])
    assert done["state"] == "succeeded", done
    assert (hooks.effects / "serving-development").read_text().split()[1] == sha
    assert len(server.deployments("staging")) == staging_before  # staging follows main only
    chain = server.ok("GET", "/audit")["chain"]
    assert chain["ok"], chain


def test_bad_signatures_are_refused_and_record_nothing(hooks: HookWorld) -> None:
    server = hooks.server
    before, sha = new_develop_commit(hooks, "version three\n")
    body = encode(push_payload(hooks.repo, "refs/heads/develop", before, sha))
    good = sign(body)
    tampered = body.replace(b'"name": "octocat"', b'"name": "octocau"', 1)
    assert len(tampered) == len(body) and sum(a != b for a, b in zip(body, tampered, strict=True)) == 1
    deployments, audited = len(server.deployments()), audit_count(server)

    refused = {
        "tampered body": deliver(server, tampered, signature=good),
        "missing header": deliver(server, body, signature=None),
        "wrong secret": deliver(server, body, signature=sign(body, "not the secret")),
        "sha1 header": deliver(server, body, signature="sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest()),
        "empty header": deliver(server, body, signature=""),
        "truncated digest": deliver(server, body, signature=good[:-1]),
    }
    for what, response in refused.items():
        assert response.status_code == 401, (what, response.status_code, response.text)
        assert response.json()["error"] == "unauthorized", what
        assert "X-Hub-Signature-256" in response.json()["message"], what
    assert len(server.deployments()) == deployments
    assert audit_count(server) == audited

    # the very same payload, correctly signed, is accepted: the refusals were about the signature
    accepted = deliver(server, body, signature=good)
    assert accepted.status_code == 202, accepted.text
    assert [d["sha"] for d in accepted.json()["deployments"]] == [sha]
    assert server.wait_finished(accepted.json()["deployments"][0]["id"])["state"] == "succeeded"


def test_webhooks_are_refused_when_no_secret_is_configured(tmp_path: Path, database_url: str) -> None:
    world = start_world(tmp_path, database_url, secret=None)
    try:
        server = world.server
        before, sha = new_develop_commit(world, "version four\n")
        body = encode(push_payload(world.repo, "refs/heads/develop", before, sha))
        deployments, audited = len(server.deployments()), audit_count(server)
        for signature in (sign(body), sign(body, ""), None):
            response = deliver(server, body, signature=signature)
            assert response.status_code == 401, response.text
            assert "CONVEYOR_GITHUB_WEBHOOK_SECRET" in response.text
        assert len(server.deployments()) == deployments
        assert audit_count(server) == audited
    finally:
        world.server.stop()


def test_a_push_delivered_twice_deploys_once(hooks: HookWorld) -> None:
    server = hooks.server
    before, sha = new_develop_commit(hooks, "version five\n")
    body = encode(push_payload(hooks.repo, "refs/heads/develop", before, sha))
    delivery = str(uuid.uuid4())
    first = deliver(server, body, delivery=delivery)
    again = deliver(server, body, delivery=delivery)  # GitHub's "Redeliver" sends the same id and body
    assert first.status_code == again.status_code == 202
    assert len(first.json()["deployments"]) == 1 and again.json()["deployments"] == []
    assert [d["sha"] for d in server.deployments("development")].count(sha) == 1

    # the next push arriving several times at once (retries racing each other) still deploys once
    before, newer = new_develop_commit(hooks, "version six\n")
    body = encode(push_payload(hooks.repo, "refs/heads/develop", before, newer))
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: deliver(server, body), range(4)))
    assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
    assert sum(len(r.json()["deployments"]) for r in responses) == 1
    assert [d["sha"] for d in server.deployments("development")].count(newer) == 1
    for d in server.deployments("development")[:2]:
        server.wait_finished(d["id"])


def test_ping_tag_pushes_deletions_and_other_branches_deploy_nothing(hooks: HookWorld) -> None:
    server = hooks.server
    deployments, audited = len(server.deployments()), audit_count(server)
    before, sha = new_develop_commit(hooks, "version seven\n")  # not deployed yet: anything may deploy it
    ping = {
        "zen": "Design for failure.",
        "hook_id": 292430182,
        "hook": {"type": "Repository", "id": 292430182, "events": ["push"], "active": True},
        "repository": push_payload(hooks.repo, "refs/heads/develop", before, sha)["repository"],
        "sender": {"login": "octocat", "id": 1},
    }
    response = deliver(server, encode(ping), event="ping")
    assert response.status_code == 202 and response.json()["deployments"] == [], response.text
    assert deliver(server, encode(ping), event="ping", signature=None).status_code == 401

    git(hooks.repo, "tag", "v9.9.9", sha)
    others = {
        "tag push": push_payload(hooks.repo, "refs/tags/v9.9.9", ZERO, sha),
        "branch deletion": push_payload(hooks.repo, "refs/heads/develop", before, ZERO),
        "unfollowed branch": push_payload(hooks.repo, "refs/heads/feature/x", ZERO, sha),
        "another repository": {
            **push_payload(hooks.repo, "refs/heads/develop", before, sha),
            "repository": {
                **push_payload(hooks.repo, "refs/heads/develop", before, sha)["repository"],
                "full_name": "dev/other",
                "html_url": "https://github.com/dev/other",
                "clone_url": str(hooks.repo.parent / "other"),
                "ssh_url": "git@github.com:dev/other.git",
            },
        },
    }
    for what, payload in others.items():
        response = deliver(server, encode(payload))
        assert response.status_code == 202, (what, response.text)
        assert response.json()["deployments"] == [], what
    response = deliver(server, encode(ping), event="issues")  # an event Conveyor does not use
    assert response.status_code == 202 and response.json()["deployments"] == [], response.text
    assert len(server.deployments()) == deployments
    assert audit_count(server) == audited
    assert "version seven" not in " ".join(effects(hooks.effects))

    # and the push of that very commit to develop does deploy: the events above were really ignored
    response = deliver(server, encode(push_payload(hooks.repo, "refs/heads/develop", before, sha)))
    assert [d["sha"] for d in response.json()["deployments"]] == [sha]
    assert server.wait_finished(response.json()["deployments"][0]["id"])["state"] == "succeeded"

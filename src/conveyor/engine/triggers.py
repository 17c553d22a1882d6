"""Automatic deployments: a new head on a followed branch deploys it to every auto_deploy
environment that follows that branch. Heads arrive by GitHub push webhook or by polling
repositories on this host; ``advance_head`` makes sure each new head deploys once, however
many servers or triggers see it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from conveyor.engine.deployments import DeployRequest, request_deployment
from conveyor.errors import ConveyorError
from conveyor.runtime import Runtime
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ServiceRecord
from conveyor.vcs.git import GitRepo
from conveyor.vcs.webhooks import PushEvent

log = logging.getLogger("conveyor.triggers")


def followed_branches(rt: Runtime, service: ServiceRecord) -> dict[str, list[str]]:
    """branch -> the auto_deploy environments that follow it."""
    spec = rt.spec_of(service.config_text)
    out: dict[str, list[str]] = {}
    for name, env in spec.environments.items():
        if env.auto_deploy and env.branch:
            out.setdefault(env.branch, []).append(name)
    return out


def on_new_head(
    rt: Runtime, service: ServiceRecord, branch: str, sha: str, trigger: str, actor: str = "conveyor"
) -> list[DeploymentRecord]:
    environments = followed_branches(rt, service).get(branch, [])
    if not environments:
        return []
    with rt.db.begin() as conn:
        if not service_store.advance_head(conn, service.id, branch, sha, rt.clock.now()):
            return []
    started: list[DeploymentRecord] = []
    for env in environments:
        request = DeployRequest(
            environment=env,
            ref=branch,
            actor=actor,
            service=service.name,
            trigger=trigger,
            sha=sha,
            notes=f"{trigger}: new head of {branch}",
        )
        try:
            started.append(request_deployment(rt, request))
        except ConveyorError as exc:  # e.g. a branch moved back behind what the environment runs
            log.warning("%s: not deploying %s to %s: %s", service.name, sha[:12], env, exc)
    return started


def check_service(rt: Runtime, service: ServiceRecord) -> list[DeploymentRecord]:
    """Look at every followed branch's head now (fetching first for mirrored repositories)."""
    repo = GitRepo(Path(service.repo_path))
    branches = followed_branches(rt, service)
    if branches and service.source != service.repo_path:
        repo.fetch()
    started: list[DeploymentRecord] = []
    for branch in branches:
        head = repo.branch_head(branch)
        if head:
            started += on_new_head(rt, service, branch, head, "poll")
    return started


def _same_repo(source: str, event: PushEvent) -> bool:
    def norm(value: str) -> str:
        value = value.strip().removeprefix("file://").rstrip("/")
        return value.removesuffix(".git").lower()

    candidates = {event.clone_url, event.ssh_url, event.html_url, event.repository}
    wanted = norm(source)
    return any(c and (norm(c) == wanted or wanted.endswith("/" + norm(c))) for c in candidates)


def on_push(rt: Runtime, event: PushEvent) -> list[DeploymentRecord]:
    """A GitHub push: deploy the pushed head where its branch is followed."""
    if event.branch is None or event.deleted:
        return []
    with rt.db.begin() as conn:
        matching = [s for s in service_store.list_services(conn) if _same_repo(s.source, event)]
    started: list[DeploymentRecord] = []
    for service in matching:
        repo = GitRepo(Path(service.repo_path))
        if service.source != service.repo_path:
            repo.fetch()
        sha = repo.resolve(event.after)  # the pushed commit must be in the repository
        started += on_new_head(rt, service, event.branch, sha, "webhook", actor=event.pusher or "github")
    return started


class Poller:
    """Polls followed branches of every service every ``interval`` seconds, in a thread."""

    def __init__(self, rt: Runtime, interval: float) -> None:
        self.rt, self.interval = rt, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-poller", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def poll_once(self) -> None:
        with self.rt.db.begin() as conn:
            all_services = service_store.list_services(conn)
        for service in all_services:
            try:
                check_service(self.rt, service)
            except ConveyorError as exc:
                log.warning("polling %s failed: %s", service.name, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:  # keep polling whatever one round hit
                log.exception("poll round failed")

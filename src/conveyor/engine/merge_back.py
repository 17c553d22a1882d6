"""Merge-back: after a hotfix reaches production, merge it into each ``hotfix.merge_back`` branch.

A clean merge is made (``--no-ff``, as ``hotfix.identity``) in a scratch worktree and published:
the branch moves locally and is pushed to ``origin``. A conflict makes nothing and records
"merge-back due: BRANCH conflicts in FILES" (``hotfix.merge_back_due``, in the audit log and the
event stream). A later deploy of a branch tip that contains the fix clears a due item.

The worker follows the event stream from its own durable cursor: a deployment that succeeded in
the hotfix environment is looked at once its event is read; the git work runs outside any
database transaction and the cursor moves after its outcome is recorded, so a crash in between
repeats the look, which finds the branch already containing the fix and records that instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

from conveyor.audit import log as audit
from conveyor.domain.deployment import DeploymentKind
from conveyor.domain.events import DeploymentMoved, StoredEvent
from conveyor.engine.hotfix import mainline, policy, spec_of
from conveyor.errors import ConveyorError
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store import events, hotfix_log
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ServiceRecord
from conveyor.vcs import branches
from conveyor.vcs.git import GitRepo

CONSUMER = "hotfix.merge_back"
INTERVAL = 0.25
log = logging.getLogger("conveyor.hotfix")


def _record(rt: Runtime, action: str, svc: ServiceRecord, branch: str, details: Mapping[str, object]) -> None:
    with rt.db.begin() as conn:
        audit.append(
            conn,
            at=rt.clock.now(),
            actor="conveyor",
            action=action,
            subject=f"{svc.name}/{branch}",
            details={"service": svc.name, "branch": branch, **details},
        )


def merge_back(rt: Runtime, d: DeploymentRecord) -> list[str]:
    """Merge the hotfix deployment ``d`` back into every merge_back branch; one line per branch."""
    with rt.db.read() as conn:
        svc = service_store.get_service_by_id(conn, d.service_id)
        base = store.get_release(conn, d.previous_release_id) if d.previous_release_id else None
    spec = spec_of(svc.config_text)
    hotfix = policy(spec)
    if spec.hotfix is None or not hotfix.merge_back or base is None:
        return []
    repo = GitRepo(Path(svc.repo_path))
    if svc.source != svc.repo_path:
        repo.fetch()
    # a hotfix of the release it replaced: based on it, with few commits of its own, none from a mainline branch
    if not repo.is_ancestor(base.sha, d.sha):
        return []
    lines = [b for b in mainline(spec) if not ((head := repo.branch_head(b)) and repo.is_ancestor(d.sha, head))]
    own, borrowed = branches.own_commits(repo, d.sha, base.sha, lines)  # a branch merged already is no mainline
    if not own or borrowed or len(own) > hotfix.max_commits:
        return []
    version = d.version
    return [_one(rt, svc, repo, d, base.sha, version, branch, hotfix.identity) for branch in hotfix.merge_back]


def _one(
    rt: Runtime,
    svc: ServiceRecord,
    repo: GitRepo,
    d: DeploymentRecord,
    base: str,
    version: str | None,
    branch: str,
    identity: str,
) -> str:
    fix = {"sha": d.sha, "base": base, "version": version, "deployment": d.id}
    head = repo.branch_head(branch)
    if head is None:
        reason = f"merge-back due: {branch} does not exist"
        _record(rt, hotfix_log.DUE, svc, branch, {**fix, "reason": reason, "files": []})
        return reason
    if branches.contains(repo, head, d.sha, base):
        _record(rt, hotfix_log.MERGED, svc, branch, {**fix, "reason": f"{branch} already has it", "merge": head})
        return f"{branch} already has {version or d.sha[:12]}"
    message = f"Merge hotfix {version or d.sha[:12]} into {branch}\n\nDeployed to {d.environment} by {d.actor}."
    scratch = rt.settings.home / "merge-backs" / f"{d.id}-{branch.replace('/', '_')}"
    outcome = branches.merge(repo, scratch, head, d.sha, message, identity)  # the worktree takes the repo lock
    if outcome.sha is None:
        reason = f"merge-back due: {branch} conflicts in {', '.join(outcome.conflicts)}"
        _record(rt, hotfix_log.DUE, svc, branch, {**fix, "reason": reason, "files": list(outcome.conflicts)})
        return reason
    try:
        with repo.lock():
            pushed = branches.publish(repo, branch, outcome.sha, head)
    except ConveyorError as exc:
        reason = f"merge-back due: {branch}: {exc.text}"
        _record(rt, hotfix_log.DUE, svc, branch, {**fix, "reason": reason, "files": []})
        return reason
    done = f"merged {version or d.sha[:12]} into {branch} as {outcome.sha[:12]}" + (" and pushed" if pushed else "")
    _record(rt, hotfix_log.MERGED, svc, branch, {**fix, "reason": done, "merge": outcome.sha, "pushed": pushed})
    return done


def clear_by(rt: Runtime, svc: ServiceRecord, repo: GitRepo, ref: str, sha: str, actor: str) -> list[str]:
    """A deploy of ``sha`` (requested as ``ref``) that is a due branch's tip and contains its fix
    clears that item. Returns the branches cleared."""
    with rt.db.read() as conn:
        due = hotfix_log.pending(conn, svc.name)
    cleared = []
    for item in due:
        if ref != item.branch and repo.branch_head(item.branch) != sha:
            continue
        if branches.contains(repo, sha, item.sha, item.base):
            reason = f"{item.branch} at {sha[:12]} contains {item.version or item.sha[:12]}; deployed by {actor}"
            fix = {"sha": item.sha, "base": item.base, "version": item.version, "by": sha, "reason": reason}
            _record(rt, hotfix_log.CLEARED, svc, item.branch, fix)
            cleared.append(item.branch)
    return cleared


def _succeeded_in_hotfix_env(rt: Runtime, stored: StoredEvent) -> DeploymentRecord | None:
    event = stored.event
    if not isinstance(event, DeploymentMoved) or event.to_state != "succeeded":
        return None
    with rt.db.read() as conn:
        d = store.get_deployment(conn, event.subject)
        svc = service_store.get_service_by_id(conn, d.service_id)
    spec = spec_of(svc.config_text)
    if d.kind != DeploymentKind.DEPLOY or spec.hotfix is None or d.environment != spec.hotfix.environment:
        return None
    return d


def run_once(rt: Runtime, batch: int = 100) -> int:
    """Handle the events after this worker's cursor; returns how many were read. The cursor moves
    past a merge-back once it is done, and past the events that call for none in one write per
    batch (most events: a deployment's every step is one)."""
    with rt.db.read() as conn:  # a read: an idle stream takes no write lock
        position = events.cursor(conn, CONSUMER)
        pending = events.read_after(conn, position, batch)
    moved = position
    for stored in pending:
        d = _succeeded_in_hotfix_env(rt, stored)
        if d is not None:
            try:
                for line in merge_back(rt, d):
                    log.info("%s: %s", d.service, line)
            except ConveyorError as exc:  # recorded for each branch it reached; the rest are logged
                log.warning("merge-back of %s failed: %s", d.id, exc)
            _advance(rt, stored.position)
            moved = stored.position
    if pending and pending[-1].position > moved:
        _advance(rt, pending[-1].position)
    return len(pending)


def _advance(rt: Runtime, position: int) -> None:
    with rt.db.begin() as conn:
        events.advance(conn, CONSUMER, position, rt.clock.now())


def start_at_head(rt: Runtime) -> None:
    """A first start follows the stream from now on: hotfixes before it are not merged again."""
    with rt.db.begin() as conn:
        if events.cursor(conn, CONSUMER) == 0:
            events.advance(conn, CONSUMER, events.head(conn), rt.clock.now())


class Worker:
    """Runs ``run_once`` every ``interval`` seconds in a thread of the server."""

    def __init__(self, rt: Runtime, interval: float = INTERVAL) -> None:
        self.rt, self.interval = rt, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-merge-back", daemon=True)

    def start(self) -> None:
        start_at_head(self.rt)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                while run_once(self.rt):
                    pass
            except Exception:  # keep following the stream whatever one round hit
                log.exception("merge-back round failed")

"""What an environment has run decides what may run next: an older commit never runs over a newer
one unless it is an explicit rollback, and production never drops commits its serving release has
(a hotfix not merged back, a newer release) unless a release manager overrode it
(``engine/regression.py``). One sentence, shared by ``why``, the request and the start."""

from __future__ import annotations

from sqlalchemy import Connection

from conveyor.engine.regression import refusal
from conveyor.store import deployments as store
from conveyor.store.records import ServiceRecord
from conveyor.vcs.git import GitRepo


def superseded(conn: Connection, repo: GitRepo, service: ServiceRecord, environment: str, sha: str) -> str | None:
    """Why deploying ``sha`` would go backwards in ``environment``, or None when it would not."""
    current = store.current_release(conn, service.id, environment)
    if current is None or current.sha == sha:
        return None
    if not repo.is_ancestor(sha, current.sha):
        return refusal(conn, repo, service, environment, sha)
    shown = store.serving_version(conn, service.id, current)
    return (
        f"superseded: {environment} already runs {shown} ({current.sha[:12]}), "
        f"which contains {sha[:12]}; to go back, use `conveyor rollback {environment}`"
    )

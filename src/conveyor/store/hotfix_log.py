"""Hotfix bookkeeping read back from the audit log, which is where it is written: merge-backs
(``hotfix.merge_back_due``, ``hotfix.merged_back``, ``hotfix.merge_back_cleared``) and overrides
of the missing-commits refusal (``deployment.missing_commits_overridden``). Each of those entries
also joins the event stream (a ``Recorded`` event), so a notifier can announce it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from conveyor.store.tables import audit_log

DUE = "hotfix.merge_back_due"
MERGED = "hotfix.merged_back"
CLEARED = "hotfix.merge_back_cleared"
OVERRIDDEN = "deployment.missing_commits_overridden"
MERGE_BACK_ACTIONS = (DUE, MERGED, CLEARED)


@dataclass(frozen=True)
class MergeBack:
    """The latest word on merging one hotfix into one branch."""

    service: str
    branch: str
    sha: str  # the hotfix commit
    base: str | None  # the release it fixed (sha)
    version: str | None
    state: str  # due | merged | cleared
    reason: str
    files: tuple[str, ...]
    at: datetime

    @property
    def pending(self) -> bool:
        return self.state == "due"

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "branch": self.branch,
            "sha": self.sha,
            "version": self.version,
            "state": self.state,
            "reason": self.reason,
            "files": list(self.files),
            "at": self.at.isoformat(),
        }


def _rows(conn: Connection, actions: Iterable[str]) -> list[Any]:
    query = select(audit_log).where(audit_log.c.action.in_(list(actions))).order_by(audit_log.c.id)
    return list(conn.execute(query))


def merge_backs(conn: Connection, service: str | None = None) -> list[MergeBack]:
    """Every hotfix merge-back's latest state, oldest first (optionally one service's)."""
    states = {DUE: "due", MERGED: "merged", CLEARED: "cleared"}
    latest: dict[tuple[str, str, str], MergeBack] = {}
    for row in _rows(conn, MERGE_BACK_ACTIONS):
        d = dict(row.details)
        if service is not None and d.get("service") != service:
            continue
        key = (str(d.get("service")), str(d.get("branch")), str(d.get("sha")))
        latest.pop(key, None)  # keep insertion order by the latest entry
        latest[key] = MergeBack(
            service=key[0],
            branch=key[1],
            sha=key[2],
            base=d.get("base"),
            version=d.get("version"),
            state=states[row.action],
            reason=str(d.get("reason") or ""),
            files=tuple(d.get("files") or ()),
            at=row.at,
        )
    return list(latest.values())


def pending(conn: Connection, service: str | None = None) -> list[MergeBack]:
    return [m for m in merge_backs(conn, service) if m.pending]


def overrides(conn: Connection, service: str, environment: str, sha: str) -> list[set[str]]:
    """For each override of deploying ``sha`` to ``environment`` over missing commits: the
    commits (full shas) it accepted losing."""
    found = []
    for row in _rows(conn, [OVERRIDDEN]):
        d = dict(row.details)
        if d.get("service") == service and d.get("environment") == environment and d.get("sha") == sha:
            found.append(set(d.get("missing") or ()))
    return found

"""No silent regression on the deploy form: the commits the environment's serving release has that
the picked commit lacks, each with what it is ("hotfix v0.3.1 not merged back into main"), whether
the environment refuses the deploy for it (production) or only warns, and whether a release
manager has overridden that refusal. The same judgement as ``conveyor why`` and the request
(``engine/regression.py``); a commit that is an ancestor of the serving one is no case for this
(the ``history`` gate says to roll back instead)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.auth.users import User
from conveyor.engine import regression
from conveyor.errors import ConveyorError
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store.records import ServiceRecord
from conveyor.vcs.git import GitRepo

SHOWN = 50  # commits listed on the form; the rest are counted


@dataclass(frozen=True)
class MissingCommit:
    sha: str
    short: str
    subject: str
    label: str | None  # what it is: a hotfix not merged back


@dataclass(frozen=True)
class MissingView:
    environment: str
    version: str  # the release serving there
    sha: str  # the commit to deploy
    commits: list[MissingCommit]
    total: int
    refuses: bool  # the environment refuses the deploy (production) rather than warns
    overridden: bool  # a release manager accepted losing these commits for this sha
    may_override: bool  # the signed-in user may record that override

    @property
    def blocks(self) -> bool:
        return self.refuses and not self.overridden


def missing_commits(rt: Runtime, user: User, service: ServiceRecord, environment: str, sha: str) -> MissingView | None:
    """What deploying ``sha`` to ``environment`` would drop, or None when it drops nothing."""
    repo = GitRepo(Path(service.repo_path))
    with rt.db.read() as conn:
        current = store.current_release(conn, service.id, environment)
        if current is None or current.sha == sha:
            return None
        try:
            if repo.is_ancestor(sha, current.sha):
                return None  # going backwards: a rollback's business, said by the history gate
        except ConveyorError:
            return None  # a commit this clone lacks: the gates say so
        found = regression.missing(conn, repo, service, environment, sha)
        if found is None:
            return None
        overridden = found.refuses and regression.overridden(conn, service, found)
    commits = [MissingCommit(c.sha, c.short, c.subject, found.labels.get(c.sha)) for c in found.commits[:SHOWN]]
    return MissingView(
        environment=environment,
        version=found.version,
        sha=sha,
        commits=commits,
        total=len(found.commits),
        refuses=found.refuses,
        overridden=overridden,
        may_override=found.refuses and user.has_role(*regression.OVERRIDERS),
    )

"""Adding a service: find its repository (a local path, or a URL mirrored under HOME/repos),
read and validate its conveyor.yml, and register it. Adding it again refreshes the config."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conveyor.audit import log as audit
from conveyor.engine.runtime import Runtime
from conveyor.errors import InvalidInput
from conveyor.spec import parse_spec
from conveyor.store import services as service_store
from conveyor.store.records import ServiceRecord
from conveyor.vcs.git import GitRepo

CONFIG_FILE = "conveyor.yml"


def _is_url(source: str) -> bool:
    return "://" in source or (source.count(":") == 1 and "@" in source.split(":")[0])


def locate(rt: Runtime, source: str) -> tuple[GitRepo, str]:
    """The repository for ``source`` and the conveyor.yml text to register."""
    if _is_url(source):
        mirror = rt.settings.repos_dir / hashlib.sha256(source.encode()).hexdigest()[:16]
        if GitRepo.is_repo(mirror):
            repo = GitRepo(mirror)
            repo.fetch()
        else:
            mirror.parent.mkdir(parents=True, exist_ok=True)
            repo = GitRepo.clone_mirror(source, mirror)
        text = repo.show_file("HEAD", CONFIG_FILE)
        if text is None:
            raise InvalidInput(
                f"{source} has no {CONFIG_FILE} on its default branch",
                fix=f"commit a {CONFIG_FILE} (see docs/conveyor-yml.md)",
            )
        return repo, text
    path = Path(source).expanduser().resolve()
    if not GitRepo.is_repo(path):
        raise InvalidInput(f"{source} is not a git repository", fix="pass the path of a git checkout or a clone URL")
    config = path / CONFIG_FILE
    if not config.is_file():
        raise InvalidInput(f"{path} has no {CONFIG_FILE}", fix="add one (see docs/conveyor-yml.md)")
    return GitRepo(path), config.read_text()


def add_service(rt: Runtime, source: str, actor: str) -> tuple[ServiceRecord, bool]:
    repo, text = locate(rt, source)
    spec = parse_spec(text, CONFIG_FILE)  # raises SpecError with FILE:LINE:COL problems
    stored_source = source if _is_url(source) else str(repo.path)
    now = rt.clock.now()
    with rt.db.begin() as conn:
        service, created = service_store.upsert_service(conn, spec.service, stored_source, str(repo.path), text, now)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="service.added" if created else "service.updated",
            subject=service.name,
            details={"source": stored_source, "environments": sorted(spec.environments)},
        )
    return service, created

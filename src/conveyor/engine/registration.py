"""Adding a service: check who asks and where from, find its repository (a local checkout under an
allowed root, or a URL mirrored under HOME/repos), read and validate its committed conveyor.yml, and
register it. Registering it again shows what would change as a diff; applying a change needs an
admin and the diff's ``confirm`` hash, and the audit entry keeps the diff."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from conveyor.audit import log as audit
from conveyor.audit.refusals import refuse
from conveyor.auth.users import User
from conveyor.engine.registration_diff import changed_paths, config_diff
from conveyor.errors import Conflict, ConveyorError, InvalidInput
from conveyor.runtime import Runtime
from conveyor.spec import parse_spec
from conveyor.store import services as service_store
from conveyor.store.records import ServiceRecord
from conveyor.vcs.git import GitRepo
from conveyor.vcs.sources import Source, SourcePolicy, allowed_protocols, check_source

CONFIG_FILE = "conveyor.yml"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
log = logging.getLogger("conveyor.services")


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def registrar_roles(rt: Runtime) -> tuple[str, ...]:
    """Roles that may add a service or refresh one unchanged (admin always may)."""
    return tuple(dict.fromkeys(("admin", *_split(rt.settings.service_admin_roles))))


@dataclass(frozen=True)
class Plan:
    """What registering a source would do."""

    name: str
    created: bool
    source: str  # as stored
    repo_path: str
    text: str
    github_repository: str | None
    changes: tuple[str, ...]  # e.g. "source", "environments.production.deployers"; empty: nothing changes
    diff: str  # unified diff of the registered conveyor.yml (and source lines) against the new one
    confirm: str  # sha256 the caller sends back as ``confirm_diff`` to apply the changes


def _clean(source: str, exc: ConveyorError) -> InvalidInput:
    log.warning("registering %s failed: %s", source, exc)  # the details (paths, git's output) stay in the log
    return InvalidInput(f"could not read a git repository from {source!r}", fix="check the URL or path, and access")


def locate(rt: Runtime, src: Source) -> tuple[GitRepo, str]:
    """The repository for a checked source and the committed conveyor.yml text to register."""
    try:
        if src.url is not None:
            mirror = rt.settings.repos_dir / hashlib.sha256(src.url.encode()).hexdigest()[:16]
            if GitRepo.is_repo(mirror) and GitRepo(mirror).origin_url() == src.url:
                repo = GitRepo(mirror)
                repo.fetch()
            else:
                policy = SourcePolicy.of(rt.settings)
                repo = GitRepo.clone_mirror(src.url, mirror, allow_protocols=allowed_protocols(policy))
        else:
            assert src.local_path is not None
            if not GitRepo.is_repo(src.local_path):
                raise InvalidInput(f"{src.text!r} is not a git repository", fix="pass the path of a git checkout")
            repo = GitRepo(src.local_path)
        text = repo.show_file("HEAD", CONFIG_FILE)
    except InvalidInput:
        raise
    except ConveyorError as exc:
        raise _clean(src.text, exc) from None
    if text is None:
        raise InvalidInput(
            f"{src.text!r} has no {CONFIG_FILE} committed on its default branch",
            fix=f"commit a {CONFIG_FILE} (see docs/conveyor-yml.md)",
        )
    return repo, text


def _binding(asked: str | None, src: Source, existing: ServiceRecord | None) -> str | None:
    if asked:
        if not _REPOSITORY.match(asked):
            raise InvalidInput(f"github_repository {asked!r} is not owner/name", fix="e.g. acme/shop")
        return asked.lower()
    return src.github_repository or (existing.github_repository if existing else None)


def plan(rt: Runtime, source: str, github_repository: str | None = None) -> Plan:
    src = check_source(SourcePolicy.of(rt.settings), source)
    repo, text = locate(rt, src)
    spec = parse_spec(text, CONFIG_FILE)  # raises SpecError with FILE:LINE:COL problems
    with rt.db.read() as conn:
        existing = service_store.find_service(conn, spec.service)
    binding = _binding(github_repository, src, existing)
    new = {"source": src.text, "github_repository": binding or "", "config": text}
    if existing is None:
        changes: tuple[str, ...] = ()
        diff = config_diff({"source": "", "github_repository": "", "config": ""}, new)
    else:
        old = {
            "source": existing.source,
            "github_repository": existing.github_repository or "",
            "config": existing.config_text,
        }
        changes = tuple(k for k in ("source", "github_repository") if old[k] != new[k])
        changes += changed_paths(rt.spec_of(existing.config_text).model_dump(mode="json"), spec.model_dump(mode="json"))
        if existing.config_text != text and not changes:
            changes = ("conveyor.yml",)  # comments or layout only
        diff = config_diff(old, new)
    confirm = hashlib.sha256(f"{spec.service}\0{diff}".encode()).hexdigest()
    return Plan(spec.service, existing is None, src.text, str(repo.path), text, binding, changes, diff, confirm)


def register(
    rt: Runtime,
    user: User,
    source: str,
    *,
    github_repository: str | None = None,
    confirm: str | None = None,
    dry_run: bool = False,
) -> tuple[Plan, ServiceRecord | None]:
    """Add or re-register a service; with ``dry_run``, only say what would change."""
    allowed = registrar_roles(rt)
    if not any(user.has_role(r) for r in allowed):
        raise refuse(
            rt,
            user.name,
            "service.add",
            "services",
            f"{user.name} may not add or change services; only {', '.join(allowed)} may",
        )
    p = plan(rt, source, github_repository)
    if dry_run:
        return p, None
    if p.changes and not user.has_role("admin"):
        raise refuse(
            rt,
            user.name,
            "service.update",
            p.name,
            f"changing the registered {p.name} ({', '.join(p.changes)}) needs an admin",
        )
    if p.changes and confirm != p.confirm:
        raise Conflict(
            f"re-registering {p.name} changes {', '.join(p.changes)}",
            fix="review the diff (send dry_run: true, or run `conveyor services add`) and send its confirm_diff",
        )
    now = rt.clock.now()
    with rt.db.begin() as conn:
        service, created = service_store.upsert_service(
            conn, p.name, p.source, p.repo_path, p.text, now, github_repository=p.github_repository
        )
        audit.append(
            conn,
            at=now,
            actor=user.name,
            action="service.added" if created else "service.updated",
            subject=service.name,
            details={"source": p.source, "changes": list(p.changes), "diff": p.diff[:65536]},
        )
    return p, service

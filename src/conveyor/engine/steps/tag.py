"""tag: the release's version, reserved now; the git tag itself is made when the release serves.

The next semver version is reserved for the commit as a release record (so rollout, smoke and
the app itself see ``CONVEYOR_VERSION``), but the annotated tag that says "deployed to
production" is created only by ``promote`` once the deployment has succeeded: a failed or
cancelled deployment leaves no tag. A version number is given out once: retrying the same commit
reuses its reserved version, another commit gets the next one.
"""

from __future__ import annotations

from conveyor.domain.hotfix import hotfix_version
from conveyor.domain.versions import Version, next_version
from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.hotfix import facts
from conveyor.engine.steps import step
from conveyor.store import deployments as store


@step("tag")
def tag(ctx: StepContext) -> StepOutcome:
    spec = ctx.env_spec.tag
    if spec is None:
        return StepOutcome(True, "tagging is not configured for this environment")
    repo, sha = ctx.repo, ctx.deployment.sha
    with repo.lock():  # two environments tagging at once must not pick the same version
        tags = repo.version_tags(spec.prefix)  # listed once for this decision
        existing = repo.version_tag_at(sha, spec.prefix, tags)  # a redeploy, or a tag made by hand
        with ctx.runtime.db.begin() as conn:
            known = store.service_releases(conn, ctx.service.id)
            reserved = [
                r.version for r in known if r.sha == sha and r.tag is None and Version.parse(r.version, spec.prefix)
            ]
            if existing:
                name, verb = existing, "reused tag"
            elif reserved:
                name, verb = reserved[-1], "reused the version reserved for"
            else:
                versions = [v for v, _tag, _sha in tags]
                versions += [v for r in known if (v := Version.parse(r.version, spec.prefix)) is not None]
                name, verb = next_version(versions, spec.bump).tag(spec.prefix), "reserved"
                if ctx.spec.hotfix is not None:  # a hotfix is the patch of the release it fixes
                    found = facts(conn, repo, ctx.service, sha, ctx.deployment.ref, ctx.deployment.environment)
                    base = Version.parse(found.base_version or "", spec.prefix)
                    if found.qualifies and base is not None:
                        name, verb = hotfix_version(base, versions).tag(spec.prefix), "reserved hotfix version"
            release = store.ensure_release(
                conn, ctx.service.id, sha, name, name if existing else None, ctx.runtime.clock.now()
            )
            store.set_fields(conn, ctx.deployment.id, release_id=release.id)
    later = "" if existing else "; the tag is created when it serves"
    return StepOutcome(True, f"{verb} {name} on {sha[:12]}{later}")


def promote(ctx: StepContext) -> str | None:
    """Create and push the release's tag, now that it serves (idempotent). Returns the tag made,
    or None when there is nothing to tag."""
    tagged = make_tag(ctx)
    if tagged is not None and ctx.release is not None:
        with ctx.runtime.db.begin() as conn:
            store.set_release_tag(conn, ctx.release.id, tagged)
    return tagged


def make_tag(ctx: StepContext) -> str | None:
    """``promote``'s git part: the tag created and pushed, which the caller records on the
    release (``store.set_release_tag``), e.g. in the transaction that ends the deployment."""
    spec, release = ctx.env_spec.tag, ctx.release
    if spec is None or release is None or release.tag is not None or ctx.deployment.kind == "rollback":
        return None
    repo = ctx.repo
    message = f"{ctx.service.name} {release.version} deployed to {ctx.deployment.environment} by {ctx.deployment.actor}"
    with repo.lock():
        created = repo.create_tag(release.version, release.sha, message)
    if created or repo.version_tag_at(release.sha, spec.prefix) == release.version:
        repo.push_tag(release.version)
    return release.version

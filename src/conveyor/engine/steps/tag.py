"""tag: the next semver tag on the exact commit, created once and recorded as the release."""

from __future__ import annotations

from conveyor.domain.versions import Version, next_version
from conveyor.engine.context import StepContext, StepOutcome
from conveyor.engine.steps import step
from conveyor.store import deployments as store


@step("tag")
def tag(ctx: StepContext) -> StepOutcome:
    spec = ctx.env_spec.tag
    if spec is None:
        return StepOutcome(True, "tagging is not configured for this environment")
    repo, sha = ctx.repo, ctx.deployment.sha
    with repo.lock():  # two environments tagging at once must not pick the same version
        # an existing version tag on this commit is the release (a redeploy, a hotfix tag, or a
        # crash after the tag was made but before it was recorded): never make a second one
        existing = repo.version_tag_at(sha, spec.prefix)
        if existing:
            name, created = existing, False
        else:
            versions = [v for v, _tag, _sha in repo.version_tags(spec.prefix)]
            bump = spec.bump
            hotfix = ctx.spec.hotfix
            if hotfix and ctx.deployment.ref.startswith(hotfix.branch_prefix):
                bump = "patch"
            name = next_version(versions, bump).tag(spec.prefix)
            message = f"{ctx.service.name} {name} deployed to {ctx.deployment.environment} by {ctx.deployment.actor}"
            created = repo.create_tag(name, sha, message)
    if created:
        repo.push_tag(name)
    version = Version.parse(name, spec.prefix)
    assert version is not None
    with ctx.runtime.db.begin() as conn:
        release = store.ensure_release(conn, ctx.service.id, sha, name, name, ctx.runtime.clock.now())
        store.set_fields(conn, ctx.deployment.id, release_id=release.id)
    verb = "created" if created else "reused"
    return StepOutcome(True, f"{verb} tag {name} on {sha[:12]}")

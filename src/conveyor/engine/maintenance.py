"""An environment's maintenance mode (every request answered 503 with Retry-After), turned on and
off by the steps of docs/database.md: around a long migration (``deploy --maintenance``) and
around the database part of ``rollback --with-database``.

Only the local target has a router that can answer for the app; a command target has no
maintenance mode, and asking for one is an error that says so. Turning it on or off twice leaves
the same state, so a step run again after a crash may do it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import InvalidInput
from conveyor.spec import LocalTarget as LocalTargetSpec

if TYPE_CHECKING:
    from conveyor.spec import EnvironmentSpec
    from conveyor.targets.base import TargetContext


def set_environment_maintenance(
    home: Path, service: str, environment: str, env_spec: EnvironmentSpec, on: bool
) -> bool:
    """Turn maintenance mode of ``service`` in ``environment`` on or off; the state it is in now."""
    target = env_spec.target
    if not isinstance(target, LocalTargetSpec):
        raise InvalidInput(
            f"{environment} uses a {target.kind!r} target, which has no maintenance mode "
            "(only the local agent's router can answer for the app while it is down)",
            fix="use `target: {kind: local, ...}` for maintenance mode, or deploy without --maintenance "
            "and put up a maintenance page with your own scripts",
        )
    from conveyor.targets.local import set_maintenance  # the agent client, only for local targets

    return set_maintenance(home, service, environment, target, on).maintenance


def maintenance(ctx: TargetContext, on: bool) -> str:
    """Turn the deployment's environment's maintenance mode on or off; what was done, in words."""
    environment = ctx.deployment.environment
    state = set_environment_maintenance(ctx.settings.home, ctx.service.name, environment, ctx.env_spec, on)
    return f"maintenance mode {'on' if state else 'off'} in {environment}"

"""Which release the local agent keeps warm for an environment (going back to it is a router
switch). Asks the agent of this HOME through its client if one is running; never starts one."""

from __future__ import annotations

from pathlib import Path

from conveyor.agent.client import environment_state

TIMEOUT = 2.0


def warm_release(home: Path, service: str, environment: str) -> tuple[str, str] | None:
    """(version, sha) of the warm release, or None: no agent, no warm release, or not all ready."""
    state = environment_state(home, service, environment, TIMEOUT)
    warm = state.warm if state is not None else None
    if warm is None or not warm.instances or not all(i.state == "ready" for i in warm.instances):
        return None
    return warm.version, warm.sha

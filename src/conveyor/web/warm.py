"""Which release the local agent keeps warm for an environment (going back to it is a router
switch). Asks the agent of this HOME if one is running; never starts one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

TIMEOUT = 2.0


def warm_release(home: Path, service: str, environment: str) -> tuple[str, str] | None:
    """(version, sha) of the warm release, or None: no agent, no warm release, or not all ready."""
    agent_dir = home.resolve() / "agent"
    try:
        url = json.loads((agent_dir / "agent.json").read_text())["url"]
        token = (agent_dir / "token").read_text().strip()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        response = httpx.get(
            f"{url}/v1/environments/{service}.{environment}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
        state = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    warm = state.get("warm") if isinstance(state, dict) else None
    if not isinstance(warm, dict) or not warm.get("instances"):
        return None
    if not all(i.get("state") == "ready" for i in warm["instances"]):
        return None
    return str(warm.get("version")), str(warm.get("sha"))

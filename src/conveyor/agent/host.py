"""The agent's state on this host: its environments (each with a router) and its token.
HOME/agent is private to the agent's user (0700) and the token file is 0600."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

from conveyor.agent.environment import Environment
from conveyor.agent.routing import ROUTERS
from conveyor.agent.run_as import RunAs


class Agent:
    def __init__(self, home: Path, run_as: RunAs | None = None) -> None:
        self.dir = home / "agent"
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.run_as = run_as
        self.pid = os.getpid()
        self.token = self._token()
        self.environments: dict[str, Environment] = {}
        self._config: dict[str, tuple[str, int, str, int]] = {}

    def _token(self) -> str:
        path = self.dir / "token"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        path.chmod(0o600)  # a token file made by an older version may be wider
        return path.read_text().strip()

    async def configure(self, key: str, host: str, port: int, router: str, max_body: int) -> Environment:
        """Create the environment's router, or move it to a new port / router kind."""
        if router not in ROUTERS:
            raise ValueError(f"unknown router {router!r}; use one of {', '.join(sorted(ROUTERS))}")
        wanted = (host, port, router, max_body)
        env = self.environments.get(key)
        if env is not None and self._config.get(key) == wanted:
            return env
        new_router = ROUTERS.get(router)(key, host, port, max_body)
        if env is None:
            await new_router.start()
            env = self.environments[key] = Environment(key, new_router)
            env.run_as = self.run_as
        else:  # start the new listener first: if its port is taken, the old one keeps serving
            await new_router.start()
            new_router.counters = env.router.counters
            await new_router.set_maintenance(env.maintenance, env.retry_after)
            old, env.router = env.router, new_router
            env.changed()
            await old.stop()
        self._config[key] = wanted
        return env

    async def remove(self, key: str) -> None:
        env = self.environments.pop(key, None)
        self._config.pop(key, None)
        if env:
            await env.shutdown()

    async def upkeep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for env in list(self.environments.values()):
                await env.expire_warm()

    async def shutdown(self) -> None:
        """Every environment at once: an agent stops in one grace period, not one per environment."""
        await asyncio.gather(*(self.remove(key) for key in list(self.environments)))

"""`conveyor agent`: the routers, the instances and the loopback API in one asyncio loop.
It writes HOME/agent/agent.json (its URL and pid) so the server can find it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from conveyor.agent.api import create_app
from conveyor.agent.host import Agent
from conveyor.agent.run_as import resolve_run_as

T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T], *, switches_user: bool = False) -> T:
    """Run the agent's loop: on uvloop when it is installed (the built-in router spends about a
    fifth less CPU per request on it), else on asyncio's own loop. An agent that starts instances
    as another user (``agent_run_as``) stays on asyncio's loop: uvloop's subprocesses refuse
    Popen's ``user``/``group``, which switch the account in the child safely."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    if switches_user:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the agent stops its instances first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(home: Path, port: int = 0, run_as: str | None = None) -> None:
    agent = Agent(home, resolve_run_as(run_as))
    port = port or _free_port()
    config = uvicorn.Config(create_app(agent), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = _Server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.01)
    info = agent.dir / "agent.json"
    tmp = info.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": agent.pid}))
    tmp.replace(info)
    print(f"conveyor agent {agent.pid} listening on http://127.0.0.1:{port}", flush=True)
    upkeep = asyncio.create_task(agent.upkeep())
    await stop.wait()
    upkeep.cancel()
    await agent.shutdown()
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    with contextlib.suppress(FileNotFoundError):
        if json.loads(info.read_text()).get("pid") == agent.pid:
            info.unlink()

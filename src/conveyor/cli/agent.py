"""conveyor agent [stop]: run the agent of this host, or stop it and every app it runs.

`conveyor agent stop` finds the agent through HOME/agent/agent.json, asks it (with its token)
which pid it is, so a stale file or a reused pid is never signalled, and sends it SIGTERM: the
agent stops every environment's instances and routers, then exits. The command waits until the
process is gone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from conveyor.cli import server
from conveyor.cli.output import console, handles_errors, print_json
from conveyor.errors import ConveyorError
from conveyor.settings import Settings

STOP_TIMEOUT = 60.0  # an instance gets SIGKILL 10 s after SIGTERM; draining waits up to 30 s
POLL_SECONDS = 0.05

app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@app.callback()
def agent(ctx: typer.Context) -> None:
    """Run the agent: app instances, health checks and routers of this host (HOME/agent).
    `conveyor agent stop` stops it and its apps."""
    if ctx.invoked_subcommand is None:
        server.agent()


def _running_agent(agent_dir: Path) -> dict[str, Any] | None:
    """The agent's own word on its pid and environments; None when no agent answers for ``agent_dir``."""
    try:
        info = json.loads((agent_dir / "agent.json").read_text())
        token = (agent_dir / "token").read_text().strip()
        answer = httpx.get(f"{info['url']}/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except (FileNotFoundError, ValueError, KeyError, httpx.HTTPError):
        return None
    if answer.status_code != 200:
        return None
    health: dict[str, Any] = answer.json()
    return health if health.get("pid") == info.get("pid") else None


def _gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@app.command()
@handles_errors
def stop(
    timeout: Annotated[float, typer.Option(help="seconds to wait for the agent to exit")] = STOP_TIMEOUT,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
) -> None:
    """Stop the agent of this HOME: every app instance and router it runs stops, then the agent exits."""
    agent_dir = Settings().home.resolve() / "agent"
    found = _running_agent(agent_dir)
    if found is None:
        if json_out:
            print_json({"stopped": False, "pid": None, "environments": []})
        else:
            console.print(f"no agent is running for {agent_dir}: nothing to stop", highlight=False)
        return
    pid, environments = int(found["pid"]), list(found.get("environments", []))
    with contextlib.suppress(ProcessLookupError):  # it exited since it answered: nothing to signal
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            raise ConveyorError(
                f"the agent (pid {pid}) did not exit within {timeout:.0f}s of SIGTERM",
                fix=f"see {agent_dir / 'agent.log'}; `kill -KILL {pid}` leaves its instances running",
            )
        time.sleep(POLL_SECONDS)
    if json_out:
        print_json({"stopped": True, "pid": pid, "environments": environments})
    else:
        names = ", ".join(environments) or "none"
        console.print(f"agent {pid} stopped, with the instances of its environments ({names})", highlight=False)

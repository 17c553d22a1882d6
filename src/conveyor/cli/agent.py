"""conveyor agent [stop]: run the agent of this host, or stop it and every app it runs.

`conveyor agent stop` finds the agent through HOME/agent/agent.json, asks it (with its token)
which pid it is, so a stale file or a reused pid is never signalled, and sends it SIGTERM: the
agent stops every environment's instances and routers, then exits. The command waits until the
process is gone."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from conveyor.agent.client import find_agent
from conveyor.agent.procs import exited
from conveyor.agent.protocol import AgentHealth
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


def _running_agent(home: Path) -> AgentHealth | None:
    """The agent's own word on its pid and environments; None when no agent of ``home`` answers, or
    when the one answering is not the one its files name."""
    agent = find_agent(home)
    if agent is None:
        return None
    try:
        health = agent.health()
    except ConveyorError:
        return None
    return health if health.pid == agent.pid else None


@app.command()
@handles_errors
def stop(
    timeout: Annotated[float, typer.Option(help="seconds to wait for the agent to exit")] = STOP_TIMEOUT,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
) -> None:
    """Stop the agent of this HOME: every app instance and router it runs stops, then the agent exits."""
    home = Settings().home
    agent_dir = home.resolve() / "agent"
    found = _running_agent(home)
    if found is None:
        if json_out:
            print_json({"stopped": False, "pid": None, "environments": []})
        else:
            console.print(f"no agent is running for {agent_dir}: nothing to stop", highlight=False)
        return
    pid, environments = found.pid, found.environments
    with contextlib.suppress(ProcessLookupError):  # it exited since it answered: nothing to signal
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not exited(pid):
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

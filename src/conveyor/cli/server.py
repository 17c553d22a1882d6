"""conveyor server and conveyor validate: the commands that need no running server."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.output import console, err, handles_errors
from conveyor.settings import Settings


def server(
    host: Annotated[str | None, typer.Option(help="address to listen on (CONVEYOR_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on (CONVEYOR_PORT)")] = None,
) -> None:
    """Run the Conveyor server: API, engine, branch poller."""
    import uvicorn  # the server's stack is imported only when it runs: other commands start fast

    from conveyor.app import create_app
    from conveyor.runtime import Runtime
    from conveyor.store.db import Database

    settings = Settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rt = Runtime(settings=settings, db=Database(settings.app_database_url))
    uvicorn.run(
        create_app(rt),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


@handles_errors
def agent() -> None:
    """Run the agent: app instances, health checks and routers of this host (HOME/agent)."""
    from conveyor.agent.main import run_loop, serve
    from conveyor.agent.run_as import resolve_run_as

    settings = Settings()
    run_as = resolve_run_as(settings.agent_run_as)  # a bad setting fails here, before anything listens
    run_loop(
        serve(settings.home.resolve(), settings.agent_port, settings.agent_run_as), switches_user=run_as is not None
    )


def validate(
    file: Annotated[Path, typer.Argument(help="the conveyor.yml to check")] = Path("conveyor.yml"),
) -> None:
    """Check a conveyor.yml: exit 0 when valid, 1 with FILE:LINE:COL lines when not."""
    from conveyor.spec import SpecError, load_spec  # the config's models: not for `conveyor agent`

    if not file.is_file():
        err.print(f"{file}:1:1: no such file", highlight=False)
        raise typer.Exit(1)
    try:
        spec = load_spec(file)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(str(problem), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(f"{file}: valid ({spec.service}: {', '.join(spec.environments)})", highlight=False)

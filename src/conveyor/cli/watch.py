"""Following a deployment from the CLI: a live progress bar of its steps, and log following."""

from __future__ import annotations

import time

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from conveyor.api.models import DeploymentDetail, DeploymentLogs
from conveyor.cli.client import Client
from conveyor.cli.output import console

FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}
STEP_DONE = {"succeeded", "failed", "skipped", "cancelled"}
POLL_SECONDS = 0.25


def wait_for(client: Client, deployment_id: str, show: bool = True) -> DeploymentDetail:
    """Poll until the deployment finishes; draw a progress bar of its steps unless ``show`` is off."""
    path = f"/deployments/{deployment_id}"
    detail = client.get_as(DeploymentDetail, path)
    if not show:
        while detail.state not in FINISHED:
            time.sleep(POLL_SECONDS)
            detail = client.get_as(DeploymentDetail, path)
        return detail
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("queued", total=len(detail.steps))
        while True:
            done = sum(1 for s in detail.steps if s.state in STEP_DONE)
            running = next((s.name for s in detail.steps if s.state == "running"), None)
            label = f"{detail.environment}: {running or detail.state.value}"
            progress.update(task, completed=done, description=label)
            if detail.state in FINISHED:
                break
            time.sleep(POLL_SECONDS)
            detail = client.get_as(DeploymentDetail, path)
    return detail


def follow_logs(client: Client, deployment_id: str, follow: bool) -> DeploymentLogs:
    """Print each step's output as it grows; with ``follow``, until the deployment finishes."""
    printed: dict[str, int] = {}
    headed: set[str] = set()
    while True:
        detail = client.get_as(DeploymentLogs, f"/deployments/{deployment_id}/logs")
        for step in detail.steps:
            name, output = step.name, step.output
            if step.state == "pending":
                continue
            if name not in headed:
                console.print(f"[bold]── {name}[/bold] ({step.state.value})", highlight=False)
                headed.add(name)
            new = output[printed.get(name, 0) :]
            if new:
                console.out(new, end="" if new.endswith("\n") else "\n", highlight=False)
                printed[name] = len(output)
            if step.state in STEP_DONE and f"{name}:done" not in headed:
                headed.add(f"{name}:done")
                if step.message:
                    console.print(f"   → {step.state.value}: {step.message}", highlight=False)
        if not follow or detail.state in FINISHED:
            return detail
        time.sleep(POLL_SECONDS)

"""`conveyor logs`: a deployment's step output, or an environment's running instances' output.

The argument is an environment when it names one of the service's environments (environment
names start with a letter and are at most 32 characters); anything else is a deployment id or its
first 6+ characters. A full deployment id (36 characters) is never an environment name; a short
id prefix that happens to spell an environment's name needs a few more characters."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from conveyor.agent.protocol import NumberedInstance
from conveyor.api.models import Delivery, DeploymentLogs, EnvironmentOutput, ServiceSummary
from conveyor.cli.client import Client, wire
from conveyor.cli.output import console, handles_errors, print_json
from conveyor.cli.watch import FINISHED, follow_logs

POLL_SECONDS = 0.5


def environment_names(client: Client, service: str | None) -> set[str]:
    """The environments of ``service``, or of every service when none is named."""
    services = client.get_as(list[ServiceSummary], "/services")
    return {env for s in services if service in (None, s.service) for env in s.environments}


def _header(inst: NumberedInstance, where: str) -> str:
    warm = " warm," if inst.role == "warm" else ""
    pid = f", pid {inst.pid}" if inst.pid else ""
    return (
        f"[bold]── {where} #{inst.index}[/bold] {inst.id} ({inst.version},{warm} {inst.state}"
        f"{pid}, port {inst.port}, {inst.restarts} restart(s))"
    )


def _print_lines(lines: list[str], prefix: str = "") -> None:
    for line in lines:
        console.out(prefix + line, highlight=False)


def show_instances(
    client: Client, environment: str, service: str | None, instance: int | None, lines: int, follow: bool
) -> None:
    params = {"service": service, "instance": instance, "lines": lines}
    path = f"/environments/{environment}/logs"
    doc = client.get_as(EnvironmentOutput, path, **params)
    where = f"{doc.service}.{doc.environment}"
    if not doc.instances:
        agent = "" if doc.agent else " (no agent runs on the server's host)"
        console.print(f"no instance of {where} is running{agent}", highlight=False)
    seen: dict[str, int] = {}
    for inst in doc.instances:
        console.print(_header(inst, where), highlight=False)
        _print_lines(inst.lines)
        seen[inst.id] = inst.lines_seen
    while follow:
        time.sleep(POLL_SECONDS)
        doc = client.get_as(EnvironmentOutput, path, **{**params, "lines": 500})
        many = len(doc.instances) > 1
        for inst in doc.instances:
            if inst.id not in seen:
                console.print(_header(inst, where), highlight=False)
            new = inst.lines_seen - seen.get(inst.id, 0)
            if new > 0:
                _print_lines(inst.lines[-new:], f"[#{inst.index}] " if many else "")
            seen[inst.id] = inst.lines_seen


def print_deliveries(deliveries: list[Delivery]) -> None:
    """Each message of the deployment and what became of it (docs/notifications.md)."""
    if not deliveries:
        return
    console.print("[bold]── notifications[/bold]", highlight=False)
    for n in deliveries:
        retrying = " (retrying)" if n.state == "pending" and n.attempts else ""
        outcome = f": {n.outcome}" if n.outcome else ""
        tries = f", {n.attempts} attempt(s)" if n.attempts != 1 else ""
        console.print(f"   {n.notifier} {n.event}: {n.state}{retrying}{tries}{outcome}", highlight=False)


def show_deployment(client: Client, deployment_id: str, follow: bool, json_out: bool) -> None:
    if not json_out:
        followed = follow_logs(client, deployment_id, follow)
        console.print(f"deployment {followed.id[:8]}: [bold]{followed.state.value}[/bold]", highlight=False)
        print_deliveries(followed.notifications)
        return
    path = f"/deployments/{deployment_id}/logs"
    detail = client.get_as(DeploymentLogs, path)
    while follow and detail.state not in FINISHED:
        time.sleep(POLL_SECONDS)
        detail = client.get_as(DeploymentLogs, path)
    print_json(wire(detail))


@handles_errors
def logs(
    target: Annotated[
        str, typer.Argument(help="an environment (its instances' output) or a deployment id (its steps' output)")
    ],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new output")] = False,
    instance: Annotated[
        int | None, typer.Option("--instance", "-i", min=1, help="only instance N of the environment (from 1)")
    ] = None,
    service: Annotated[str | None, typer.Option("--service", "-s", help="service name (default: the only one)")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, max=500, help="lines per instance")] = 200,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
) -> None:
    """An environment's running instances' output, or a deployment's step journal and output."""
    client = Client()
    if target in environment_names(client, service):
        if json_out and follow:
            raise typer.BadParameter("--follow prints output as it comes; leave out --json", param_hint="--json")
        if json_out:
            params = {"service": service, "instance": instance, "lines": lines}
            print_json(wire(client.get_as(EnvironmentOutput, f"/environments/{target}/logs", **params)))
            return
        show_instances(client, target, service, instance, lines, follow)
        return
    if instance is not None:
        raise typer.BadParameter(f"{target!r} is not an environment; --instance is for environments")
    show_deployment(client, target, follow, json_out)

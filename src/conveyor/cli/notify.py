"""notify test: a sample message through an environment's notifiers (docs/notifications.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.api.models import SampleSent
from conveyor.cli.client import Client, wire
from conveyor.cli.output import console, handles_errors, print_json
from conveyor.errors import ConveyorError

app = typer.Typer(
    help="Notifications: Slack, webhooks, email and GitHub (docs/notifications.md).", no_args_is_help=True
)


class SampleFailed(ConveyorError):
    """A notifier refused the sample (the answer is printed first)."""


@app.command("test")
@handles_errors
def test(
    environment: Annotated[str, typer.Argument(help="the environment whose notifiers get the sample")],
    service: Annotated[str | None, typer.Option("--service", "-s", help="service name (default: the only one)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
) -> None:
    """Send a sample message through every notifier of ENVIRONMENT now; exit 1 if one failed."""
    sent = Client().send_as(SampleSent, "POST", f"/environments/{environment}/notify/test", {"service": service})
    if json_out:
        print_json(wire(sent))
    else:
        if not sent.results:
            console.print(f"{sent.service}.{sent.environment} has no notifiers (notify: in conveyor.yml)")
        for r in sent.results:
            mark = "[green]sent[/green]" if r.ok else "[red]failed[/red]"
            console.print(f"{mark} {r.notifier} ({r.destination}): {r.note}", highlight=False)
    failed = [r.notifier for r in sent.results if not r.ok]
    if failed:
        raise SampleFailed(f"the sample did not reach: {', '.join(failed)}", fix="see each notifier's answer above")

"""The notifier protocol, its registry, and what a notifier is handed: one delivery (a message for
one destination) and the means to keep per-deployment state (a Slack thread, a GitHub deployment).

A notifier raises ``Retry`` (or any other exception: network errors are retried) when trying again
later may work, and ``Refused`` when it will not (a revoked token, an unknown channel)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from conveyor.registry import Registry
from conveyor.settings import Settings

_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Retry(Exception):  # an outcome, not a bug
    """Try again later; ``after`` (seconds) when the receiver said how long to wait."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Refused(Exception):
    """Trying again will not help: the delivery fails now, with this reason."""


def resolve(value: str | None, what: str) -> str | None:
    """``${NAME}`` from the server's environment (conveyor.yml holds only the name)."""
    if value is None:
        return None
    match = _SECRET.fullmatch(value.strip())
    if match is None:
        return value
    found = os.environ.get(match.group(1))
    if not found:
        raise Refused(f"{what}: {match.group(1)} is not set in the server's environment")
    return found


@dataclass(frozen=True)
class Message:
    """What is said about one event, in the form each notifier needs."""

    event: str  # requested | approval | started | step | succeeded | failed | rolled_back | cancelled | test
    text: str  # the message, formatted for the notifier (Slack mrkdwn, or plain text)
    summary: str  # the deployment's state in a few lines: the Slack message that is updated in place
    values: dict[str, Any] = field(default_factory=dict)  # the facts, for webhooks and GitHub
    recipients: tuple[str, ...] = ()  # email addresses of the people it concerns (approvers)


@dataclass
class Delivery:
    """One message to one destination, and the state that destination keeps per deployment."""

    id: int
    destination: str
    deployment_id: str | None
    config: dict[str, Any]
    message: Message
    settings: Settings
    thread: dict[str, Any] | None = None
    keep_thread: Callable[[dict[str, Any]], None] = lambda _ref: None
    timeout: float = 30.0


class Notifier(Protocol):
    """Sends one delivery; ``style`` picks how messages are written for it (``slack`` mrkdwn with
    <url|links> and <@mentions>, or ``plain``)."""

    style: str

    def send(self, delivery: Delivery) -> str:
        """Deliver it; return a short note of what was done (shown with the delivery)."""
        ...

    def events(self, config: dict[str, Any]) -> frozenset[str]:
        """The events this notifier, so configured, is told about."""
        ...


NOTIFIERS: Registry[Notifier] = Registry(
    "notifier", ("conveyor.notify.slack", "conveyor.notify.webhook", "conveyor.notify.email", "conveyor.notify.github")
)


def notifier(kind: str) -> Notifier:
    NOTIFIERS.load()
    return NOTIFIERS.get(kind)

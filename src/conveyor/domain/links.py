"""An environment's ``links:`` (Sentry, Grafana, CloudWatch...): URL templates expanded for one
deployment, for its page and its announcements.

Placeholders: ``{service}``, ``{environment}``, ``{version}``; the time range ``{from}`` and ``{to}``
as epoch milliseconds (what Grafana's ``from=``/``to=`` and most dashboards take), and
``{from_iso}``, ``{to_iso}`` as RFC 3339 in UTC (``2026-11-27T12:00:00Z``: Sentry's ``start=``/
``end=``, CloudWatch). ``{{`` and ``}}`` are literal braces. Every value is percent-encoded whole
(``/``, ``?``, ``&``, ``#``, ``:`` and ``@`` included), so a version or a service name cannot end the
query value it stands in, add a parameter, or change the host. A link expands to http(s) only.

Pure: no I/O. Documented in docs/conveyor-yml.md (``links``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

DEFAULT_SECONDS = 1800.0  # the range around a deployment that was not monitored: the process's 30 minutes
PLACEHOLDERS = ("service", "environment", "version", "from", "to", "from_iso", "to_iso")
SCHEMES = ("http", "https")
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class LinkError(ValueError):
    """A template that cannot become a safe link: the message names it and the fix."""


@dataclass(frozen=True)
class LinkContext:
    service: str
    environment: str
    version: str
    since: datetime  # the time range the link shows (aware datetimes)
    until: datetime


def epoch_ms(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise LinkError(f"{moment.isoformat()} has no time zone: pass an aware datetime (UTC)")
    return str(int(moment.timestamp() * 1000))


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise LinkError(f"{moment.isoformat()} has no time zone: pass an aware datetime (UTC)")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def link_window(switched_at: datetime, ends_at: datetime | None, seconds: float) -> tuple[datetime, datetime]:
    """The range a deployment's links show: from ``seconds`` before the switch (the previous
    release's numbers the monitoring compares with) to the end of monitoring (or of the deploy)."""
    until = ends_at if ends_at is not None and ends_at > switched_at else switched_at + timedelta(seconds=seconds)
    return switched_at - timedelta(seconds=seconds), until


def unknown_placeholders(template: str) -> list[str]:
    """The placeholders of ``template`` that ``expand`` does not know (empty: it is fine)."""
    return [m.group(1) for m in _FIELD.finditer(template) if m.group(1) is not None and m.group(1) not in PLACEHOLDERS]


def check_template(label: str, template: str) -> None:
    """Raise LinkError when ``template`` could not expand to a safe link (for config loading)."""
    unknown = unknown_placeholders(template)
    if unknown:
        raise LinkError(
            f"link {label!r}: unknown placeholder {', '.join('{' + u + '}' for u in unknown)} in {template!r}; "
            f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}, or {{{{ and }}}} for a literal brace"
        )
    scheme = urlsplit(_FIELD.sub("x", template)).scheme
    if scheme.lower() not in SCHEMES:
        raise LinkError(f"link {label!r}: {template!r} is not an http(s) URL; write it as https://...")


def expand(template: str, ctx: LinkContext, label: str = "link") -> str:
    """``template`` with every placeholder replaced by its percent-encoded value."""
    check_template(label, template)
    values = {
        "service": ctx.service,
        "environment": ctx.environment,
        "version": ctx.version,
        "from": epoch_ms(ctx.since),
        "to": epoch_ms(ctx.until),
        "from_iso": rfc3339(ctx.since),
        "to_iso": rfc3339(ctx.until),
    }

    def replace(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        return quote(values[m.group(1)], safe="")

    url = _FIELD.sub(replace, template)
    if urlsplit(url).scheme.lower() not in SCHEMES:  # pragma: no cover - check_template saw the scheme
        raise LinkError(f"link {label!r}: {url!r} is not an http(s) URL")
    return url


def expand_all(links: Mapping[str, str], ctx: LinkContext) -> list[tuple[str, str]]:
    """(label, url) of every link, in the config's order; a template that cannot be a safe link
    is left out (config loading refuses those; this guards configs stored before it did)."""
    out = []
    for label, template in links.items():
        try:
            out.append((label, expand(template, ctx, label)))
        except LinkError:
            continue
    return out


def links_for(
    links: Mapping[str, str],
    service: str,
    environment: str,
    version: str,
    switched_at: datetime,
    ends_at: datetime | None,
    seconds: float = DEFAULT_SECONDS,
) -> list[tuple[str, str]]:
    """A deployment's links, for its page and its messages: the range is ``link_window`` of its
    switch (monitoring's ``switched_at``; else when it started), the end of its monitoring window
    (else when it finished) and the window's length (else 30 minutes)."""
    since, until = link_window(switched_at, ends_at, seconds)
    return expand_all(links, LinkContext(service, environment, version, since, until))

"""Jinja2 templates, sandboxed: the built-in ones in ``templates/`` (one per event, ``summary``
and ``test``), or the service's own ``templates:`` of conveyor.yml; and how each notifier writes
links, mentions and user text in them."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from conveyor.spec import ServiceSpec

TEMPLATES = Path(__file__).parent / "templates"


class _Builtin(BaseLoader):
    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = TEMPLATES / f"{template}.j2"
        if not path.is_file():
            raise TemplateNotFound(template)
        return path.read_text(), str(path), lambda: True


@lru_cache(maxsize=1)
def _jinja() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=_Builtin(), trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined, autoescape=False
    )


def render_template(name: str, values: dict[str, Any], spec: ServiceSpec | None) -> str:
    """``name`` through the service's own template if it has one, else the built-in."""
    own = spec.templates.get(name) if spec is not None else None  # type: ignore[call-overload]
    template = _jinja().from_string(own) if own is not None else _jinja().get_template(name)
    lines = [line.rstrip() for line in template.render(**values).strip("\n").splitlines()]
    return "\n".join(lines)


class Style:
    """How a notifier writes links, mentions and user text: Slack mrkdwn, or plain text."""

    def __init__(self, name: str, people: dict[str, dict[str, str]]) -> None:
        self.name, self.people = name, people

    def text(self, value: str) -> str:
        if self.name == "slack":
            return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return value

    def link(self, url: str | None, label: str) -> str:
        if not url:
            return self.text(label)
        return f"<{url}|{self.text(label)}>" if self.name == "slack" else f"{label} ({url})"

    def mention(self, user: str) -> str:
        handle = self.people.get(user, {}).get("slack")
        return f"<@{handle}>" if self.name == "slack" and handle else f"@{user}"

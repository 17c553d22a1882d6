"""Pure inputs for gate table tests: a conveyor.yml whose production has the given gates, and
evidence with sensible defaults. No server, no git, no database."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from conveyor.domain.evidence import Evidence
from conveyor.spec import EnvironmentSpec, ServiceSpec, parse_spec

SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
NOW = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)  # a Thursday, 10:00 in Los Angeles
TARGET = "{kind: command, deploy: ./deploy.sh}"


def service(gates: str = "", *, deployers: str = "", extra: str = "") -> ServiceSpec:
    """A service with staging and production; ``gates`` is the YAML body of production's gates."""
    text = textwrap.dedent(
        f"""\
        service: shop
        environments:
          staging:
            branch: main
            target: {TARGET}
          production:
            target: {TARGET}
        """
    )
    if deployers:
        text += f"    deployers: {deployers}\n"
    if gates:
        text += "    gates:\n" + textwrap.indent(textwrap.dedent(gates), " " * 6)
    return parse_spec(text + extra)


def production(spec: ServiceSpec) -> EnvironmentSpec:
    return spec.environment("production")


def evidence(**overrides: Any) -> Evidence:
    values: dict[str, Any] = {
        "environment": "production",
        "sha": SHA,
        "ref": "main",
        "requester": "rita",
        "requester_roles": ("release_manager",),
        "now": NOW,
        "deployment_id": "d-1",
    }
    values.update(overrides)
    return Evidence(**values)

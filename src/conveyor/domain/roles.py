"""The roles Conveyor knows. Which role may deploy where comes from conveyor.yml."""

from __future__ import annotations

from conveyor.errors import InvalidInput

# reporter: an integration (CI, a forge bridge) that reports check results and reviews; never a deployer
ROLES = ("engineer", "release_manager", "manager", "admin", "reporter")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", fix=f"use one of: {', '.join(ROLES)}")
    return role

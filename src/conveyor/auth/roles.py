"""The roles Conveyor knows. Which role may deploy where comes from conveyor.yml."""

from __future__ import annotations

from conveyor.errors import InvalidInput

ROLES = ("engineer", "release_manager", "manager", "admin")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", fix=f"use one of: {', '.join(ROLES)}")
    return role

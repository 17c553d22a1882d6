"""What the admin API answers: users, tokens and the audit log."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from conveyor.api.models import Timestamp, Wire


class User(Wire):
    name: str
    roles: list[str]


class TokenCreated(Wire):
    user: str
    token: str = Field(description="the token itself: in this answer only")


class Account(Wire):
    name: str
    roles: list[str]
    disabled: bool
    has_password: bool
    created_at: Timestamp
    live_tokens: int


class AccountChange(Account):
    change: dict[str, Any] = Field(description="what changed, as the audit entry records it")


class Token(Wire):
    id: int
    user: str
    prefix: str
    name: str | None
    created_at: Timestamp | None
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class ChainHead(Wire):
    id: int
    hash: str


class ChainCheck(Wire):
    """The audit chain verified: ``ok``, or the first bad entry and what is wrong with it."""

    ok: bool
    entries: int
    bad_entry: int | None
    problem: str | None
    head: ChainHead | None
    unkeyed: int
    anchor: ChainHead | None


class AuditEntry(Wire):
    id: int
    at: Timestamp
    actor: str
    action: str
    subject: str
    details: Any
    hash: str


class AuditLog(Wire):
    chain: ChainCheck
    entries: list[AuditEntry]

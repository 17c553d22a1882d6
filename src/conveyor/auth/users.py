"""Users and their API tokens. Tokens are random, shown once, and stored only as a SHA-256 hash
(a 256-bit random token needs no slow hash); passwords are hashed with argon2."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import Connection, select

from conveyor.auth.roles import check_role
from conveyor.errors import Conflict, InvalidInput, NotFound, Unauthorized
from conveyor.store.tables import tokens, users

TOKEN_PREFIX = "cvy_"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class User:
    id: int
    name: str
    roles: tuple[str, ...]

    def has_role(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(conn: Connection, name: str, roles: list[str], now: datetime, password: str | None = None) -> User:
    if not NAME.fullmatch(name):
        raise InvalidInput(f"user name {name!r} is not allowed", fix="use 2-64 characters of a-z, 0-9, '.', '_', '-'")
    if not roles:
        raise InvalidInput("a user needs at least one role", fix="pass --role ROLE")
    roles = [check_role(r) for r in roles]
    if conn.execute(select(users.c.id).where(users.c.name == name)).first():
        raise Conflict(f"user {name!r} already exists", fix="pick another name")
    pw = _hasher.hash(password) if password else None
    result = conn.execute(
        users.insert().values(name=name, roles=roles, password_hash=pw, disabled=False, created_at=now)
    )
    return User(int(result.inserted_primary_key[0]), name, tuple(roles))  # type: ignore[index]


def get_user(conn: Connection, name: str) -> User:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    if row is None:
        raise NotFound(f"no user named {name!r}", fix="create it with `conveyor users add NAME --role ROLE`")
    return User(row.id, row.name, tuple(row.roles))


def count_users(conn: Connection) -> int:
    return len(conn.execute(select(users.c.id).limit(1)).all())


def create_token(conn: Connection, user: User, now: datetime, name: str | None = None) -> str:
    """Make a new token for ``user`` and return it; only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        tokens.insert().values(
            user_id=user.id, token_hash=hash_token(token), prefix=token[:10], name=name, created_at=now
        )
    )
    return token


def authenticate(conn: Connection, token: str | None) -> User:
    if not token:
        raise Unauthorized("no API token was sent", fix="send `Authorization: Bearer TOKEN`")
    row = conn.execute(
        select(tokens.c.id, users.c.id.label("uid"), users.c.name, users.c.roles, users.c.disabled)
        .join(users, users.c.id == tokens.c.user_id)
        .where(tokens.c.token_hash == hash_token(token), tokens.c.revoked_at.is_(None))
    ).first()
    if row is None or row.disabled:
        raise Unauthorized("the API token is not valid", fix="create one with `conveyor tokens create USER`")
    return User(row.uid, row.name, tuple(row.roles))


def check_password(conn: Connection, name: str, password: str) -> User:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    if row is None or not row.password_hash or row.disabled:
        raise Unauthorized("unknown user or wrong password")
    try:
        _hasher.verify(row.password_hash, password)
    except VerificationError as exc:
        raise Unauthorized("unknown user or wrong password") from exc
    return User(row.id, row.name, tuple(row.roles))

"""Users and their API tokens. Tokens are random, shown once, and stored only as a SHA-256 hash
(a 256-bit random token needs no slow hash); passwords are hashed with argon2."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import Connection, or_, select, update

from conveyor.domain.roles import check_role
from conveyor.errors import Conflict, InvalidInput, NotFound, Unauthorized
from conveyor.store.tables import tokens, users

TOKEN_PREFIX = "cvy_"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_hasher = PasswordHasher()
TOUCH_EVERY = timedelta(minutes=1)  # tokens.last_used_at is written at most this often


@dataclass(frozen=True)
class User:
    id: int
    name: str
    roles: tuple[str, ...]

    def has_role(self, *roles: str) -> bool:
        """True when the user holds one of ``roles`` itself: ``admin`` implies no other role."""
        return any(r in self.roles for r in roles)


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
    pw = hash_password(password) if password else None
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


@dataclass(frozen=True)
class Credential:
    """Who a valid API token belongs to, and when the token was last seen in use."""

    user: User
    token_id: int
    last_used_at: datetime | None

    def stale(self, now: datetime) -> bool:
        if self.last_used_at is None:
            return True
        last = self.last_used_at if self.last_used_at.tzinfo else self.last_used_at.replace(tzinfo=now.tzinfo)
        return now - last >= TOUCH_EVERY


def identify(conn: Connection, token: str | None) -> Credential:
    """The live token ``token`` and its enabled user; Unauthorized when it is missing, unknown,
    revoked, or its user is disabled (checked on every request, so either takes effect at once)."""
    if not token:
        raise Unauthorized("no API token was sent", fix="send `Authorization: Bearer TOKEN`")
    row = conn.execute(
        select(
            tokens.c.id, tokens.c.last_used_at, users.c.id.label("uid"), users.c.name, users.c.roles, users.c.disabled
        )
        .join(users, users.c.id == tokens.c.user_id)
        .where(tokens.c.token_hash == hash_token(token), tokens.c.revoked_at.is_(None))
    ).first()
    if row is None or row.disabled:
        raise Unauthorized("the API token is not valid", fix="create one with `conveyor tokens create USER`")
    return Credential(User(row.uid, row.name, tuple(row.roles)), row.id, row.last_used_at)


def authenticate(conn: Connection, token: str | None) -> User:
    return identify(conn, token).user


def touch_token(conn: Connection, token_id: int, now: datetime) -> None:
    """Record that the token was used; a no-op when it was recorded less than a minute ago."""
    conn.execute(
        update(tokens)
        .where(
            tokens.c.id == token_id,
            or_(tokens.c.last_used_at.is_(None), tokens.c.last_used_at <= now - TOUCH_EVERY),
        )
        .values(last_used_at=now)
    )


_dummy: list[str] = []


def _dummy_hash() -> str:
    """An argon2 hash of a random password, made once: unknown users are checked against it so
    that they take as long as known ones (no user names by timing)."""
    if not _dummy:
        _dummy.append(_hasher.hash(secrets.token_urlsafe(16)))
    return _dummy[0]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(conn: Connection, name: str, password: str) -> User:
    """The user ``name`` if ``password`` is theirs. Every refusal runs one argon2 verification,
    whether the user is unknown, disabled, has no password, or sent the wrong one."""
    row = conn.execute(select(users).where(users.c.name == name)).first()
    usable = row is not None and bool(row.password_hash) and not row.disabled
    try:
        _hasher.verify(row.password_hash if usable and row is not None else _dummy_hash(), password)
    except VerificationError as exc:
        raise Unauthorized("unknown user or wrong password") from exc
    if not usable or row is None:
        raise Unauthorized("unknown user or wrong password")
    return User(row.id, row.name, tuple(row.roles))

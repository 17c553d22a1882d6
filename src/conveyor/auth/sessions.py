"""Dashboard sign-in sessions and their CSRF tokens.

A session id is 256 random bits, sent to the browser once in an HttpOnly cookie and stored only as
its SHA-256 (like API tokens: a leaked database does not let anyone sign in). Each session has its
own CSRF token, which every form of the dashboard carries and every POST must send back. Sessions
expire after ``LIFETIME``; signing out deletes the row. The server keeps nothing in memory.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, false, select

from conveyor.auth.users import User, hash_token
from conveyor.store.tables import users, web_sessions

LIFETIME = timedelta(hours=12)
COOKIE = "conveyor_session"


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime

    def csrf_ok(self, sent: str | None) -> bool:
        """True when ``sent`` is this session's CSRF token (compared in constant time)."""
        return bool(sent) and hmac.compare_digest(self.csrf_token.encode(), (sent or "").encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


def start_session(conn: Connection, user: User, now: datetime) -> tuple[str, Session]:
    """Create a session for ``user``; returns the id for the cookie (shown once) and the session.
    Expired sessions of everyone are swept out on the way."""
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
    session_id = new_token()
    session = Session(user, new_token(), now + LIFETIME)
    conn.execute(
        web_sessions.insert().values(
            id_hash=hash_token(session_id),
            user_id=user.id,
            csrf_token=session.csrf_token,
            created_at=now,
            expires_at=session.expires_at,
        )
    )
    return session_id, session


def find_session(conn: Connection, session_id: str | None, now: datetime) -> Session | None:
    """The live session with this id and its user; None if unknown, expired, or the user is disabled."""
    if not session_id:
        return None
    row = conn.execute(
        select(web_sessions.c.csrf_token, web_sessions.c.expires_at, users.c.id, users.c.name, users.c.roles)
        .join(users, users.c.id == web_sessions.c.user_id)
        .where(web_sessions.c.id_hash == hash_token(session_id), users.c.disabled == false())
    ).first()
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    if expires <= now:
        return None
    return Session(User(row.id, row.name, tuple(row.roles)), row.csrf_token, expires)


def end_session(conn: Connection, session_id: str | None) -> None:
    if session_id:
        conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == hash_token(session_id)))

"""Cutting off a leaked token or a departing user (issue 11, item 9), on SQLite and PostgreSQL:
disabling a user stops their tokens and sessions at once, roles and passwords change, any token
can be revoked by id, the last admin cannot be removed, and last_used_at is written once a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from conveyor.auth import accounts
from conveyor.auth.sessions import find_session, start_session
from conveyor.auth.users import User, add_user, authenticate, check_password, create_token, identify, touch_token
from conveyor.errors import Conflict, InvalidInput, NotFound, Unauthorized
from conveyor.store.db import Database
from conveyor.store.tables import tokens

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def test_disabling_a_user_stops_their_tokens_and_sessions_at_once(db: Database) -> None:
    with db.begin() as conn:
        add_user(conn, "ada", ["admin"], NOW)
        bob = add_user(conn, "bob", ["engineer"], NOW, "bob's long password")
        token = create_token(conn, bob, NOW)
        session_id, _ = start_session(conn, bob, NOW)
    with db.begin() as conn:
        assert authenticate(conn, token) == bob and find_session(conn, session_id, NOW)
        change = accounts.set_disabled(conn, "bob", True)
    assert change == {"disabled": {"before": False, "after": True}, "sessions_ended": 1}
    with db.begin() as conn:
        with pytest.raises(Unauthorized):
            authenticate(conn, token)
        assert find_session(conn, session_id, NOW) is None
        with pytest.raises(Unauthorized):
            check_password(conn, "bob", "bob's long password")
        accounts.set_disabled(conn, "bob", False)
    with db.begin() as conn:  # enabling brings the token back (it was never revoked), not the session
        assert authenticate(conn, token) == bob
        assert find_session(conn, session_id, NOW) is None


def test_roles_change_for_the_next_request(db: Database) -> None:
    with db.begin() as conn:
        add_user(conn, "ada", ["admin"], NOW)
        bob = add_user(conn, "bob", ["engineer"], NOW)
        token = create_token(conn, bob, NOW)
        session_id, _ = start_session(conn, bob, NOW)
        change = accounts.set_roles(conn, "bob", ["release_manager", "release_manager", "manager"])
    assert change == {"roles": {"before": ["engineer"], "after": ["release_manager", "manager"]}}
    with db.begin() as conn:
        assert authenticate(conn, token).roles == ("release_manager", "manager")
        session = find_session(conn, session_id, NOW)
        assert session and session.user.roles == ("release_manager", "manager")
        with pytest.raises(InvalidInput, match="'root'"):
            accounts.set_roles(conn, "bob", ["root"])
        with pytest.raises(InvalidInput, match="at least one role"):
            accounts.set_roles(conn, "bob", [])
        with pytest.raises(NotFound, match="'carol'"):
            accounts.set_roles(conn, "carol", ["engineer"])


def test_the_last_enabled_admin_stays(db: Database) -> None:
    with db.begin() as conn:
        add_user(conn, "ada", ["admin", "release_manager"], NOW)
    with db.begin() as conn, pytest.raises(Conflict, match="no enabled admin"):
        accounts.set_disabled(conn, "ada", True)
    with db.begin() as conn, pytest.raises(Conflict, match="no enabled admin"):
        accounts.set_roles(conn, "ada", ["release_manager"])
    with db.begin() as conn:
        add_user(conn, "root2", ["admin"], NOW)
        accounts.set_roles(conn, "ada", ["release_manager"])
        assert [a.name for a in accounts.list_accounts(conn) if "admin" in a.roles] == ["root2"]


def test_a_new_password_works_the_old_one_does_not_and_sessions_end(db: Database) -> None:
    with db.begin() as conn:
        bob = add_user(conn, "bob", ["engineer"], NOW, "the old password")
        session_id, _ = start_session(conn, bob, NOW)
        with pytest.raises(InvalidInput, match="7 characters"):
            accounts.set_password(conn, "bob", "short!!")
        change = accounts.set_password(conn, "bob", "the new password")
    assert change == {"password": "changed", "sessions_ended": 1}
    with db.begin() as conn:
        assert check_password(conn, "bob", "the new password") == bob
        with pytest.raises(Unauthorized):
            check_password(conn, "bob", "the old password")
        assert find_session(conn, session_id, NOW) is None


def test_an_admin_revokes_anyones_token_by_id(db: Database) -> None:
    with db.begin() as conn:
        bob = add_user(conn, "bob", ["engineer"], NOW)
        carol = add_user(conn, "carol", ["manager"], NOW)
        leaked, kept = create_token(conn, bob, NOW, "laptop"), create_token(conn, bob, NOW, "ci")
        create_token(conn, carol, NOW)
    with db.begin() as conn:
        listed = accounts.list_tokens(conn, "bob")
        expected = [("bob", "laptop", leaked[:10]), ("bob", "ci", kept[:10])]
        assert [(t.user, t.name, t.prefix) for t in listed] == expected
        assert len(accounts.list_tokens(conn)) == 3
        assert leaked not in str([t.as_json() for t in accounts.list_tokens(conn)])
        revoked = accounts.revoke_token(conn, listed[0].id, NOW)
    assert revoked.revoked_at == NOW and revoked.user == "bob"
    with db.begin() as conn:
        with pytest.raises(Unauthorized):
            authenticate(conn, leaked)
        assert authenticate(conn, kept) == bob
        with pytest.raises(Conflict, match="already revoked"):
            accounts.revoke_token(conn, listed[0].id, NOW)
        with pytest.raises(NotFound, match="id 999"):
            accounts.revoke_token(conn, 999, NOW)
        assert [a.live_tokens for a in accounts.list_accounts(conn)] == [1, 1]


def test_last_used_at_is_written_at_most_once_a_minute(db: Database) -> None:
    with db.begin() as conn:
        token = create_token(conn, add_user(conn, "bob", ["engineer"], NOW), NOW)

    def last_used() -> datetime | None:
        with db.begin() as conn:
            value = conn.execute(select(tokens.c.last_used_at)).scalar()
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value

    seen = []
    for offset in (0, 10, 59, 60, 61, 125):
        now = NOW + timedelta(seconds=offset)
        with db.begin() as conn:
            credential = identify(conn, token)
            if credential.stale(now):
                touch_token(conn, credential.token_id, now)
        seen.append(last_used())
    t = [NOW + timedelta(seconds=s) for s in (0, 0, 0, 60, 60, 125)]
    assert seen == t


def test_admin_is_explicit_and_implies_no_other_role() -> None:
    admin = User(1, "ada", ("admin",))
    assert admin.has_role("admin")
    assert not admin.has_role("manager") and not admin.has_role("release_manager", "engineer")
    assert User(2, "rita", ("admin", "release_manager")).has_role("release_manager")

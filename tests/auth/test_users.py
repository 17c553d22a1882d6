"""Users, roles, API tokens and passwords on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from conveyor.auth.users import add_user, authenticate, check_password, create_token, get_user
from conveyor.domain.roles import ROLES
from conveyor.errors import Conflict, InvalidInput, NotFound, Unauthorized
from conveyor.store.db import Database
from conveyor.store.tables import tokens, users

NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", ["bob", "ci-bot.2", "a_b", "r2", "x" * 64])
def test_good_names_are_accepted(db: Database, name: str) -> None:
    with db.begin() as conn:
        user = add_user(conn, name, ["engineer"], NOW)
        assert user.name == name and user.roles == ("engineer",)
        assert get_user(conn, name) == user


TRAILING_NEWLINE = pytest.param("bob\n", id="trailing-newline")


@pytest.mark.parametrize(
    "name", ["", "b", "Bob", "bob smith", "-bob", ".bob", "bob/x", "x" * 65, "böb", TRAILING_NEWLINE]
)
def test_bad_names_are_refused(db: Database, name: str) -> None:
    with db.begin() as conn, pytest.raises(InvalidInput) as caught:
        add_user(conn, name, ["engineer"], NOW)
    assert repr(name) in caught.value.message
    with db.begin() as conn:
        assert conn.execute(select(users)).all() == []


def test_roles_are_checked(db: Database) -> None:
    with db.begin() as conn, pytest.raises(InvalidInput) as caught:
        add_user(conn, "bob", ["engineer", "superuser"], NOW)
    assert "'superuser'" in caught.value.message
    assert caught.value.fix and all(role in caught.value.fix for role in ROLES)
    with db.begin() as conn, pytest.raises(InvalidInput, match="at least one role"):
        add_user(conn, "bob", [], NOW)
    with db.begin() as conn:
        assert conn.execute(select(users)).all() == []
        user = add_user(conn, "bob", ["release_manager", "manager"], NOW)
    assert user.roles == ("release_manager", "manager")
    assert user.has_role("manager") and not user.has_role("admin", "engineer")


def test_a_duplicate_name_is_a_conflict(db: Database) -> None:
    with db.begin() as conn:
        first = add_user(conn, "bob", ["engineer"], NOW)
    with db.begin() as conn, pytest.raises(Conflict, match="'bob'"):
        add_user(conn, "bob", ["admin"], NOW)
    with db.begin() as conn:
        assert get_user(conn, "bob") == first  # still the first one, roles unchanged
    with db.begin() as conn, pytest.raises(NotFound, match="'carol'"):
        get_user(conn, "carol")


def test_tokens_are_stored_only_as_hashes(db: Database, database_url: str, tmp_path: Path) -> None:
    with db.begin() as conn:
        bob = add_user(conn, "bob", ["engineer"], NOW)
        token = create_token(conn, bob, NOW, "laptop")
        other = create_token(conn, bob, NOW)
    assert token.startswith("cvy_") and len(token) > 40 and token != other
    with db.begin() as conn:
        rows = conn.execute(select(tokens)).all()
    assert len(rows) == 2
    for row in rows:
        for value in row:
            assert token not in str(value) and other not in str(value)
    stored = {row.token_hash for row in rows}
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in (token, other)}
    if db.is_sqlite:  # not in the database files either (journal included)
        db.dispose()
        for path in tmp_path.glob("conveyor.db*"):
            data = path.read_bytes()
            assert token.encode() not in data and other.encode() not in data, path


def test_authenticate_good_bad_and_revoked_tokens(db: Database) -> None:
    with db.begin() as conn:
        bob = add_user(conn, "bob", ["engineer"], NOW)
        carol = add_user(conn, "carol", ["admin"], NOW)
        token, spare = create_token(conn, bob, NOW), create_token(conn, bob, NOW)
        carols = create_token(conn, carol, NOW)
    with db.begin() as conn:
        assert authenticate(conn, token) == bob
        assert authenticate(conn, carols) == carol
        for bad in (None, "", "cvy_nope", token + "x", token[:-1], token.upper()):
            with pytest.raises(Unauthorized):
                authenticate(conn, bad)
        conn.execute(
            update(tokens)
            .where(tokens.c.token_hash == hashlib.sha256(token.encode()).hexdigest())
            .values(revoked_at=NOW)
        )
    with db.begin() as conn:
        with pytest.raises(Unauthorized, match="not valid"):
            authenticate(conn, token)
        assert authenticate(conn, spare) == bob  # revoking one token leaves the others
        conn.execute(update(users).where(users.c.name == "bob").values(disabled=True))
    with db.begin() as conn:
        with pytest.raises(Unauthorized):
            authenticate(conn, spare)
        assert authenticate(conn, carols) == carol


def test_check_password(db: Database) -> None:
    with db.begin() as conn:
        bob = add_user(conn, "bob", ["engineer"], NOW, password="correct horse battery")
        add_user(conn, "ci-bot", ["engineer"], NOW)  # token only, no password
    with db.begin() as conn:
        assert check_password(conn, "bob", "correct horse battery") == bob
        stored = conn.execute(select(users.c.password_hash).where(users.c.name == "bob")).scalar_one()
        assert stored.startswith("$argon2") and "correct horse" not in stored
        for name, password in [
            ("bob", "wrong"),
            ("bob", ""),
            ("bob", "correct horse battery "),
            ("ci-bot", ""),
            ("ci-bot", "anything"),
            ("nobody", "correct horse battery"),
        ]:
            with pytest.raises(Unauthorized, match="unknown user or wrong password"):
                check_password(conn, name, password)
        conn.execute(update(users).where(users.c.name == "bob").values(disabled=True))
    with db.begin() as conn, pytest.raises(Unauthorized):
        check_password(conn, "bob", "correct horse battery")

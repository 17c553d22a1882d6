"""Sessions without a browser: stored hashed, expire, end on sign-out, refuse a disabled user; the
CSRF token is per session and compared in full; the session table matches its migration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update

from conveyor.auth.sessions import LIFETIME, end_session, find_session, start_session
from conveyor.auth.users import add_user, hash_token
from conveyor.store.db import Database
from conveyor.store.tables import metadata, users, web_sessions
from conveyor.web.pages import short_ref, ticket_href, web_url
from conveyor.web.signin import safe_next

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def test_a_session_is_stored_hashed_expires_and_ends(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    db.migrate()
    with db.begin() as conn:
        user = add_user(conn, "rita", ["release_manager"], NOW, "pw-of-rita")
        session_id, session = start_session(conn, user, NOW)
        other_id, other = start_session(conn, user, NOW)
    with db.read() as conn:
        stored = conn.execute(select(web_sessions.c.id_hash)).scalars().all()
        assert session_id not in stored and hash_token(session_id) in stored
        found = find_session(conn, session_id, NOW + timedelta(hours=1))
        assert found is not None and found.user.name == "rita" and found.csrf_token == session.csrf_token
        assert session.csrf_token != other.csrf_token
        assert find_session(conn, session_id, NOW + LIFETIME) is None  # expired
        assert find_session(conn, "not-a-session", NOW) is None
        assert find_session(conn, None, NOW) is None
    assert session.csrf_ok(session.csrf_token)
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok(other.csrf_token)
    assert not session.csrf_ok(session.csrf_token[:-1])
    with db.begin() as conn:
        end_session(conn, session_id)
    with db.read() as conn:
        assert find_session(conn, session_id, NOW) is None
        assert find_session(conn, other_id, NOW) is not None
    with db.begin() as conn:
        conn.execute(update(users).where(users.c.name == "rita").values(disabled=True))
    with db.read() as conn:
        assert find_session(conn, other_id, NOW) is None
    with db.begin() as conn:  # a new sign-in sweeps expired sessions out
        start_session(conn, user, NOW + LIFETIME + timedelta(seconds=1))
        assert len(conn.execute(select(web_sessions)).all()) == 1
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    db.dispose()


def test_links_and_redirects_stay_safe() -> None:
    assert safe_next("/history?state=failed") == "/history?state=failed"
    for bad in ("https://evil.example", "//evil.example/x", "/\\evil.example", "", None, "javascript:alert(1)"):
        assert safe_next(bad) == "/"
    assert ticket_href("PROJ-1", "https://jira.example.com/browse/{ticket}") == "https://jira.example.com/browse/PROJ-1"
    assert ticket_href("a b/c", "https://t/{ticket}") == "https://t/a%20b%2Fc"
    assert ticket_href("PROJ-1", None) is None and ticket_href("PROJ-1", "https://no-placeholder") is None
    assert web_url("javascript:alert(1)") is None and web_url("https://ci/run/1") == "https://ci/run/1"
    assert short_ref("a" * 40) == "a" * 12 and short_ref("main") == "main"

"""The outbox's columns say what they hold: migration 0012 gives a delivered message its
``outcome`` (what the receiver did), moved out of ``last_error`` where rows before it kept it;
the migrated schema is the one store/tables.py declares. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import insert

from conveyor.store import notifications as outbox
from conveyor.store.db import MIGRATIONS, Database
from conveyor.store.tables import metadata, notifications

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _upgrade(db: Database, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _row(state: str, last_error: str | None) -> dict[str, object]:
    return {
        "position": 1 if state == "delivered" else 2,
        "deployment_id": "d1",
        "destination": "shop/production/0:slack",
        "notifier": "slack",
        "event": "requested",
        "config": {},
        "context": {},
        "state": state,
        "attempts": 1,
        "next_at": NOW,
        "created_at": NOW,
        "last_error": last_error,
    }


def test_a_delivered_rows_note_is_its_outcome_not_an_error(database_url: str) -> None:
    db = Database(database_url)
    try:
        _upgrade(db, "0011")
        with db.engine.begin() as conn:  # as 0011 left them: the success note in last_error
            conn.execute(insert(notifications).values(_row("delivered", "posted it")))
            conn.execute(insert(notifications).values(_row("pending", "ConnectError: refused")))
        db.migrate()
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        with db.read() as conn:
            delivered, retrying = outbox.for_deployment(conn, "d1")
        assert (delivered.outcome, delivered.last_error, delivered.shown_outcome) == ("posted it", None, "posted it")
        assert (retrying.outcome, retrying.last_error) == (None, "ConnectError: refused")  # not delivered: left alone
        assert retrying.shown_outcome == "ConnectError: refused"
        assert outbox.delivery_json(delivered)["outcome"] == "posted it"
        with db.begin() as conn:  # from now on: a retry's error stays an error, the delivery its outcome
            outbox.attempt_failed(conn, retrying.id, text="t", error="ConnectError: reset", retry_at=NOW)
            outbox.delivered(conn, retrying.id, NOW, "t", "posted the deployment's message")
        with db.read() as conn:
            _, retried = outbox.for_deployment(conn, "d1")
        assert (retried.state, retried.attempts) == ("delivered", 3)
        assert (retried.outcome, retried.last_error) == ("posted the deployment's message", "ConnectError: reset")
        assert outbox.delivery_json(retried)["outcome"] == "posted the deployment's message"
    finally:
        db.dispose()

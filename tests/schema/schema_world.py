"""A service whose migrations are .sql files run by psql against a real PostgreSQL database (the
``app_database`` fixture), on a local target with the built-in router, for the rollback and
migrate tests of docs/database.md.

The repository's ``db/migrate.sh`` applies each file of ``db/migrations`` not yet applied (its
name recorded in ``schema_migrations``); ``db/down.sh`` undoes, newest first, each applied
migration that the release rolled back to does not have (``db/down/NAME``). Every run of either
appends a line to EFFECTS/effects.log; a run waits while EFFECTS/hold-NAME exists (as
tests/e2e/harness.py's step.sh does), so a test can kill the server in the middle of it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from tests.e2e.harness import Server, commit, effects, git
from tests.e2e.local import make_web_repo, stop_agent

from conveyor.devserver import free_port, make_token

MIGRATE_SH = textwrap.dedent(
    """\
    #!/bin/sh
    # apply each db/migrations/*.sql not applied yet, in name order
    set -e
    echo "migrate run $CONVEYOR_ENV $CONVEYOR_VERSION" >> "$EFFECTS/effects.log"
    while [ -f "$EFFECTS/hold-migrate" ]; do sleep 0.05; done
    psql "$APP_DB" -q -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY)"
    for f in $(ls db/migrations/*.sql | sort); do
      n=$(basename "$f")
      if [ -z "$(psql "$APP_DB" -tA -c "SELECT 1 FROM schema_migrations WHERE name = '$n'")" ]; then
        psql "$APP_DB" -q -v ON_ERROR_STOP=1 -1 -f "$f" -c "INSERT INTO schema_migrations VALUES ('$n')"
        echo "migrated $n $CONVEYOR_ENV" >> "$EFFECTS/effects.log"
        echo "migrated $n"
      fi
    done
    """
)

DOWN_SH = textwrap.dedent(
    """\
    #!/bin/sh
    # undo, newest first, each applied migration the target release does not have
    set -e
    echo "down start $CONVEYOR_ENV to $CONVEYOR_ROLLBACK_TO_VERSION" >> "$EFFECTS/effects.log"
    while [ -f "$EFFECTS/hold-down" ]; do sleep 0.05; done
    for n in $(psql "$APP_DB" -tA -c "SELECT name FROM schema_migrations ORDER BY name DESC"); do
      if [ ! -f "$CONVEYOR_ROLLBACK_TO_WORKDIR/db/migrations/$n" ]; then
        psql "$APP_DB" -q -v ON_ERROR_STOP=1 -1 -f "db/down/$n" -c "DELETE FROM schema_migrations WHERE name = '$n'"
        echo "undone $n $CONVEYOR_ENV" >> "$EFFECTS/effects.log"
        echo "undone $n"
      fi
    done
    echo "down done $CONVEYOR_ENV" >> "$EFFECTS/effects.log"
    """
)

CREATE_USERS = "CREATE TABLE users (id bigint, name text);\n"
DROP_NAME = "ALTER TABLE users DROP COLUMN name;\n"
ADD_NAME_BACK = "ALTER TABLE users ADD COLUMN name text;\n"


def config(port: int, effects_dir: Path, database_url: str, migrate: str, extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
            service: web
            run: python3 app.py --port $PORT
            health: {{path: /healthz, interval: 100ms, successes: 2, timeout: 10s}}
            env: {{EFFECTS: '{effects_dir}', APP_DB: '{database_url}'}}
            environments:
              staging:
                target: {{kind: local, port: {port}, replicas: 2}}
                rollout: {{strategy: rolling, max_surge: 1}}
            """
        )
        + textwrap.indent(migrate, "    ")
        + extra
    )


MIGRATE_WITH_DOWN = "migrate: {run: ./db/migrate.sh, down: ./db/down.sh}\n"


@dataclass
class SchemaSite:
    repo: Path
    effects_dir: Path
    server: Server
    port: int
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def as_user(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return self.server.api(method, path, headers=headers, **kwargs)

    def cli(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.server.env(), "CONVEYOR_TOKEN": self.tokens[user]}
        return subprocess.run(
            [sys.executable, "-m", "conveyor", *args], env=env, capture_output=True, text=True, timeout=180
        )

    @contextmanager
    def dashboard(self, user: str) -> Iterator[httpx.Client]:
        """An HTTP client signed in to the dashboard as ``user``."""
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            form = client.get("/login")
            data = {"username": user, "password": password(user), "csrf_token": csrf(form.text), "next": "/"}
            signed_in = client.post("/login", data=data, follow_redirects=False)
            assert signed_in.status_code == 303, signed_in.text
            yield client

    def effects(self) -> list[str]:
        return effects(self.effects_dir)

    def columns(self, table: str = "users") -> list[str]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                (table,),
            ).fetchall()
        return [r[0] for r in rows]

    def serving(self) -> dict[str, Any] | None:
        status = self.server.ok("GET", "/status", params={"environment": "staging"})
        current: dict[str, Any] | None = status[0]["current"] if status else None
        return current

    def deploy(self, ref: str, acknowledge: bool = False) -> dict[str, Any]:
        """Deploy ``ref`` to staging and wait; with ``acknowledge``, a release manager
        acknowledges its migration's findings (POST .../migrations/acknowledge) first."""
        d = self.server.ok("POST", "/deployments", json={"environment": "staging", "ref": ref})
        if acknowledge:
            from tests.conftest import wait_until

            wait_until(
                lambda: self.server.ok("GET", f"/deployments/{d['id']}/migrations").get("report"),
                timeout=60,
                what="the migration's lint report",
            )
            self.as_user(
                "rita",
                "POST",
                f"/deployments/{d['id']}/migrations/acknowledge",
                json={"reason": "name is read nowhere since v1; dropped on purpose"},
            ).raise_for_status()
        done = self.server.wait_finished(d["id"], timeout=120)
        assert done["state"] == "succeeded", done
        return done

    def audit(self, action: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.server.ok("GET", "/audit", params={"limit": 500})["entries"]
        return [e for e in entries if e["action"] == action]


def start_schema_site(
    root: Path, database_url: str, app_database: str, migrate: str = MIGRATE_WITH_DOWN, extra: str = "", **kw: Any
) -> SchemaSite:
    """v1 (creates users(id, name)) on main, deployed nowhere yet; users: rita (release_manager),
    eddie (engineer), carl (reporter: may not deploy)."""
    effects_dir = root / "effects"
    effects_dir.mkdir(parents=True)
    port = free_port()
    repo = make_web_repo(root / "web", config(port, effects_dir, app_database, migrate, extra))
    commit(
        repo,
        {"db/migrate.sh": MIGRATE_SH, "db/down.sh": DOWN_SH, "db/migrations/0001_users.sql": CREATE_USERS},
        "v1: users",
    )
    git(repo, "tag", "v1.0.0")
    server = Server(home=root / "home", database_url=database_url, poll_interval=0, **kw)
    server.start()
    site = SchemaSite(repo, effects_dir, server, port, app_database)
    site.tokens = {
        "rita": make_token(database_url, "rita", ["release_manager"], password=password("rita")),
        "eddie": make_token(database_url, "eddie", ["engineer"], password=password("eddie")),
        "carl": make_token(database_url, "carl", ["reporter"], password=password("carl")),
    }
    server.ok("POST", "/services", json={"source": str(repo)})
    return site


def drop_name_release(site: SchemaSite) -> None:
    """v2 on main: its migration drops users.name; its down file adds it back."""
    commit(
        site.repo,
        {"db/migrations/0002_drop_name.sql": DROP_NAME, "db/down/0002_drop_name.sql": ADD_NAME_BACK},
        "v2: drop users.name",
    )
    git(site.repo, "tag", "v2.0.0")


def stop_schema_site(site: SchemaSite) -> None:
    for hold in site.effects_dir.glob("hold-*"):
        hold.unlink()
    site.server.stop()
    stop_agent(site.server.home)


def password(user: str) -> str:
    return f"{user} has a long passphrase"


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)

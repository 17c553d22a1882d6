"""A service whose migrations are plain .sql files applied by psql to a real PostgreSQL database
(the app's, fixture ``app_database``), deployed by a real Conveyor server: the demo app on a local
target (the agent and its built-in router) or a command target that only records what serves."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from tests.e2e.harness import Server, commit, free_port, git
from tests.e2e.local import make_web_repo, stop_agent

# Applies each migrations/*.sql not applied yet, in name order, each in one transaction with its
# bookkeeping row: a migration that fails leaves nothing behind.
MIGRATE_SH = textwrap.dedent(
    """\
    #!/bin/sh
    set -e
    psql "$APP_DB" -v ON_ERROR_STOP=1 -q -c "CREATE TABLE IF NOT EXISTS applied (name text PRIMARY KEY)"
    for f in db/*.sql; do
      [ -e "$f" ] || continue
      n=$(basename "$f")
      if [ -n "$(psql "$APP_DB" -tAq -c "SELECT 1 FROM applied WHERE name = '$n'")" ]; then continue; fi
      echo "applying $n"
      psql "$APP_DB" -v ON_ERROR_STOP=1 -q -1 -f "$f" -c "INSERT INTO applied VALUES ('$n')"
    done
    """
)
DEPLOY_SH = '#!/bin/sh\necho "$CONVEYOR_VERSION $CONVEYOR_SHA" > "$CONVEYOR_STATE_DIR/serving"\n'


def env_block(name: str, *, port: int | None, body: str) -> str:
    """One environment of conveyor.yml: a local target on ``port``, or a command target."""
    if port is not None:
        target = f"{{kind: local, port: {port}, replicas: 1}}"
    else:
        target = "{kind: command, deploy: ./scripts/deploy.sh}"
    lines = [f"  {name}:", f"    target: {target}", *("    " + line for line in textwrap.dedent(body).splitlines())]
    return "\n".join(lines) + "\n"


def sql_config(app_db: str, environments: str, *, local: bool) -> str:
    head = "service: web\n"
    if local:
        head += (
            "run: python3 app.py --port $PORT\nhealth: {path: /healthz, interval: 100ms, successes: 2, timeout: 10s}\n"
        )
    return head + f"env: {{APP_DB: '{app_db}'}}\nenvironments:\n" + environments


def make_sql_repo(path: Path, config: str, migrations: dict[str, str], *, local: bool) -> Path:
    files = {"scripts/migrate.sh": MIGRATE_SH, **{f"db/{k}": v for k, v in migrations.items()}}
    if local:
        make_web_repo(path, config)
    else:
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        files |= {"conveyor.yml": config, "scripts/deploy.sh": DEPLOY_SH}
    commit(path, files, "migrations")  # commit() makes the .sh files executable
    return path


@dataclass
class SqlWorld:
    repo: Path
    server: Server
    app_db: str
    db_file: Path

    def deploy(self, env: str, ref: str = "main", timeout: float = 90, **body: Any) -> dict[str, Any]:
        d = self.server.ok("POST", "/deployments", json={"environment": env, "ref": ref, **body})
        return self.server.wait_finished(d["id"], timeout=timeout)

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.app_db, autocommit=True) as conn:
            return list(conn.execute(query, args).fetchall())

    def columns(self, table: str) -> list[str]:
        rows = self.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            table,
        )
        return [r[0] for r in rows]

    def migration_run(self, deployment_id: str) -> dict[str, Any] | None:
        """The migration_runs row of a deployment, read from Conveyor's own (SQLite) database."""
        with sqlite3.connect(self.db_file) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM migration_runs WHERE deployment_id = ?", (deployment_id,)).fetchone()
        return dict(row) if row else None


@contextmanager
def sql_world(
    tmp_path: Path, app_db: str, environments: str, migrations: dict[str, str], *, local: bool, process: bool = False
) -> Iterator[SqlWorld]:
    """The service registered on a server of its own (``process=True``: a child process, to SIGKILL)."""
    repo = make_sql_repo(tmp_path / "web", sql_config(app_db, environments, local=local), migrations, local=local)
    db_file = tmp_path / "c.db"
    server = Server(home=tmp_path / "home", database_url=f"sqlite:///{db_file}", poll_interval=0, process=process)
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        yield SqlWorld(repo, server, app_db, db_file)
    finally:
        server.stop()
        if local:
            stop_agent(server.home)


__all__ = ["SqlWorld", "commit", "env_block", "free_port", "sql_world"]

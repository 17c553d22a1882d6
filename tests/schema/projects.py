"""Real projects whose migrations Conveyor lints and runs (docs/database.md): git repositories of an
Alembic project and a Django project, each revision or migration its own commit.

Both read their database from ``APP_DATABASE_URL`` (a libpq URL, as the ``app_database`` fixture
gives). Their ``migrate:`` blocks (``ALEMBIC_MIGRATE``, ``DJANGO_MIGRATE``) are the ones
docs/database.md shows; the tests prove them against the real PostgreSQL.
"""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.harness import commit, git
from tests.e2e.local import make_web_repo

VENV_BIN = Path(sys.executable).parent  # alembic, django-admin and squawk live here


def project_env(database_url: str, **extra: str) -> dict[str, str]:
    """The variables a project's commands need: its database, and the venv's programs first on PATH."""
    return {
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "APP_DATABASE_URL": database_url,
        **extra,
    }


# --- Alembic -----------------------------------------------------------------------------------

# The migrate block docs/database.md shows for Alembic. `sql` prints the SQL of the revisions the
# database does not have yet (from its current revision, or from the start on a new database);
# `down` goes back to the head of the release being rolled back to.
ALEMBIC_MIGRATE = """\
migrate:
  run: alembic upgrade head
  sql: from=$(alembic current | cut -d' ' -f1); alembic upgrade "${from:+$from:}head" --sql
  down: alembic downgrade "$(cd "$CONVEYOR_ROLLBACK_TO_WORKDIR" && alembic heads | cut -d' ' -f1)"
"""

# The database block docs/database.md shows: a pg_dump before each migration of a deploy, and the
# restore of it for `rollback --with-database` (where migrate.down is not set).
PG_DUMP_DATABASE = """\
database:
  backup: pg_dump --format=custom --file="$CONVEYOR_BACKUP" "$APP_DATABASE_URL"
  restore: pg_restore --clean --if-exists --single-transaction --dbname="$APP_DATABASE_URL" "$CONVEYOR_BACKUP"
"""

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
prepend_sys_path = .
path_separator = os

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

# env.py: the URL from APP_DATABASE_URL; online, it notes the alembic command and its session's
# lock_timeout and statement_timeout in $APP_SETTINGS_LOG (when set), so a test sees what PGOPTIONS gave it.
ALEMBIC_ENV = """\
import os
import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def database_url() -> str:
    url = os.environ.get("APP_DATABASE_URL")
    if not url:
        raise SystemExit("APP_DATABASE_URL is not set: set it to the database's postgresql:// URL")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        log = os.environ.get("APP_SETTINGS_LOG")
        if log:
            lock = connection.exec_driver_sql("SHOW lock_timeout").scalar()
            statement = connection.exec_driver_sql("SHOW statement_timeout").scalar()
            connection.rollback()
            with open(log, "a") as out:
                out.write(f"{' '.join(sys.argv[1:])}: lock_timeout={lock} statement_timeout={statement}\\n")
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

# revision id -> (message, upgrade body, downgrade body), in the order they are committed
ALEMBIC_REVISIONS: dict[str, tuple[str, str, str]] = {
    "r1_users": (
        "create table users",
        'op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))',
        'op.drop_table("users")',
    ),
    "r2_email": (
        "expand: users.email, nullable, indexed concurrently",
        textwrap.dedent(
            """\
            op.add_column("users", sa.Column("email", sa.Text, nullable=True))
            with op.get_context().autocommit_block():
                op.create_index("ix_users_email", "users", ["email"], postgresql_concurrently=True)"""
        ),
        textwrap.dedent(
            """\
            with op.get_context().autocommit_block():
                op.drop_index("ix_users_email", table_name="users", postgresql_concurrently=True)
            op.drop_column("users", "email")"""
        ),
    ),
    "r3_drop_name": (
        "contract: drop users.name",
        'op.drop_column("users", "name")',
        'op.add_column("users", sa.Column("name", sa.Text, nullable=True))',
    ),
    "r4_age": (
        "users.age NOT NULL without a default, and a plain index",
        textwrap.dedent(
            """\
            op.add_column("users", sa.Column("age", sa.Integer, nullable=False))
            op.create_index("ix_users_age", "users", ["age"])"""
        ),
        textwrap.dedent(
            """\
            op.drop_index("ix_users_age", table_name="users")
            op.drop_column("users", "age")"""
        ),
    ),
}


def _revision_file(rev: str, down: str | None, message: str, upgrade: str, downgrade: str) -> str:
    return (
        f'"""{message}"""\n\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = {rev!r}\n"
        f"down_revision = {down!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        f"{textwrap.indent(upgrade, '    ')}\n\n\n"
        "def downgrade() -> None:\n"
        f"{textwrap.indent(downgrade, '    ')}\n"
    )


@dataclass
class AlembicProject:
    """A git repository of an Alembic project; ``add(rev)`` commits one revision on top of the head."""

    path: Path
    head: str | None = None
    shas: dict[str, str] = field(default_factory=dict)  # revision id -> the commit that adds it

    def add(self, rev: str, extra: dict[str, str] | None = None) -> str:
        message, upgrade, downgrade = ALEMBIC_REVISIONS[rev]
        text = _revision_file(rev, self.head, message, upgrade, downgrade)
        sha = commit(self.path, {f"migrations/versions/{rev}.py": text, **(extra or {})}, f"{rev}: {message}")
        self.head = rev
        self.shas[rev] = sha
        return sha


ALEMBIC_FILES = {"alembic.ini": ALEMBIC_INI, "migrations/env.py": ALEMBIC_ENV, "migrations/versions/.keep": ""}


def alembic_project(path: Path, files: dict[str, str] | None = None) -> AlembicProject:
    """A new repository with the Alembic setup (and ``files``, e.g. conveyor.yml) and no revision yet."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, {**ALEMBIC_FILES, **(files or {})}, "alembic setup")
    return AlembicProject(path)


def alembic_web_project(path: Path, config: str) -> AlembicProject:
    """The demo web app (examples/demo-app, for a local target) with the Alembic setup and no revision yet."""
    make_web_repo(path, config)
    commit(path, ALEMBIC_FILES, "alembic setup")
    return AlembicProject(path)


# --- Django ------------------------------------------------------------------------------------

# The migrate block docs/database.md shows for Django. `sql` runs sqlmigrate for each migration
# showmigrations lists as not applied ("[ ]"); `down` migrates the app back to the last migration
# of the release being rolled back to.
DJANGO_MIGRATE = """\
migrate:
  run: python manage.py migrate --no-input
  sql: >-
    python manage.py showmigrations --plan | sed -n 's/^\\[ \\] *//p' | tr . ' ' |
    while read app name; do python manage.py sqlmigrate "$app" "$name"; done
  down: >-
    python manage.py migrate --no-input shop
    "$(cd "$CONVEYOR_ROLLBACK_TO_WORKDIR/shop/migrations" && ls [0-9]*.py | tail -1 | cut -d. -f1)"
"""

DJANGO_FILES = {
    "manage.py": textwrap.dedent(
        """\
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")
            from django.core.management import execute_from_command_line

            execute_from_command_line(sys.argv)
        """
    ),
    "site_settings.py": textwrap.dedent(
        """\
        import os
        from urllib.parse import unquote, urlsplit

        _url = os.environ.get("APP_DATABASE_URL")
        if not _url:
            raise SystemExit("APP_DATABASE_URL is not set: set it to the database's postgresql:// URL")
        _db = urlsplit(_url)
        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": _db.path.lstrip("/"),
                "USER": unquote(_db.username or ""),
                "PASSWORD": unquote(_db.password or ""),
                "HOST": _db.hostname or "",
                "PORT": str(_db.port or ""),
            }
        }
        INSTALLED_APPS = ["shop"]
        SECRET_KEY = "a-test-project-key"
        USE_TZ = True
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
        """
    ),
    "shop/__init__.py": "",
    "shop/migrations/__init__.py": "",
}

_MODEL_HEAD = (
    "from django.db import models\n\n\nclass Customer(models.Model):\n    name = models.CharField(max_length=100)\n"
)
_EMAIL_FIELD = "    email = models.CharField(max_length=200)\n"
_EMAIL_INDEX = '\n    class Meta:\n        indexes = [models.Index(fields=["email"], name="shop_customer_email_idx")]\n'

DJANGO_MIGRATIONS: dict[str, tuple[str, str]] = {
    # name -> (operations, models.py after it)
    "0001_initial": (
        textwrap.dedent(
            """\
            migrations.CreateModel(
                name="Customer",
                fields=[
                    ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                    ("name", models.CharField(max_length=100)),
                ],
            ),"""
        ),
        _MODEL_HEAD,
    ),
    "0002_customer_email": (
        'migrations.AddField(model_name="customer", name="email", field=models.CharField(max_length=200)),',
        _MODEL_HEAD + _EMAIL_FIELD,
    ),
    "0003_customer_email_idx": (
        'migrations.AddIndex(model_name="customer", '
        'index=models.Index(fields=["email"], name="shop_customer_email_idx")),',
        _MODEL_HEAD + _EMAIL_FIELD + _EMAIL_INDEX,
    ),
}


@dataclass
class DjangoProject:
    """A git repository of a Django project with one app, ``shop``; ``add(name)`` commits a migration."""

    path: Path
    last: str | None = None
    shas: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, extra: dict[str, str] | None = None) -> str:
        operations, models_py = DJANGO_MIGRATIONS[name]
        dependencies = f'[("shop", "{self.last}")]' if self.last else "[]"
        text = (
            "from django.db import migrations, models\n\n\n"
            "class Migration(migrations.Migration):\n"
            f"    dependencies = {dependencies}\n"
            "    operations = [\n"
            f"{textwrap.indent(operations, '        ')}\n"
            "    ]\n"
        )
        files = {f"shop/migrations/{name}.py": text, "shop/models.py": models_py, **(extra or {})}
        sha = commit(self.path, files, f"shop migration {name}")
        self.last = name
        self.shas[name] = sha
        return sha


def django_project(path: Path, files: dict[str, str] | None = None) -> DjangoProject:
    """A new repository with the Django project (and ``files``) and no migration yet."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, {**DJANGO_FILES, "shop/models.py": "", **(files or {})}, "django setup")
    return DjangoProject(path)

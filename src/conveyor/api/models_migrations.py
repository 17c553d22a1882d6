"""Wire models of a deployment's migrations (docs/database.md), shared by the API and the CLI."""

from __future__ import annotations

from pydantic import Field

from conveyor.api.models import Timestamp, Wire


class MigrationFinding(Wire):
    rule: str = Field(description="the squawk rule")
    message: str
    statement: str = Field(description="the statement it found, on one line")
    line: int = Field(description="1-based line of the SQL where the statement starts")
    fix: str = Field(description="what the process document asks for instead")
    destructive: bool = Field(description="the code of the release before no longer finds what it reads")


class MigrationReportView(Wire):
    source: str = Field(description='"sql command", ".sql files" or "none"')
    sql: str
    findings: list[MigrationFinding]
    error: str | None = Field(description="why the SQL could not be had or linted")
    files: list[str] = Field(description="the .sql files added, when they are the source")


class MigrationAcknowledgement(Wire):
    user: str
    reason: str
    at: Timestamp
    rules: list[str] = Field(description="the rules acknowledged (lint-error: a report that could not be made)")


class MigrationRunView(Wire):
    environment: str
    started_at: Timestamp
    seconds: float | None = Field(description="null while it runs")
    ok: bool | None
    maintenance: bool = Field(description="maintenance mode was on during it")
    backup: str | None = Field(description="the backup taken before it (database.backup)")


class MigrationsView(Wire):
    deployment_id: str
    service: str
    environment: str
    sha: str
    state: str
    maintenance: bool = Field(description="the deployment asked for maintenance mode during the migrate step")
    report: MigrationReportView | None = Field(
        description="null: not linted (the environment lints no migrations, or not yet)"
    )
    rules: list[str] = Field(description="the environment's migrate.rules: the findings that block")
    unacknowledged: list[str] = Field(
        description="blocking rules found and not acknowledged for the commit (lint-error: a report that could not "
        "be made); empty: the migrations gate passes as far as the lint goes"
    )
    acknowledgements: list[MigrationAcknowledgement] = Field(description="of the commit, oldest first")
    run: MigrationRunView | None = Field(description="the deployment's migrate step, once it ran")

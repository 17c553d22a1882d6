"""migrations: the lint's findings of the environment's rules block until a release manager
acknowledges them for the commit; a report that could not be made blocks too; a migration that
was slow in the verifying environment needs maintenance mode. Pure: specs and evidence in."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest
from tests.gates.specs import evidence

from conveyor.domain.evidence import MigrationsEvidence
from conveyor.domain.migrations import FIXES, Acknowledgement, Finding, MigrationReport
from conveyor.gates.migrations import LINT_ERROR, NOT_LINTED, MigrationsGate, rules_to_acknowledge
from conveyor.spec import EnvironmentSpec, ServiceSpec, parse_spec

GATE = MigrationsGate()
AT = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
ADD = "ALTER TABLE users ADD COLUMN email text NOT NULL;"
INDEX = "CREATE INDEX users_email ON users (email);"
REQUIRED = Finding(
    "adding-required-field", "Adding a new column that is NOT NULL", ADD, 2, FIXES["adding-required-field"]
)
CONCURRENT = Finding(
    "require-concurrent-index-creation",
    "During normal index creation",
    INDEX,
    3,
    FIXES["require-concurrent-index-creation"],
)
TYPE = Finding("prefer-text-field", "varchar", "CREATE TABLE t (a varchar(10));", 5, "use text")
FILES = MigrationReport(
    ".sql files", f"-- db/0002.sql\n{ADD}\n{INDEX}\n", (REQUIRED, CONCURRENT), files=("db/0002.sql",)
)


def service(migrate: str = "./migrate.sh", gates: str = "") -> ServiceSpec:
    text = textwrap.dedent(
        """\
        service: shop
        environments:
          staging:
            branch: main
            target: {kind: command, deploy: ./deploy.sh}
          production:
            target: {kind: command, deploy: ./deploy.sh}
        """
    )
    text += f"    migrate: {migrate}\n"
    if gates:
        text += "    gates:\n" + textwrap.indent(textwrap.dedent(gates), " " * 6)
    return parse_spec(text)


def production(spec: ServiceSpec) -> EnvironmentSpec:
    return spec.environment("production")


def ack(*rules: str, user: str = "rita") -> Acknowledgement:
    return Acknowledgement(user, "reviewed: the table is small", AT, rules)


def judge(
    found: MigrationsEvidence | None, spec: ServiceSpec | None = None, deployment_id: str | None = "d-1234567890"
):
    spec = spec or service()
    return GATE.evaluate(spec, production(spec), evidence(deployment_id=deployment_id, migrations=found))


def test_applies_where_the_environment_lints_its_migrations() -> None:
    assert GATE.applies(service(), production(service()))
    off = service("{run: ./migrate.sh, lint: false}")
    assert not GATE.applies(off, production(off))
    bare = parse_spec("service: shop\nenvironments:\n  production:\n    target: {kind: command, deploy: ./d.sh}\n")
    assert not GATE.applies(bare, production(bare))


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (MigrationReport("none", ""), "no finding in the migrations (no new SQL)"),
        (MigrationReport(".sql files", "SELECT 1;", files=("a.sql", "b.sql")), "(.sql files: a.sql, b.sql)"),
        (MigrationReport("sql command", "CREATE TABLE t (a varchar(10));", (TYPE,)), "(sql command)"),  # rule off
    ],
)
def test_no_blocking_finding_passes(report: MigrationReport, reason: str) -> None:
    result = judge(MigrationsEvidence(report))
    assert result.passed and reason in result.reason and result.details["findings"] == []


def test_findings_unacknowledged_list_each_rule_statement_and_fix() -> None:
    result = judge(MigrationsEvidence(FILES))
    assert not result.passed and result.waitable
    assert "2 finding(s) in the migrations (.sql files: db/0002.sql)" in result.reason
    for f in (REQUIRED, CONCURRENT):
        assert f"{f.rule}: `{f.statement}` (line {f.line}); fix: {f.fix}" in result.reason
    assert "`conveyor migrations acknowledge d-123456 --reason TEXT`" in result.reason
    assert [f["rule"] for f in result.details["findings"]] == [REQUIRED.rule, CONCURRENT.rule]
    assert result.details["findings"][0]["statement"] == ADD and result.details["findings"][0]["fix"] == REQUIRED.fix
    assert result.details["unacknowledged"] == sorted([REQUIRED.rule, CONCURRENT.rule])
    assert result.details["acknowledged_by"] == [] and result.details["source"] == ".sql files"


def test_why_names_the_command_without_a_deployment() -> None:
    result = judge(MigrationsEvidence(FILES), deployment_id=None)
    assert not result.passed and "`conveyor migrations acknowledge DEPLOYMENT_ID --reason TEXT`" in result.reason


def test_not_linted_yet_passes_with_the_reason() -> None:
    assert judge(None, deployment_id=None).reason == NOT_LINTED
    result = judge(MigrationsEvidence(None), deployment_id=None)
    assert result.passed and result.reason == NOT_LINTED and result.details["linted"] is False
    assert judge(MigrationsEvidence(None)).reason == "the migrations are not linted yet"


def test_acknowledged_covering_every_rule_passes() -> None:
    found = MigrationsEvidence(FILES, (ack(REQUIRED.rule, CONCURRENT.rule),))
    result = judge(found)
    assert result.passed and result.reason == "2 finding(s) in the migrations acknowledged by rita"
    assert result.details["acknowledged_by"] == ["rita"] and result.details["unacknowledged"] == []


def test_acknowledgements_together_cover_the_rules() -> None:
    found = MigrationsEvidence(FILES, (ack(REQUIRED.rule), ack(CONCURRENT.rule, user="ron")))
    result = judge(found)
    assert result.passed and "acknowledged by rita, ron" in result.reason


def test_acknowledged_only_some_rules_lists_the_rest() -> None:
    result = judge(MigrationsEvidence(FILES, (ack(REQUIRED.rule),)))
    assert not result.passed
    assert "1 finding(s)" in result.reason and CONCURRENT.statement in result.reason
    assert f"`{REQUIRED.statement}`" not in result.reason
    assert f"({REQUIRED.rule} acknowledged already)" in result.reason
    assert result.details["unacknowledged"] == [CONCURRENT.rule]


def test_only_the_environments_rules_block() -> None:
    spec = service("{run: ./migrate.sh, rules: [adding-required-field]}")
    result = judge(MigrationsEvidence(FILES, (ack(REQUIRED.rule),)), spec)
    assert result.passed and "1 finding(s) in the migrations acknowledged" in result.reason


def test_a_report_with_an_error_fails_until_acknowledged() -> None:
    broken = MigrationReport("none", "", error="the migrate.sql command `alembic upgrade head --sql` failed")
    result = judge(MigrationsEvidence(broken))
    assert not result.passed and "the migrations could not be linted: the migrate.sql command" in result.reason
    assert rules_to_acknowledge(broken) == [LINT_ERROR]
    covered = judge(MigrationsEvidence(broken, (ack(LINT_ERROR),)))
    assert covered.passed and covered.reason == "the lint error in the migrations acknowledged by rita"
    assert not judge(MigrationsEvidence(broken, (ack(REQUIRED.rule),))).passed


def test_rules_to_acknowledge_are_every_finding_of_the_report() -> None:
    assert rules_to_acknowledge(FILES) == sorted([REQUIRED.rule, CONCURRENT.rule])
    assert rules_to_acknowledge(MigrationReport("none", "")) == []


STAGED = service(gates="staging_verified: true\n")


@pytest.mark.parametrize(
    ("seconds", "maintenance", "passed", "reason"),
    [
        (None, False, True, "no finding in the migrations (no new SQL)"),  # not run in staging yet
        (12.04, False, True, "no finding in the migrations (no new SQL); the migration took 12.0s in staging"),
        (60.0, False, True, "the migration took 60.0s in staging"),  # over means over
        (
            75.24,
            False,
            False,
            "the migration took 75.2s in staging, over maintenance_over (1m): request the deploy with "
            "--maintenance (maintenance mode on during the migrate step)",
        ),
        (75.24, True, True, "over maintenance_over (1m): maintenance mode on during the migrate step"),
    ],
)
def test_maintenance_window(seconds: float | None, maintenance: bool, passed: bool, reason: str) -> None:
    found = MigrationsEvidence(MigrationReport("none", ""), maintenance=maintenance, staging_seconds=seconds)
    result = judge(found, STAGED)
    assert result.passed is passed and reason in result.reason
    assert result.details["staging_seconds"] == seconds and result.details["maintenance_over"] == 60.0
    assert result.details["staging_environment"] == "staging"


def test_maintenance_over_is_configurable_and_both_problems_are_named() -> None:
    spec = service("{run: ./migrate.sh, maintenance_over: 5m}", gates="staging_verified: true\n")
    assert judge(MigrationsEvidence(MigrationReport("none", ""), staging_seconds=200.0), spec).passed
    result = judge(MigrationsEvidence(FILES, staging_seconds=400.0), spec)
    assert not result.passed and REQUIRED.rule in result.reason and "over maintenance_over (5m)" in result.reason


def test_an_environment_without_staging_verified_has_no_maintenance_rule() -> None:
    result = judge(MigrationsEvidence(MigrationReport("none", ""), staging_seconds=500.0))
    assert result.passed and "staging" not in result.reason and result.details["staging_environment"] is None

"""migrations: the SQL a deployment will run was linted (squawk) before anything runs, and every
finding of the environment's ``migrate.rules`` is acknowledged by a release manager for this
commit; and a migration that took longer than ``migrate.maintenance_over`` in the verifying
environment runs only with maintenance mode on (docs/gates.md, docs/database.md)."""

from __future__ import annotations

from typing import Any

from conveyor.domain.evidence import MigrationsEvidence
from conveyor.domain.migrations import Acknowledgement, MigrationReport, describe
from conveyor.gates.base import Evidence, GateResult
from conveyor.gates.registry import register
from conveyor.spec import EnvironmentSpec, ServiceSpec
from conveyor.spec.durations import format_duration

# The rule an acknowledgement names to cover a report whose SQL could not be had or linted.
LINT_ERROR = "lint-error"
NOT_LINTED = "the migrations are linted when the deployment is requested"


def covered_rules(acks: tuple[Acknowledgement, ...]) -> set[str]:
    return {rule for a in acks for rule in a.rules}


def rules_to_acknowledge(report: MigrationReport) -> list[str]:
    """What an acknowledgement made now covers: the rule of every finding, and the lint error."""
    return sorted({f.rule for f in report.findings} | ({LINT_ERROR} if report.error else set()))


def open_rules(report: MigrationReport, rules: list[str], covered: set[str]) -> list[str]:
    """The blocking rules found and not acknowledged yet (``lint-error`` for an error not covered)."""
    found = {f.rule for f in report.blocking(rules)} | ({LINT_ERROR} if report.error else set())
    return sorted(found - covered)


def _source(report: MigrationReport) -> str:
    if report.source == ".sql files":
        return f".sql files: {', '.join(report.files)}"
    return report.source if report.source != "none" else "no new SQL"


def _lint(found: MigrationsEvidence, rules: list[str], deployment_id: str | None) -> tuple[str | None, str]:
    """(the problem, or None; the note when there is none) of the report and its acknowledgements."""
    report = found.report
    if report is None:
        return None, NOT_LINTED if deployment_id is None else "the migrations are not linted yet"
    blocking = report.blocking(rules)
    covered = covered_rules(found.acknowledgements)
    open_findings = [f for f in blocking if f.rule not in covered]
    error_open = report.error is not None and LINT_ERROR not in covered
    if not blocking and report.error is None:
        return None, f"no finding in the migrations ({_source(report)})"
    if not open_findings and not error_open:
        wanted = {f.rule for f in blocking} | ({LINT_ERROR} if report.error else set())
        users = sorted({a.user for a in found.acknowledgements if wanted & set(a.rules)})
        what = f"{len(blocking)} finding(s)" if blocking else "the lint error"
        return None, f"{what} in the migrations acknowledged by {', '.join(users)}"
    how = f"`conveyor migrations acknowledge {deployment_id[:8] if deployment_id else 'DEPLOYMENT_ID'} --reason TEXT`"
    parts = []
    if error_open:
        parts.append(f"the migrations could not be linted: {report.error}")
    if open_findings:
        listed = "; ".join(describe(f) for f in open_findings)
        parts.append(f"{len(open_findings)} finding(s) in the migrations ({_source(report)}): {listed}")
    done = sorted({f.rule for f in blocking if f.rule in covered})
    already = f" ({', '.join(done)} acknowledged already)" if done else ""
    return "; ".join(parts) + f"{already}; a release manager may acknowledge them ({how})", ""


def _maintenance(env: EnvironmentSpec, found: MigrationsEvidence) -> tuple[str | None, str]:
    migrate, verified = env.migrate, env.gates.staging_verified
    assert migrate is not None
    if verified is None or found.staging_seconds is None:
        return None, ""
    took = f"the migration took {found.staging_seconds:.1f}s in {verified.environment}"
    if found.staging_seconds <= migrate.maintenance_over:
        return None, took
    over = f"{took}, over maintenance_over ({format_duration(migrate.maintenance_over)})"
    if found.maintenance:
        return None, f"{over}: maintenance mode on during the migrate step"
    return f"{over}: request the deploy with --maintenance (maintenance mode on during the migrate step)", ""


class MigrationsGate:
    name = "migrations"

    def applies(self, service: ServiceSpec, env: EnvironmentSpec) -> bool:
        return env.migrate is not None and env.migrate.lint

    def evaluate(self, service: ServiceSpec, env: EnvironmentSpec, evidence: Evidence) -> GateResult:
        migrate = env.migrate
        assert migrate is not None
        found = evidence.migrations or MigrationsEvidence(None)
        lint_problem, lint_note = _lint(found, migrate.rules, evidence.deployment_id)
        slow_problem, slow_note = _maintenance(env, found)
        problems = [p for p in (lint_problem, slow_problem) if p]
        notes = [n for n in (lint_note, slow_note) if n]
        reason = "; ".join(problems) if problems else "; ".join(notes)
        return GateResult(self.name, not problems, reason, details(env, found))


def details(env: EnvironmentSpec, found: MigrationsEvidence) -> dict[str, Any]:
    """What the dashboard and ``why --json`` show: the blocking findings, who acknowledged, the
    verifying environment's duration against ``maintenance_over``."""
    migrate = env.migrate
    assert migrate is not None
    report = found.report
    blocking = report.blocking(migrate.rules) if report else ()
    covered = covered_rules(found.acknowledgements)
    verified = env.gates.staging_verified
    return {
        "linted": report is not None,
        "source": report.source if report else None,
        "files": list(report.files) if report else [],
        "error": report.error if report else None,
        "findings": [f.as_json() for f in blocking],
        "unacknowledged": open_rules(report, migrate.rules, covered) if report else [],
        "acknowledged_by": sorted({a.user for a in found.acknowledgements}),
        "staging_environment": verified.environment if verified else None,
        "staging_seconds": found.staging_seconds,
        "maintenance_over": migrate.maintenance_over,
        "maintenance": found.maintenance,
    }


register(MigrationsGate())

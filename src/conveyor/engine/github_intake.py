"""GitHub deliveries whose signature checked out: bound to the service's repository, deduplicated
by X-GitHub-Delivery, and recorded as evidence with the event's own time.

- A delivery to ``/hooks/github/SERVICE`` is about that service only. The first one signed with the
  service's own secret binds a service that names no GitHub repository yet (name and id); later ones
  from another repository are refused.
- A delivery to ``/hooks/github`` counts for the services bound to its repository (configured at
  registration, or a github.com source). A service with its own secret refuses it there.
- A repository id, once recorded, must match: a deleted and re-created repository of the same name
  (or a spoofed payload) does not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.audit import log as audit
from conveyor.engine import evidence_intake as intake
from conveyor.engine.triggers import on_push
from conveyor.errors import Forbidden
from conveyor.runtime import Runtime
from conveyor.store import evidence as evidence_store
from conveyor.store import services as service_store
from conveyor.store.evidence import Provenance
from conveyor.store.records import ServiceRecord
from conveyor.vcs import github_events as gh
from conveyor.vcs.webhooks import parse_push_event

HANDLED = ("push", "pull_request_review", "pull_request", "check_run", "status")


@dataclass(frozen=True)
class Delivery:
    event: str
    delivery_id: str
    payload: dict[str, Any]
    service: str | None  # the service named in the URL, if any
    own_secret: bool = False  # verified with that service's own secret (not the server-wide one)


def _parse(event: str, payload: dict[str, Any]) -> gh.ReviewEvent | gh.PullRequestEvent | gh.CheckEvent:
    if event == "pull_request_review":
        return gh.parse_review(payload)
    if event == "pull_request":
        return gh.parse_pull_request(payload)
    return gh.parse_check_run(payload) if event == "check_run" else gh.parse_status(payload)


def _check_binding(rt: Runtime, service: ServiceRecord, repo: gh.Repository) -> None:
    if service.github_repository and service.github_repository != repo.full_name:
        raise Forbidden(
            f"the delivery comes from {repo.full_name}, but {service.name} takes evidence only from "
            f"{service.github_repository}",
            fix="send this repository's webhooks to its own service, or re-register the service",
        )
    if service.github_repository_id is not None and service.github_repository_id != repo.id:
        raise Forbidden(
            f"the delivery comes from repository id {repo.id}, but {service.name} is bound to "
            f"{service.github_repository} with id {service.github_repository_id}",
            fix="a re-created repository needs the service re-registered with its github_repository",
        )
    if service.github_repository_id is None:
        now = rt.clock.now()
        with rt.db.begin() as conn:
            if service_store.bind_repository(conn, service.id, repo.full_name, repo.id):
                audit.append(
                    conn,
                    at=now,
                    actor="github",
                    action="service.github_bound",
                    subject=service.name,
                    details={"repository": repo.full_name, "repository_id": repo.id},
                )


def _bound_services(rt: Runtime, delivery: Delivery, repo: gh.Repository) -> list[ServiceRecord]:
    with rt.db.read() as conn:
        if delivery.service is not None:
            services = [service_store.get_service(conn, delivery.service)]
            if services[0].github_repository is None and not delivery.own_secret:
                return []  # binding on first use needs the service's own secret
        else:
            services = service_store.services_bound_to(conn, repo.full_name)
    if delivery.service is None:
        own = [s.name for s in services if s.name in rt.settings.github_webhook_secrets]
        if own:
            raise Forbidden(
                f"{own[0]} takes deliveries signed with its own secret only",
                fix=f"point the webhook of {repo.full_name} at /api/v1/hooks/github/{own[0]}",
            )
    for service in services:
        _check_binding(rt, service, repo)
    return services


def _first_time(rt: Runtime, delivery: Delivery, repository: str | None) -> bool:
    with rt.db.begin() as conn:
        return evidence_store.record_delivery(conn, delivery.delivery_id, delivery.event, repository, rt.clock.now())


def _forget(rt: Runtime, delivery: Delivery) -> None:
    with rt.db.begin() as conn:
        evidence_store.forget_delivery(conn, delivery.delivery_id)


def accept(rt: Runtime, delivery: Delivery) -> dict[str, Any]:
    """Handle one verified delivery of a handled event; the JSON answer for GitHub."""
    answer: dict[str, Any] = {"event": delivery.event, "deployments": []}
    if delivery.event == "push":
        push = parse_push_event(delivery.payload)
        if not _first_time(rt, delivery, push.repository.lower()):
            return {**answer, "duplicate": True}
        try:
            started = on_push(rt, push)
        except Exception:
            _forget(rt, delivery)
            raise
        return {**answer, "deployments": [d.as_json() for d in started]}
    event = _parse(delivery.event, delivery.payload)
    repo = event.repository
    services = _bound_services(rt, delivery, repo)
    if not services:
        return {**answer, "ignored": True, "reason": f"no service takes evidence from {repo.full_name}"}
    if not _first_time(rt, delivery, repo.full_name):
        return {**answer, "duplicate": True}
    origin = Provenance(repo.full_name, repo.id, event.at, delivery.delivery_id)
    try:
        _record(rt, event, origin)
    except Exception:
        _forget(rt, delivery)
        raise
    return {**answer, "services": [s.name for s in services]}


def _record(rt: Runtime, event: gh.ReviewEvent | gh.PullRequestEvent | gh.CheckEvent, origin: Provenance) -> None:
    if isinstance(event, gh.ReviewEvent):
        intake.report_review(
            rt,
            "github",
            sha=event.sha.lower(),
            reviewer=event.reviewer,
            author=event.author,
            state=event.state,
            source="github",
            pr_number=event.pr_number,
            origin=origin,
        )
    elif isinstance(event, gh.PullRequestEvent):
        intake.record_merge(
            rt, event.repository.full_name, event.number, event.head_sha, event.merge_commit_sha, event.author, origin
        )
    else:
        intake.report_check(rt, "github", event.sha, event.name, event.state, event.url, origin)

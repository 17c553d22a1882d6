"""Waking the gate workflows of waiting deployments when their evidence or the calendar changed.
Its own module so that whatever changes evidence (the pipeline, the API, webhooks) can nudge
without depending on the gate workflow itself."""

from __future__ import annotations

import logging

from dbos import DBOS

from conveyor.domain.deployment import DeploymentState
from conveyor.runtime import Runtime
from conveyor.store import deployments as store
from conveyor.store.evidence import pending_with_sha

GATE_TOPIC = "gates"
log = logging.getLogger("conveyor.gates")


def gate_workflow_id(deployment_id: str) -> str:
    return f"{deployment_id}-gates"


def nudge(deployment_ids: list[str]) -> None:
    """Tell waiting deployments that evidence changed, so they look at their gates now."""
    for deployment_id in deployment_ids:
        try:
            DBOS.send(gate_workflow_id(deployment_id), "look again", topic=GATE_TOPIC)
        except Exception as exc:  # a deployment without a gate workflow has nothing to wake
            log.debug("no gate workflow to nudge for %s: %s", deployment_id, exc)


def nudge_sha(rt: Runtime, sha: str) -> None:
    with rt.db.read() as conn:
        ids = pending_with_sha(conn, sha)
    nudge(ids)


def nudge_all_pending(rt: Runtime) -> None:
    """A freeze was lifted (or the calendar changed): every waiting deployment looks again."""
    with rt.db.read() as conn:
        ids = [d.id for d in store.list_deployments(conn, states=[DeploymentState.PENDING], limit=10_000)]
    nudge(ids)

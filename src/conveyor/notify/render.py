"""Messages from templates: the facts of a deployment at one event, read from the database (the
step states as the event stream had them at that event, so a late or retried message says what
was true then), written through the templates (``templating``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from conveyor.domain.clock import as_utc
from conveyor.domain.events import StepFinished, StepStarted
from conveyor.domain.links import links_for
from conveyor.notify.base import Message
from conveyor.notify.changes import Change, changes_between
from conveyor.notify.templating import Style, render_template
from conveyor.runtime import Runtime
from conveyor.spec import EnvironmentSpec
from conveyor.store import deployments as store
from conveyor.store import events as stream
from conveyor.store import evidence, monitor_samples
from conveyor.store import services as service_store
from conveyor.store.records import DeploymentRecord, ServiceRecord
from conveyor.store.tables import users

OUTPUT_LINES = 10
MAX_CHANGES = 20
_MARKS = {"succeeded": "✓", "failed": "✗", "running": "▶", "skipped": "-", "cancelled": "⏹", "pending": "○"}
_STATE = {
    "requested": ("🚀", "requested"),
    "approval": ("⏳", "waiting for approval"),
    "started": ("▶️", "running"),
    "step": ("▶️", "running"),
    "succeeded": ("✅", "succeeded"),
    "failed": ("❌", "failed"),
    "rolled_back": ("↩️", "rolled back"),
    "cancelled": ("⏹️", "cancelled"),
    "merge_back_due": ("🔀", "merge-back due"),
    "monitoring_breach": ("🚨", "monitoring breach"),
    "test": ("🔔", "test"),
}


def step_states(conn: Connection, d: DeploymentRecord, position: int) -> list[dict[str, str]]:
    """The deployment's steps as they stood at event ``position``."""
    plan = [s.name for s in store.get_steps(conn, d.id)]
    state = dict.fromkeys(plan, "pending")
    for stored in stream.read_after(conn, 0, 1000, deployment_id=d.id):
        if stored.position > position:
            break
        if isinstance(stored.event, StepStarted):
            state[stored.event.step] = "running"
        elif isinstance(stored.event, StepFinished):
            state[stored.event.step] = stored.event.state
    return [{"name": name, "state": state[name], "mark": _MARKS.get(state[name], "·")} for name in plan]


def approvers(
    conn: Connection, d: DeploymentRecord, env: EnvironmentSpec, at: datetime | None = None
) -> tuple[list[str], list[str]]:
    """Who may still approve ``d`` (as of ``at``: a message sent late names whoever could then):
    (user names, the roles asked for)."""
    roles: list[str] = list(env.gates.approval.from_) if env.gates.approval else []
    self_ok = bool(env.gates.approval and env.gates.approval.self_approval)
    schedule = env.gates.schedule or {}
    if d.emergency:
        roles += [r for r in (schedule.get("emergency") or {}).get("approvers") or [] if r not in roles]
    done = {a.user for a in evidence.approvals_for(conn, d.id) if at is None or a.at <= at}
    names = [
        row.name
        for row in conn.execute(
            select(users.c.name, users.c.roles).where(users.c.disabled.is_(False)).order_by(users.c.name)
        )
        if any(r in roles for r in row.roles) and row.name not in done and (self_ok or row.name != d.actor)
    ]
    return names, roles


def _emergency_reason(d: DeploymentRecord) -> str:
    notes = d.notes or ""
    return notes.removeprefix("EMERGENCY: ").split(" | ")[0] if notes.startswith("EMERGENCY: ") else ""


def _ticket_url(rt: Runtime, ticket: str) -> str | None:
    return rt.settings.ticket_url.replace("{ticket}", ticket) if rt.settings.ticket_url else None


def values_for(
    rt: Runtime,
    conn: Connection,
    d: DeploymentRecord,
    service: ServiceRecord,
    env: EnvironmentSpec,
    style: Style,
    event: str,
    context: dict[str, Any],
    position: int,
) -> dict[str, Any]:
    payload: dict[str, Any] = context.get("payload", {})
    release = store.get_release(conn, d.release_id) if d.release_id else None
    previous = store.get_release(conn, d.previous_release_id) if d.previous_release_id else None
    dashboard = f"{rt.settings.own_url}/deployments/{d.id}"
    links = [style.link(dashboard, "Dashboard"), *(style.link(url, label) for label, url in _env_links(conn, d, env))]
    steps = step_states(conn, d, position)
    emergency = _emergency_reason(d) if d.emergency else ""
    notes = d.notes
    if d.emergency:  # recorded as "EMERGENCY: reason | notes"
        notes = d.notes.split(" | ", 1)[1] if d.notes and " | " in d.notes else None
    mark, words = _STATE.get(event, ("•", event))
    values: dict[str, Any] = {
        "id": d.id,
        "event": event,
        "service": service.name,
        "environment": d.environment,
        "kind": d.kind.value,
        "What": "Rollback" if d.kind == "rollback" else "Deployment",
        "ref": d.ref,
        "sha": d.sha,
        "short_sha": d.sha[:7],
        "version": release.version if release else None,
        "previous_version": previous.version if previous else None,
        # the version once it is made (the tag step's), as the stream stood at this event
        "release": release.version if release and _tagged(steps) else f"{style.text(d.ref)} ({d.sha[:7]})",
        "actor": d.actor,
        "notes": style.text(notes) if notes else None,
        "ticket": style.text(d.ticket) if d.ticket else None,
        "ticket_link": style.link(_ticket_url(rt, d.ticket), d.ticket) if d.ticket else None,
        "emergency": d.emergency,
        "emergency_reason": style.text(emergency),
        "mark": "🚨 EMERGENCY " if d.emergency else "",
        "dashboard_url": dashboard,
        "github_repository": service.github_repository,
        "environment_url": env.url,
        "links": " · ".join(links),
        "plan": [s["name"] for s in steps],
        "steps": steps,
        "state_mark": mark,
        "state_words": words,
        "reason": style.text(payload.get("reason") or d.reason or ""),
        "mention": style.mention,
        "link": style.link,
    }
    if event == "step":
        state = str(payload.get("state", ""))
        values |= {
            "step": payload.get("step"),
            "step_state": state,
            "step_mark": _MARKS.get(state, "·"),
            "step_message": style.text(str(payload.get("message") or "")),
        }
        running = next((s["name"] for s in steps if s["state"] == "running"), None)
        values["state_words"] = f"running {running}" if running else "running"
    if event == "approval":
        at = as_utc(datetime.fromisoformat(context["at"])) if context.get("at") else None
        names, roles = approvers(conn, d, env, at)
        values |= {"approvers": [style.mention(n) for n in names], "approver_names": names, "approver_roles": roles}
    if event in ("failed", "rolled_back", "cancelled"):
        failed = next((s for s in store.get_steps(conn, d.id) if s.state == "failed"), None)
        tail = (failed.output_tail or "").rstrip("\n").splitlines()[-OUTPUT_LINES:] if failed else []
        values |= {
            "failed_step": failed.name if failed else None,
            "failed_message": style.text(failed.message or "") if failed else "",
            "output_lines": [line.replace("```", "'''") for line in tail],
        }
        if event == "failed" and failed:
            values["state_words"] = f"failed at {failed.name}"
        by = style.mention(d.actor) if d.kind == "rollback" else None
        if by is None:
            signal = f"{failed.name} failed" if failed else (d.reason or "a failed step")
            by = f"Conveyor, by itself ({style.text(signal)})"
        values["rolled_back_by"] = by
    if event == "succeeded":
        values["state_words"] = f"succeeded{_took(d.started_at, d.finished_at)}"
    if event == "merge_back_due":  # the hotfix_log entry's details: the branch and the conflicting files
        details: dict[str, Any] = payload.get("details") or {}
        branch, files = str(details.get("branch") or ""), [str(f) for f in details.get("files") or ()]
        values |= {
            "branch": style.text(branch),
            "files": [style.text(f) for f in files],
            "merge_back_reason": style.text(str(details.get("reason") or "")),
            "hotfix": style.text(str(details.get("version") or d.sha[:7])),
            "state_words": f"succeeded; merge-back into {style.text(branch)} due",
        }
    if event == "monitoring_breach":  # the audit entry's details (engine/monitoring_end.py)
        breach: dict[str, Any] = payload.get("details") or {}
        flags = [
            style.text(f"{f.get('flag')} ({str(f.get('action', '')).removeprefix('flag.')} by {f.get('actor')})")
            for f in breach.get("flags") or ()
        ]
        values |= {
            "breach": style.text(str(breach.get("summary") or "")),
            "then": style.text(str(breach.get("then") or "")),
            "flags": flags,
            "killed_flags": [style.text(str(k)) for k in breach.get("killed_flags") or ()],
            "state_words": "monitoring: breach",
        }
    values["changes"], values["more_changes"] = [], 0
    if event == "succeeded" and d.kind == "deploy":
        found = changes_between(service, previous.sha if previous else None, d.sha, MAX_CHANGES + 1)
        values["changes"] = [_change(rt, service, style, c) for c in reversed(found[:MAX_CHANGES])]  # oldest first
        values["more_changes"] = max(0, len(found) - MAX_CHANGES)
    return values


def _env_links(conn: Connection, d: DeploymentRecord, env: EnvironmentSpec) -> list[tuple[str, str]]:
    """The environment's ``links:`` expanded for ``d`` (domain/links.py), the range as on its page
    (web/deployment.py): its monitoring window with as long before the switch, else start to end."""
    version = d.version or d.sha[:12]
    mon = monitor_samples.get(conn, d.id)
    if mon is not None:
        ends = mon.ended_at or mon.ends_at
        return links_for(env.links, d.service, d.environment, version, mon.switched_at, ends, mon.seconds)
    return links_for(env.links, d.service, d.environment, version, d.started_at or d.created_at, d.finished_at)


def _tagged(steps: list[dict[str, str]]) -> bool:
    return all(s["state"] in ("succeeded", "skipped") for s in steps if s["name"] == "tag")


def _took(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    return f" in {seconds // 60}m {seconds % 60}s" if seconds >= 60 else f" in {seconds}s"


def _change(rt: Runtime, service: ServiceRecord, style: Style, c: Change) -> dict[str, Any]:
    repo = service.github_repository
    pr = style.link(f"https://github.com/{repo}/pull/{c.pr}" if repo else None, f"#{c.pr}") if c.pr else None
    title = re.sub(rf"\s*\(#{c.pr}\)$", "", c.subject) if c.pr else c.subject
    subject = style.text(title)
    for ticket in c.tickets:  # each key in the subject becomes its link
        linked = style.link(_ticket_url(rt, ticket), ticket)
        subject = subject.replace(ticket, linked)
    return {"subject": subject, "title": title, "pr": pr, "sha": c.sha}  # title: as written, for JSON


def message_for(
    rt: Runtime,
    conn: Connection,
    deployment_id: str,
    event: str,
    context: dict[str, Any],
    position: int,
    style_name: str,
) -> Message:
    """The message of ``event`` of a deployment, written for a notifier of ``style_name``."""
    d = store.get_deployment(conn, deployment_id)
    service = service_store.get_service_by_id(conn, d.service_id)
    spec = rt.spec_of(service.config_text)
    env = spec.environment(d.environment)
    style = Style(style_name, rt.settings.notify_people)
    values = values_for(rt, conn, d, service, env, style, event, context, position)
    text = render_template(event, values, spec)
    summary = render_template("summary", values, spec)
    emails = tuple(
        rt.settings.notify_people[n]["email"]
        for n in values.get("approver_names", [])
        if rt.settings.notify_people.get(n, {}).get("email")
    )
    plain = {k: v for k, v in values.items() if not callable(v)}
    return Message(event=event, text=text, summary=summary, values=plain, recipients=emails)


def sample(
    rt: Runtime, service: ServiceRecord, environment: str, actor: str, notifier: str, style_name: str
) -> Message:
    """The message `conveyor notify test` sends."""
    spec = rt.spec_of(service.config_text)
    env = spec.environment(environment)
    style = Style(style_name, rt.settings.notify_people)
    with rt.db.read() as conn:  # the sample has no deployment: its links show what serves now
        serving = store.current_release(conn, service.id, environment)
    version = (serving.version or serving.sha[:12]) if serving else ""
    now = datetime.now(UTC)
    expanded = links_for(env.links, service.name, environment, version, now, now)
    links = [style.link(rt.settings.own_url, "Dashboard"), *(style.link(u, label) for label, u in expanded)]
    values = {
        "service": service.name,
        "environment": environment,
        "notifier": notifier,
        "actor": actor,
        "links": " · ".join(links),
        "mention": style.mention,
        "link": style.link,
    }
    text = render_template("test", values, None)
    plain = {k: v for k, v in values.items() if not callable(v)}
    return Message(event="test", text=text, summary=text, values=plain)

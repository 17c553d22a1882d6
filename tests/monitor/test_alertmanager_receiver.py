"""The Alertmanager receiver without Alertmanager: the webhook payload (version 4) parsed and
checked, who may post it, what a bad body changes (nothing), and ``alert_findings`` over what was
kept, on SQLite and PostgreSQL. The real Alertmanager is in test_alertmanager_stack.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.inproc import App, app

from conveyor.api import alerts as alerts_api
from conveyor.auth.users import User
from conveyor.errors import InvalidInput
from conveyor.monitor.alertmanager import WebhookPayload, alert_findings, findings_for, instances, parse_webhook
from conveyor.runtime import Runtime
from conveyor.settings import Settings
from conveyor.spec.monitor_signals import AlertsSpec
from conveyor.store.alerts import record_alerts
from conveyor.store.db import Database
from conveyor.store.tables import audit_log, monitor_alerts

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def alert(
    name: str = "HighErrorRate",
    service: str = "shop",
    environment: str = "production",
    status: str = "firing",
    starts_at: datetime = T0,
    ends_at: str = "0001-01-01T00:00:00Z",
    fingerprint: str = "a1b2c3d4e5f60718",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "service": service, "environment": environment, **labels},
        "annotations": {"summary": f"{name} for {service}"},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
        "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {
        "receiver": "conveyor",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
    }


# --- parsing ----------------------------------------------------------------------------------


def test_a_firing_alert_has_no_end_and_a_resolved_one_has_its_own() -> None:
    later = "2026-11-27T12:05:00Z"
    payload = parse_webhook(json.dumps(notification(alert(), alert(status="resolved", ends_at=later))).encode())
    firing, resolved = instances(payload, T0 + timedelta(hours=1))
    assert (firing.status, firing.starts_at, firing.ends_at) == ("firing", T0, None)
    assert (resolved.status, resolved.ends_at) == ("resolved", T0 + timedelta(minutes=5))
    assert firing.labels["service"] == "shop" and firing.fingerprint == "a1b2c3d4e5f60718"


def test_a_resolved_alert_without_an_end_ends_when_received_and_a_missing_fingerprint_is_made() -> None:
    bare = alert(status="resolved")
    del bare["fingerprint"]
    (one,) = instances(parse_webhook(json.dumps(notification(bare)).encode()), T0 + timedelta(minutes=9))
    assert one.ends_at == T0 + timedelta(minutes=9)
    assert len(one.fingerprint) == 16  # from the labels, the same for the same labels
    (again,) = instances(parse_webhook(json.dumps(notification(bare)).encode()), T0)
    assert again.fingerprint == one.fingerprint


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "JSON list, not an Alertmanager notification"),
        (json.dumps({**notification(alert()), "version": "3"}).encode(), "version '3'"),
        (
            json.dumps({k: v for k, v in notification(alert()).items() if k != "alerts"}).encode(),
            "alerts: Field required",
        ),
        (json.dumps(notification({**alert(), "status": "burning"})).encode(), "alerts.0.status"),
        (json.dumps(notification({**alert(), "startsAt": "yesterday"})).encode(), "alerts.0.startsAt"),
        (json.dumps(notification({**alert(), "labels": {"service": 5}})).encode(), "alerts.0.labels.service"),
        (json.dumps(notification(alert(service="s" * 300))).encode(), "alerts.0.labels.service is 300 characters"),
        (
            json.dumps(notification({**alert(), "startsAt": "0001-01-01T00:00:00+01:00"})).encode(),
            "alerts.0.startsAt: 0001-01-01T00:00:00+01:00 is out of range",
        ),
    ],
)
def test_a_body_that_is_not_a_version_4_notification_is_refused_naming_why(body: bytes, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_webhook(body)
    assert says in refused.value.message


def test_keys_alertmanager_may_add_later_are_ignored() -> None:
    payload = parse_webhook(json.dumps({**notification({**alert(), "silenceURL": "x"}), "orgId": 1}).encode())
    assert len(payload.alerts) == 1


# --- the endpoint -----------------------------------------------------------------------------


USERS = {"alertmanager": ["reporter"], "eve": ["engineer"], "rita": ["release_manager"]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One app for the module's endpoint tests (each counts what it changed, not what is there)."""
    home = tmp_path_factory.mktemp("receiver")
    with app(home / "home", f"sqlite:///{home / 'conveyor.db'}", USERS) as a:
        yield a


def _count(a: App, table: Any, *where: Any) -> int:
    with a.rt.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_a_reporter_posts_firing_then_resolved_and_repeats_change_nothing(served: App) -> None:
    post = "/alerts/alertmanager"
    audited = _count(served, audit_log, audit_log.c.action == "alerts.received")
    up, slow = alert(fingerprint="rec-1"), alert(name="Latency", fingerprint="rec-2")
    first = served.ok("alertmanager", "POST", post, json=notification(up, slow))
    assert first == {"receiver": "conveyor", "alerts": 2, "new": 2, "resolved": 0, "repeated": 0}
    again = served.ok("alertmanager", "POST", post, json=notification(up))
    assert (again["new"], again["repeated"]) == (0, 1)
    down = {**up, "status": "resolved", "endsAt": "2026-11-27T12:03:00Z"}
    resolved = served.ok("alertmanager", "POST", post, json=notification(down))
    assert (resolved["new"], resolved["resolved"]) == (0, 1)
    late = served.ok("alertmanager", "POST", post, json=notification(up))  # a retried older notification
    assert late["repeated"] == 1
    with served.rt.db.read() as conn:
        rows = {r.fingerprint: r for r in conn.execute(select(monitor_alerts))}
        actors = conn.execute(select(audit_log.c.actor).where(audit_log.c.action == "alerts.received")).scalars()
        assert list(actors)[audited:] == ["alertmanager", "alertmanager"]  # new, then resolved; repeats not
    assert rows["rec-1"].status == "resolved"  # and stays resolved
    assert rows["rec-1"].ends_at is not None and rows["rec-1"].alertname == "HighErrorRate"
    assert (rows["rec-2"].status, rows["rec-2"].reported_by, rows["rec-2"].alertname) == (
        "firing",
        "alertmanager",
        "Latency",
    )


def test_other_roles_and_no_token_are_refused_audited_and_nothing_is_kept(served: App) -> None:
    kept = _count(served, monitor_alerts)
    refused_before = _count(served, audit_log, audit_log.c.action == "forbidden")
    for user in ("eve", "rita", "admin"):
        r = served.as_(user, "POST", "/alerts/alertmanager", json=notification(alert(fingerprint="refused")))
        assert r.status_code == 403, r.text
        assert f"{user} may not report alerts; only reporter may" in r.json()["message"]
    assert served.client.post("/api/v1/alerts/alertmanager", json=notification(alert())).status_code == 401
    assert _count(served, monitor_alerts) == kept
    with served.rt.db.read() as conn:
        refused = conn.execute(select(audit_log.c.actor, audit_log.c.details).where(audit_log.c.action == "forbidden"))
        assert [(actor, d["attempted"]) for actor, d in refused][refused_before:] == [
            ("eve", "report alerts"),
            ("rita", "report alerts"),
            ("admin", "report alerts"),
        ]


def test_malformed_and_oversized_bodies_get_a_4xx_and_change_nothing(served: App) -> None:
    kept, entries = _count(served, monitor_alerts), _count(served, audit_log)
    bad = served.as_("alertmanager", "POST", "/alerts/alertmanager", content=b'{"version": "4", "alerts": [')
    assert bad.status_code == 400 and "not JSON" in bad.json()["message"], bad.text
    half = notification(alert(fingerprint="half-1"), {**alert(fingerprint="half-2"), "startsAt": "soon"})
    mixed = served.as_("alertmanager", "POST", "/alerts/alertmanager", json=half)  # one good alert, one bad
    assert mixed.status_code == 400 and "alerts.1.startsAt" in mixed.json()["message"], mixed.text
    limit = served.rt.settings.max_body_bytes
    many = notification(*[alert(fingerprint=f"{i:016x}", pad="x" * 1000) for i in range(limit // 1000 + 10)])
    big = served.as_("alertmanager", "POST", "/alerts/alertmanager", json=many)
    assert big.status_code == 413, big.text
    assert (_count(served, monitor_alerts), _count(served, audit_log)) == (kept, entries)


# --- findings (on SQLite and PostgreSQL) ----------------------------------------------------------


def _keep(db: Database, *alerts: dict[str, Any]) -> None:
    rows = instances(parse_webhook(json.dumps(notification(*alerts)).encode()), T0 + timedelta(hours=1))
    with db.begin() as conn:
        record_alerts(conn, rows, "conveyor", "alertmanager", T0 + timedelta(hours=1))


def test_findings_name_the_alerts_of_that_service_and_environment_in_the_window(db: Database) -> None:
    _keep(db, alert(severity="page"))  # shop/production, firing since T0
    _keep(db, alert(environment="staging", fingerprint="f3"), alert(service="cart", fingerprint="f4"))
    _keep(db, alert(name="Old", fingerprint="f5", status="resolved", ends_at="2026-11-27T12:10:00Z"))
    with db.read() as conn:
        found = alert_findings(conn, "shop", "production", T0)
        assert [f.note.split("{")[0] for f in found] == ["alert HighErrorRate", "alert Old"]
        first = found[0]
        assert (first.signal, first.breached, first.value, first.threshold) == ("alertmanager", True, 1.0, "firing")
        assert 'severity="page"' in first.note and "fired at 2026-11-27 12:00:00 UTC, still firing" in first.note
        assert found[1].breached and "resolved at 2026-11-27 12:10:00 UTC" in found[1].note
        assert len(alert_findings(conn, "shop", "production", T0 + timedelta(minutes=11))) == 1  # Old ended before
        assert [f.note.split("{")[0] for f in alert_findings(conn, "shop", "staging", T0)] == ["alert HighErrorRate"]
        assert alert_findings(conn, "shop", "development", T0) == []
        assert len(alert_findings(conn, "shop", "production", T0, {"severity": "page"})) == 1
        assert findings_for(conn, AlertsSpec(match={"severity": "ticket"}), "shop", "production", T0) == []
        assert findings_for(conn, AlertsSpec(alertmanager=False), "shop", "production", T0) == []
        assert findings_for(conn, None, "shop", "production", T0) == []
        assert len(findings_for(conn, AlertsSpec(), "shop", "production", T0)) == 2


def test_an_alert_already_firing_when_the_window_began_is_shown_not_counted(db: Database) -> None:
    """A release deployed to fix what pages must not be rolled back because the page is still open."""
    _keep(db, alert())  # firing since T0
    window = T0 + timedelta(minutes=5)
    with db.read() as conn:
        (open_page,) = alert_findings(conn, "shop", "production", window)
    assert not open_page.breached
    assert "(already firing when the window began at 2026-11-27 12:05:00 UTC: not counted)" in open_page.note
    later = T0 + timedelta(minutes=7)
    refired = alert(fingerprint="a1b2c3d4e5f60718", starts_at=later)  # resolved meanwhile, fires again: a new start
    _keep(db, alert(status="resolved", ends_at="2026-11-27T12:06:00Z"), refired)
    with db.read() as conn:
        old, new = alert_findings(conn, "shop", "production", window)
    assert (old.breached, new.breached) == (False, True)
    assert "fired at 2026-11-27 12:07:00 UTC, still firing" in new.note


def test_two_alertmanagers_sending_the_same_new_alert_at_once_keep_one_row(db: Database, tmp_path: Path) -> None:
    """A cluster of Alertmanagers each sends every notification: the second insert of an alert
    instance finds the first's row (after its unique key refused the insert) and updates it."""
    rt = Runtime(settings=Settings(home=tmp_path), db=db)
    reporter = User(id=1, name="alertmanager", roles=("reporter",))
    for round_ in range(8):
        payload = parse_webhook(json.dumps(notification(alert(fingerprint=f"race-{round_}"))).encode())
        barrier = threading.Barrier(2)

        def send(barrier: threading.Barrier, payload: WebhookPayload) -> int:
            barrier.wait()
            return alerts_api._keep(rt, reporter, payload).new

        with ThreadPoolExecutor(2) as pool:
            news = sorted(pool.map(send, [barrier] * 2, [payload] * 2))
        assert news == [0, 1], round_
    with db.read() as conn:
        assert _rows(conn) == 8


def _rows(conn: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(monitor_alerts)).scalar_one())

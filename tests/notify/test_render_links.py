"""The environment's ``links:`` in messages: URL templates expanded for the deployment (its
monitoring window, percent-encoded; domain/links.py), as on its page, not sent raw; the sample
message `conveyor notify test` sends expands them too (the version serving, now)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from tests.inproc import app
from tests.web.monitoring_world import seed

from conveyor.domain.links import epoch_ms
from conveyor.notify.render import message_for, sample
from conveyor.store import deployments as store
from conveyor.store import services as service_store


def test_a_messages_links_are_the_templates_expanded_for_the_deployment(tmp_path: Path, database_url: str) -> None:
    with app(tmp_path / "home", database_url, {}) as a:
        monitored = seed(database_url)
        with a.rt.db.read() as conn:
            message = message_for(a.rt, conn, monitored.deployment_id, "rolled_back", {}, 0, "webhook")
        since = monitored.started_at - timedelta(seconds=4 + 60)  # a window's length before the switch
        grafana = f"https://grafana.example.com/d/conveyor?var-service=shop&from={epoch_ms(since)}&to={epoch_ms(monitored.now)}"
        links = message.values["links"]
        assert f"Grafana ({grafana})" in links, links
        assert "release%3Av1.1.0&environment=production&start=" in links, links
        assert "{" not in links and "{" not in message.text, message.text


def test_the_sample_messages_links_are_expanded_too(tmp_path: Path, database_url: str) -> None:
    with app(tmp_path / "home", database_url, {}) as a:
        monitored = seed(database_url)
        with a.rt.db.begin() as conn:
            service = service_store.get_service(conn, "shop")
            old = store.find_release(conn, service.id, "v1.0.0")
            assert old is not None
            store.set_current_release(conn, service.id, "production", old.id, monitored.deployment_id, monitored.now)
        message = sample(a.rt, service, "production", "eve", "webhook", "webhook")
        links = message.values["links"]
        grafana = re.search(
            r"Grafana \(https://grafana\.example\.com/d/conveyor\?var-service=shop&from=(\d+)&to=(\d+)\)", links
        )
        assert grafana, links
        assert int(grafana.group(2)) - int(grafana.group(1)) == 2 * 1800 * 1000  # 30 minutes either side of now
        assert "?query=release%3Av1.0.0&environment=production&start=" in links, links
        assert "{" not in links, links

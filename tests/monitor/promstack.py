"""The real monitoring stack for tests: a metrics endpoint the test controls, the real `prometheus`
scraping it (Debian package prometheus), and the real `prometheus-alertmanager` (Debian package
prometheus-alertmanager) whose webhook receiver is Conveyor's endpoint. Each runs from a generated
config in a temp directory, on free ports, and is stopped (and its directory left to pytest's
tmp_path) at the end. Tests skip with a message when a binary is missing; .ci/run installs both."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import wait_until

from conveyor.devserver import free_port

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the alertmanager binary


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (apt-get install prometheus prometheus-alertmanager; .ci/run does)")
    return path


def _labels(labels: Mapping[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    inner = ",".join(f'{k}="{esc(v)}"' for k, v in sorted(labels.items()))
    return f"{{{inner}}}" if inner else ""


class MetricsTarget:
    """A real HTTP server answering ``GET /metrics`` in Prometheus's text format with the values the
    test sets (``set``), behind a bearer token, as the agent's /metrics is."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.port = free_port()
        self.scrapes = 0
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._kinds: dict[str, str] = {}
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                if self.headers.get("Authorization") != f"Bearer {target.token}":
                    self.send_error(401)
                    return
                body = target.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with target._lock:
                    target.scrapes += 1

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-target", daemon=True)

    def start(self) -> MetricsTarget:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set(self, name: str, value: float, kind: str = "gauge", **labels: str) -> None:
        with self._lock:
            self._kinds[name] = kind
            self._values[(name, tuple(sorted(labels.items())))] = value

    def exposition(self) -> str:
        with self._lock:
            lines = []
            for name, kind in sorted(self._kinds.items()):
                lines.append(f"# TYPE {name} {kind}")
                for (series, labels), value in sorted(self._values.items()):
                    if series == name:
                        lines.append(f"{name}{_labels(dict(labels))} {value!r}")
            return "\n".join(lines) + "\n"


@dataclass
class Binary:
    """One of the stack's processes: its argv, port, log and directory."""

    name: str
    argv: list[str]
    port: int
    home: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.home / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Binary:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.home)

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            try:
                return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, what=f"{self.name} on port {self.port} to be ready")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""


def prometheus(
    home: Path,
    address: str,
    *,
    token: str | None = None,
    token_file: Path | None = None,
    rules: str | None = None,
    alertmanager_port: int | None = None,
) -> Binary:
    """The real Prometheus scraping ``address`` (host:port, path /metrics) every second with a
    bearer token (``token``, or read from ``token_file`` as for the agent's HOME/agent/token),
    evaluating ``rules`` (a rule file's YAML) every second and sending alerts to the Alertmanager
    on ``alertmanager_port``."""
    binary = require(PROMETHEUS)
    home.mkdir(parents=True, exist_ok=True)
    credentials = f"credentials_file: {token_file}" if token_file else f"credentials: {token}"
    config = textwrap.dedent(
        f"""\
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: app
            authorization:
              {credentials}
            static_configs:
              - targets: ["{address}"]
        """
    )
    if rules is not None:
        (home / "rules.yml").write_text(rules)
        config += "rule_files: [rules.yml]\n"
    if alertmanager_port is not None:
        config += textwrap.dedent(
            f"""\
            alerting:
              alertmanagers:
                - static_configs:
                    - targets: ["127.0.0.1:{alertmanager_port}"]
            """
        )
    (home / "prometheus.yml").write_text(config)
    port = free_port()
    argv = [
        binary,
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return Binary("prometheus", argv, port, home)


def alertmanager(home: Path, webhook_url: str, token: str) -> Binary:
    """The real Alertmanager sending every alert (grouped by all labels, at once, repeated hourly)
    to ``webhook_url`` with ``token`` as its bearer credentials, resolved alerts too."""
    binary = require(ALERTMANAGER)
    home.mkdir(parents=True, exist_ok=True)
    config = textwrap.dedent(
        f"""\
        route:
          receiver: conveyor
          group_by: ["..."]
          group_wait: 1s
          group_interval: 1s
          repeat_interval: 1h
        receivers:
          - name: conveyor
            webhook_configs:
              - url: {webhook_url}
                send_resolved: true
                http_config:
                  authorization:
                    credentials: {token}
        """
    )
    (home / "alertmanager.yml").write_text(config)
    port = free_port()
    argv = [
        binary,
        f"--config.file={home / 'alertmanager.yml'}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: one Alertmanager alone
        "--log.level=warn",
    ]
    return Binary("alertmanager", argv, port, home)

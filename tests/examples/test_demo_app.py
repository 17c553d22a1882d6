"""The demo app that Conveyor deploys: run the real app.py, migrate.py and smoke.py as processes."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.devserver import free_port

DEMO_DIR = Path(__file__).resolve().parents[2] / "examples" / "demo-app"
SHA = "0123456789abcdef0123456789abcdef01234567"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any switch or identity that could leak in, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONVEYOR_", "DEMO_", "SMOKE_")) and key not in ("PORT", "HOST")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout=10.0
) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@dataclass
class DemoApp:
    proc: subprocess.Popen
    port: int
    log_path: Path
    _log_file: object = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **kwargs) -> Response:
        return request(self.port, "GET", path, **kwargs)

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll until the app answers any HTTP response, or fail with its output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"demo app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                request(self.port, "GET", "/healthz", timeout=1.0)
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"demo app did not answer within {timeout}s:\n{self.log()}")

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo app did not exit within {timeout}s:\n{self.log()}")


StartApp = Callable[..., DemoApp]


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[StartApp]:
    started: list[DemoApp] = []

    def start(env: dict[str, str] | None = None, app_dir: Path = DEMO_DIR, wait: bool = True) -> DemoApp:
        port = free_port()
        log_path = tmp_path / f"demo-app-{port}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed in the fixture's teardown
        proc = subprocess.Popen(
            [sys.executable, str(app_dir / "app.py"), "--port", str(port)],
            env=clean_env(env),
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        app = DemoApp(proc, port, log_path, log_file)
        started.append(app)
        if wait:
            app.wait_ready()
        return app

    try:
        yield start
    finally:
        for app in started:
            if app.proc.poll() is None:
                app.proc.kill()
            app.proc.wait(10)
            app._log_file.close()


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    """A private copy of the app directory, for switch files and VERSION."""
    target = tmp_path / "demo-app"
    shutil.copytree(DEMO_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    return target


def run_script(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout=30.0):
    return subprocess.run(
        [sys.executable, *args], env=clean_env(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# ---------------------------------------------------------------- routes


def test_index_shows_version_environment_and_short_sha(start_app: StartApp) -> None:
    app = start_app({"CONVEYOR_VERSION": "v1.4.0", "CONVEYOR_ENV": "staging", "CONVEYOR_SHA": SHA})
    resp = app.get("/")
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert int(resp.headers["content-length"]) == len(resp.body)
    page = resp.body.decode()
    assert '<h1 id="version">v1.4.0</h1>' in page
    assert "staging" in page
    assert SHA[:7] in page and SHA not in page
    assert f"demo-app listening on 127.0.0.1:{app.port} version=v1.4.0\n" in app.log()


def test_healthz_and_version(start_app: StartApp) -> None:
    app = start_app({"CONVEYOR_VERSION": "v2.0.1", "CONVEYOR_ENV": "production", "CONVEYOR_SHA": SHA})
    health = app.get("/healthz")
    assert health.status == 200
    assert health.json()["status"] == "ok" and health.json()["version"] == "v2.0.1"
    version = app.get("/version")
    assert version.status == 200
    assert version.json() == {"version": "v2.0.1", "sha": SHA, "env": "production", "pid": app.proc.pid}
    head = request(app.port, "HEAD", "/healthz")
    assert head.status == 200 and head.body == b""
    assert app.get("/nope").status == 404
    assert request(app.port, "POST", "/version", body=b"x").status == 405


def test_version_falls_back_to_version_file_then_dev(start_app: StartApp, app_copy: Path) -> None:
    (app_copy / "VERSION").write_text("v9.9.9\n")
    assert start_app(app_dir=app_copy).get("/version").json()["version"] == "v9.9.9"
    assert start_app({"CONVEYOR_VERSION": "v10.0.0"}, app_dir=app_copy).get("/version").json()["version"] == ("v10.0.0")
    (app_copy / "VERSION").unlink()
    app = start_app(app_dir=app_copy)
    assert app.get("/version").json() == {"version": "dev", "sha": "", "env": "", "pid": app.proc.pid}


def test_echo_get_and_post(start_app: StartApp) -> None:
    app = start_app()
    resp = app.get("/api/echo?name=conveyor")
    assert resp.status == 200
    assert resp.json()["echo"] == "hello" and resp.json()["query"] == {"name": "conveyor"}
    payload = bytes(range(256)) * 400  # 100 KiB, binary
    echoed = request(app.port, "POST", "/api/echo", body=payload, headers={"Content-Type": "application/x-test"})
    assert echoed.status == 200
    assert echoed.body == payload
    assert echoed.headers["content-type"] == "application/x-test"
    assert int(echoed.headers["content-length"]) == len(payload)


def test_keep_alive_serves_several_requests_on_one_connection(start_app: StartApp) -> None:
    app = start_app()
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        assert first.status == 200 and first.read()
        sock = conn.sock
        assert sock is not None and not first.will_close
        conn.request("POST", "/api/echo", body=b"exactly these bytes")  # body must be read exactly
        second = conn.getresponse()
        assert second.read() == b"exactly these bytes"
        conn.request("GET", "/version")
        third = conn.getresponse()
        assert third.status == 200 and json.loads(third.read())["pid"] == app.proc.pid
        assert conn.sock is sock  # the same TCP connection all along
    finally:
        conn.close()


# ---------------------------------------------------------------- failure switches


def test_fail_health_by_env(start_app: StartApp) -> None:
    app = start_app({"DEMO_FAIL_HEALTH": "1"})
    health = app.get("/healthz")
    assert health.status == 503 and health.json()["status"] == "failing"
    assert app.get("/").status == 200


def test_fail_health_and_error_rate_by_file(start_app: StartApp, app_copy: Path) -> None:
    (app_copy / "FAIL_HEALTH").write_text("")
    (app_copy / "ERROR_RATE").write_text("1\n")
    app = start_app(app_dir=app_copy)
    assert app.get("/healthz").status == 503
    assert app.get("/").status == 500


def test_error_rate_one_fails_pages_but_not_health(start_app: StartApp) -> None:
    app = start_app({"DEMO_ERROR_RATE": "1"})
    for _ in range(5):
        assert app.get("/").status == 500
    assert app.get("/version").status == 500
    health = app.get("/healthz")
    assert health.status == 200 and health.json()["status"] == "ok"


def test_slow_ms_adds_latency_to_pages_only(start_app: StartApp) -> None:
    app = start_app({"DEMO_SLOW_MS": "400"})
    began = time.monotonic()
    assert app.get("/").status == 200
    assert time.monotonic() - began >= 0.4
    began = time.monotonic()
    assert app.get("/healthz").status == 200
    assert time.monotonic() - began < 0.4


def test_start_delay_postpones_listening(start_app: StartApp) -> None:
    began = time.monotonic()
    app = start_app({"DEMO_START_DELAY": "1"}, wait=False)
    app.wait_ready()
    assert time.monotonic() - began >= 1.0


def test_crash_after_n_requests_exits_3(start_app: StartApp) -> None:
    app = start_app({"DEMO_CRASH_AFTER": "3"})  # the readiness probe was request 1
    assert app.get("/").status == 200
    assert app.get("/").status == 200
    assert app.wait_exit() == 3


def test_bad_switch_value_stops_at_start(start_app: StartApp) -> None:
    app = start_app({"DEMO_ERROR_RATE": "lots"}, wait=False)
    assert app.wait_exit() == 2
    assert "DEMO_ERROR_RATE" in app.log()


# ---------------------------------------------------------------- graceful stop


def test_sigterm_finishes_in_flight_request_then_exits_0(start_app: StartApp) -> None:
    app = start_app({"DEMO_SLOW_MS": "6000", "CONVEYOR_VERSION": "v3.1.4"})
    result: dict[str, Response] = {}
    slow = threading.Thread(target=lambda: result.setdefault("resp", app.get("/", timeout=20)))
    slow.start()
    try:
        deadline = time.monotonic() + 10
        while app.get("/healthz").json()["in_flight"] < 1:  # the slow request has reached the app
            assert time.monotonic() < deadline, "slow request never arrived"
            time.sleep(0.02)

        app.proc.send_signal(signal.SIGTERM)

        deadline = time.monotonic() + 10
        while True:  # the port closes while the slow request is still being served
            try:
                socket.create_connection(("127.0.0.1", app.port), timeout=0.5).close()
            except (ConnectionRefusedError, ConnectionResetError):  # refused, or reset while it closes
                break
            assert time.monotonic() < deadline, "port still accepting after SIGTERM"
            time.sleep(0.02)
        assert slow.is_alive() and app.proc.poll() is None
    finally:
        slow.join(20)

    resp = result["resp"]
    assert resp.status == 200 and b"v3.1.4" in resp.body
    assert resp.headers["connection"] == "close"
    assert app.wait_exit() == 0
    assert "demo-app stopped" in app.log()


# ---------------------------------------------------------------- migrate.py and smoke.py


def test_migrate_applies_once_then_is_a_no_op(tmp_path: Path) -> None:
    script = str(DEMO_DIR / "migrations" / "migrate.py")
    first = run_script([script], cwd=tmp_path)  # default DEMO_DB: ./demo.db in the cwd
    assert first.returncode == 0, first.stderr
    assert "applied 001_create_orders.sql" in first.stdout
    db = tmp_path / "demo.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [("001",)]
        conn.execute("INSERT INTO orders (customer, amount_cents) VALUES ('ada', 1200)")
    conn.close()

    second = run_script([script], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout and "applied 001" not in second.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (1,)
        assert conn.execute("SELECT customer FROM orders").fetchall() == [("ada",)]
    conn.close()

    elsewhere = tmp_path / "data" / "other.db"
    third = run_script([script], env={"DEMO_DB": str(elsewhere)}, cwd=tmp_path)
    assert third.returncode == 0 and "applied 001_create_orders.sql" in third.stdout
    assert elsewhere.exists()


def test_smoke_passes_against_a_healthy_app(start_app: StartApp) -> None:
    app = start_app({"CONVEYOR_VERSION": "v1.0.0"})
    done = run_script([str(DEMO_DIR / "smoke.py"), app.url], env={"CONVEYOR_VERSION": "v1.0.0"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("smoke ok") and done.stdout.count("\n") == 1


def test_smoke_waits_for_a_slow_boot(start_app: StartApp) -> None:
    app = start_app({"DEMO_START_DELAY": "1"}, wait=False)
    done = run_script([str(DEMO_DIR / "smoke.py"), app.url])
    assert done.returncode == 0, done.stdout + done.stderr


def test_smoke_fails_when_health_fails(start_app: StartApp) -> None:
    app = start_app({"DEMO_FAIL_HEALTH": "1"})
    done = run_script([str(DEMO_DIR / "smoke.py"), app.url, "--timeout", "1"])
    assert done.returncode == 1
    assert "smoke FAILED" in done.stdout and "503" in done.stdout


def test_smoke_fails_on_the_wrong_version(start_app: StartApp) -> None:
    app = start_app({"CONVEYOR_VERSION": "v1.0.0"})
    done = run_script([str(DEMO_DIR / "smoke.py"), app.url, "--timeout", "1"], env={"CONVEYOR_VERSION": "v2"})
    assert done.returncode == 1
    assert "does not show version 'v2'" in done.stdout

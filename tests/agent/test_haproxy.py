"""The HAProxy router with a real haproxy and real demo-app instances: round robin, draining with a
request in flight, maintenance, the body limit, X-Forwarded-* headers, per-release counters from
the request log, recovery from a crashed haproxy, and zero failed requests while the rotation moves."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from tests.e2e.local import DEMO_APP, Load

from conveyor.agent import haproxy
from conveyor.agent.haproxy import HAProxyError, HAProxyRouter
from conveyor.agent.routing import ROUTERS, Backend
from conveyor.devserver import free_port

try:
    haproxy.find_haproxy()
    MISSING = ""
except HAProxyError:
    MISSING = "HAProxy is not installed (apt-get install haproxy); skipping the tests that run a real haproxy"
needs_haproxy = pytest.mark.skipif(bool(MISSING), reason=MISSING)


class Apps:
    """demo-app instances: ``apps.start("v1", DEMO_SLOW_MS="800")`` returns a ready Backend."""

    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, version: str, **env: str) -> Backend:
        port = free_port()
        self.procs[port] = subprocess.Popen(
            [sys.executable, str(DEMO_APP / "app.py"), "--port", str(port)],
            env={**os.environ, "CONVEYOR_VERSION": version, **env},
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return Backend(f"web.test-{version}-{len(self.procs)}", "127.0.0.1", port, version)
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"demo app {version} did not start"
                time.sleep(0.05)

    def stop(self, backend: Backend) -> None:
        self.procs[backend.port].terminate()


@pytest.fixture
def apps() -> Iterator[Apps]:
    apps = Apps()
    yield apps
    for proc in apps.procs.values():
        proc.terminate()
    for proc in apps.procs.values():
        proc.wait(10)


@pytest.fixture
async def router() -> AsyncIterator[HAProxyRouter]:
    r = HAProxyRouter("web.test", "127.0.0.1", free_port(), max_body=1000)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def url(router: HAProxyRouter, path: str = "/version") -> str:
    return f"http://127.0.0.1:{router.port}{path}"


async def server_names(router: HAProxyRouter) -> list[str]:
    rows = (await router.command("show stat be_app 4 -1")).splitlines()[1:]
    return [row.split(",")[1] for row in rows if row]


async def wait_for(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def in_flight(router: HAProxyRouter, backend: Backend, count: int = 1, timeout: float = 5.0) -> None:
    """Wait until haproxy has ``count`` requests open to ``backend`` (its current sessions)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = (await router.command("show stat be_app 4 -1")).splitlines()
        fields = rows[0].lstrip("# ").split(",")
        found = [dict(zip(fields, row.split(","), strict=False)) for row in rows[1:] if row]
        current = [int(r["scur"] or 0) for r in found if r["svname"] == f"{backend.id}-{backend.port}"]
        if current and current[0] >= count:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {count} request(s) in flight to {backend.id}"
        await asyncio.sleep(0.02)


def test_registered_and_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import conveyor.agent.main  # noqa: F401  (the agent registers both routers)

    assert {"builtin", "haproxy"} <= set(ROUTERS)
    monkeypatch.setattr(haproxy.shutil, "which", lambda _name: None)
    monkeypatch.setattr(haproxy, "SEARCH", ())
    r = ROUTERS.get("haproxy")("web.test", "127.0.0.1", free_port(), 1000)
    with pytest.raises(HAProxyError, match="apt-get install haproxy"):
        asyncio.run(r.start())


@needs_haproxy
async def test_round_robin_and_counters_per_release(router: HAProxyRouter, apps: Apps) -> None:
    a, b = apps.start("v1"), apps.start("v2", DEMO_ERROR_RATE="1")
    await router.set_backends([a, b])
    await router.set_backends([a, b])  # idempotent
    async with httpx.AsyncClient() as client:
        responses = [await client.get(url(router)) for _ in range(10)]
    assert sorted(r.status_code for r in responses) == [200] * 5 + [500] * 5
    versions = [r.json().get("version", "v2") for r in responses]
    assert all(versions[i] != versions[i + 1] for i in range(9)), versions  # alternating
    await wait_for(lambda: sum(c.requests for c in router.counters.values()) == 10, "the request log")
    v1, v2 = router.counters["v1"], router.counters["v2"]
    assert (v1.requests, v1.errors_5xx, v2.requests, v2.errors_5xx) == (5, 0, 5, 5)
    assert sum(v1.buckets) == 5 and v1.as_json()["p95_ms"] is not None


@needs_haproxy
async def test_drain_lets_the_request_in_flight_finish_and_sends_it_nothing_new(
    router: HAProxyRouter, apps: Apps
) -> None:
    slow, fast = apps.start("slow", DEMO_SLOW_MS="1500"), apps.start("fast")
    await router.set_backends([slow])
    async with httpx.AsyncClient(timeout=10) as client:
        pending = asyncio.create_task(client.get(url(router)))
        await in_flight(router, slow)
        await router.set_backends([fast])
        started = time.monotonic()
        drain = asyncio.create_task(router.drain(slow.id, timeout=10))
        during = [await client.get(url(router)) for _ in range(5)]
        assert await drain == 0
        waited = time.monotonic() - started
        response = await pending
        after = [await client.get(url(router)) for _ in range(3)]
    assert response.status_code == 200 and response.json()["version"] == "slow"
    assert 0.8 < waited < 3, waited
    assert {r.json()["version"] for r in during + after} == {"fast"}
    assert await server_names(router) == [f"{fast.id}-{fast.port}"]
    assert await router.drain(slow.id, timeout=1) == 0  # already gone
    assert await router.drain("never-seen", timeout=1) == 0


@needs_haproxy
async def test_drain_timeout_cuts_the_request_and_reports_it(router: HAProxyRouter, apps: Apps) -> None:
    slow = apps.start("slow", DEMO_SLOW_MS="3000")
    await router.set_backends([slow])
    async with httpx.AsyncClient(timeout=10) as client:
        pending = asyncio.create_task(client.get(url(router)))
        await in_flight(router, slow)
        assert await router.drain(slow.id, timeout=0.3) == 1
        with pytest.raises(httpx.HTTPError):
            (await pending).raise_for_status()
    assert await server_names(router) == []


@needs_haproxy
async def test_maintenance_body_limit_and_no_instance(router: HAProxyRouter, apps: Apps) -> None:
    async with httpx.AsyncClient() as client:
        empty = await client.get(url(router))
        assert empty.status_code == 503 and "no healthy instance" in empty.text
        await router.set_backends([apps.start("v1")])
        await router.set_maintenance(True, retry_after=30)
        await router.set_maintenance(True, retry_after=45)
        down = await client.get(url(router, "/"))
        assert down.status_code == 503 and down.headers["retry-after"] == "45"
        assert "text/html" in down.headers["content-type"] and "maintenance" in down.text
        await router.set_maintenance(False)
        assert (await client.get(url(router))).status_code == 200
        too_big = await client.post(url(router, "/api/echo"), content=b"x" * 1001)
        assert too_big.status_code == 413
        echoed = await client.post(url(router, "/api/echo"), content=b"y" * 1000)
        assert echoed.status_code == 200 and echoed.content == b"y" * 1000


class _Headers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@needs_haproxy
async def test_forwarded_headers_reach_the_app(router: HAProxyRouter) -> None:
    echo = ThreadingHTTPServer(("127.0.0.1", 0), _Headers)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    try:
        await router.set_backends([Backend("echo-1", "127.0.0.1", echo.server_address[1], "v1")])
        async with httpx.AsyncClient() as client:
            headers = (await client.get(url(router), headers={"X-Forwarded-Proto": "https"})).json()
    finally:
        echo.shutdown()
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{router.port}"


@needs_haproxy
async def test_a_crashed_haproxy_is_started_again_with_its_rotation(router: HAProxyRouter, apps: Apps) -> None:
    await router.set_backends([apps.start("v1")])
    proc = router._proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    await wait_for(lambda: router._proc is not proc and router._proc is not None, "a new haproxy", timeout=10)
    async with router._lock:  # the restart finishes under the lock, servers added again
        pass
    async with httpx.AsyncClient() as client:
        assert (await client.get(url(router))).json()["version"] == "v1"


@needs_haproxy
async def test_no_request_fails_while_the_rotation_moves(router: HAProxyRouter, apps: Apps) -> None:
    """Rolling swaps under keep-alive load, with the drained instances stopped afterwards."""
    current = [apps.start("v0"), apps.start("v0")]
    await router.set_backends(current)
    loads = [Load(router.port).start() for _ in range(4)]
    await wait_for(lambda: all(len(load.results) > 20 for load in loads), "load to flow")
    for n in range(1, 5):
        for i in range(2):
            new = apps.start(f"v{n}")
            old, current[i] = current[i], new
            await router.set_backends(current)
            assert await router.drain(old.id, timeout=10) == 0
            apps.stop(old)
        # each load sees the new rotation answer before the next swap
        await wait_for(lambda v=f"v{n}": all(load.results and load.results[-1][2] == v for load in loads), f"v{n}")
    for load in loads:
        load.stop()
    assert [f for load in loads for f in load.failures] == []
    assert loads[0].results[-1][2] == "v4"
    total = sum(len(load.results) for load in loads)
    await wait_for(lambda: sum(c.requests for c in router.counters.values()) >= total, "the request log")
    assert sum(c.failed + c.errors_5xx for c in router.counters.values()) == 0

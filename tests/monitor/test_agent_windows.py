"""Per-release windows from the agent's routers: the per-second history of ReleaseCounters (with a
stepped clock), and both routers (built-in and a real HAProxy) filling it from real traffic to
demo-app instances, 500s and connections that got no answer included."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.e2e.local import DEMO_APP

from conveyor.agent import haproxy
from conveyor.agent.haproxy import HAProxyError, HAProxyRouter
from conveyor.agent.router import BuiltinRouter
from conveyor.agent.routing import HISTORY_SECONDS, LATENCY_BUCKETS, Backend, ReleaseCounters, Router
from conveyor.devserver import free_port
from conveyor.domain.monitoring import Window

try:
    haproxy.find_haproxy()
    NO_HAPROXY = ""
except HAProxyError:
    NO_HAPROXY = "HAProxy is not installed (apt-get install haproxy)"


class Clock:
    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the history of one release's counters ------------------------------------------------------


def test_counts_land_in_the_second_they_happen() -> None:
    clock = Clock()
    c = ReleaseCounters(clock=clock)
    t0 = int(clock.now)
    c.observe(200, 0.003)
    c.observe(500, 0.003)
    clock.now += 1
    c.observe(200, 0.3)
    c.fail()
    clock.now += 5
    c.observe(503, 2.0)

    first = c.window(t0, t0 + 1)
    assert (first.requests, first.errors, first.failed, first.seconds) == (2, 1, 0, 1.0)
    assert first.latency_buckets[LATENCY_BUCKETS.index(0.005)] == 2
    second = c.window(t0 + 1, t0 + 2)
    assert (second.requests, second.errors, second.failed) == (1, 1, 1)  # the failed one is an error
    assert c.window(t0 + 2, t0 + 6) == Window(seconds=4.0)
    everything = c.window(t0 - 100, t0 + 100)
    assert (everything.requests, everything.errors, everything.failed) == (4, 3, 1)
    assert (c.requests, c.errors_5xx, c.failed) == (4, 2, 1)  # the cumulative totals as before
    assert list(everything.latency_buckets) == c.buckets


def test_consecutive_intervals_share_no_second_and_rereading_gives_the_same() -> None:
    clock = Clock(1_700_000_000.0)
    c = ReleaseCounters(clock=clock)
    for i in range(600):  # 10 minutes, one request every second, every 7th a 500
        c.observe(500 if i % 7 == 0 else 200, 0.01)
        clock.now += 1.0
    start = 1_700_000_000.0
    cuts = [start, start + 0.5, start + 17.3, start + 17.9, start + 250, start + 600]
    parts = [c.window(a, b) for a, b in itertools.pairwise(cuts)]
    total = parts[0]
    for part in parts[1:]:
        total = total.merged(part)
    whole = c.window(start, start + 600)
    assert (whole.requests, whole.errors) == (600, 86)
    assert (total.requests, total.errors, total.latency_buckets) == (600, 86, whole.latency_buckets)
    assert parts[0].requests == 1 and parts[1].requests == 17  # [start, +0.5) holds second 0; then 1..17
    assert parts[2] == Window(seconds=0.0)  # [+17.3, +17.9) holds no second start
    assert [c.window(a, b) for a, b in itertools.pairwise(cuts)] == parts


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.floats(0, 120), st.sampled_from([200, 404, 500, 503, 0]), st.floats(0, 12)), max_size=60
    ),
    cuts=st.lists(st.floats(-5, 130), min_size=1, max_size=6),
)
def test_any_cuts_partition_the_counts(events: list[tuple[float, int, float]], cuts: list[float]) -> None:
    clock = Clock(0.0)
    c = ReleaseCounters(clock=clock)
    base = 1_700_000_000.0
    for at, status, seconds in sorted(events):
        clock.now = base + at
        if status:
            c.observe(status, seconds)
        else:
            c.fail()
    points = [base - 10, *sorted(base + cut for cut in cuts), base + 200]
    parts = [c.window(a, b) for a, b in itertools.pairwise(points)]
    total = functools.reduce(Window.merged, parts)
    whole = c.window(points[0], points[-1])
    assert (total.requests, total.errors, total.failed, total.latency_buckets) == (
        whole.requests,
        whole.errors,
        whole.failed,
        whole.latency_buckets,
    )
    assert (whole.requests, whole.failed) == (c.requests, c.failed)
    assert whole.errors == c.errors_5xx + c.failed


def test_history_is_bounded() -> None:
    clock = Clock(1_000_000.0)
    c = ReleaseCounters(clock=clock)
    for _ in range(HISTORY_SECONDS + 500):
        c.observe(200, 0.001)
        clock.now += 1
    assert len(c.history) <= HISTORY_SECONDS + 1
    assert c.requests == HISTORY_SECONDS + 500
    assert c.window(1_000_000, 1_000_400).requests == 0  # forgotten
    recent = c.window(clock.now - 3600, clock.now)
    assert recent.requests == 3600
    clock.now += 2 * HISTORY_SECONDS  # no traffic since: reading forgets the old slots too
    assert c.window(clock.now - 60, clock.now).requests == 0 and not c.history


def test_window_cost_does_not_depend_on_the_interval_length() -> None:
    c = ReleaseCounters(clock=Clock())
    c.observe(200, 0.001)
    started = time.perf_counter()
    assert c.window(0, 10**12).requests == 1
    assert time.perf_counter() - started < 1.0


# --- both routers count real traffic into windows -----------------------------------------------


class Apps:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, version: str, **env: str) -> Backend:
        port = free_port()
        self.procs.append(
            subprocess.Popen(
                [sys.executable, str(DEMO_APP / "app.py"), "--port", str(port)],
                env={**os.environ, "CONVEYOR_VERSION": version, **env},
                stdout=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return Backend(f"web.test-{version}-{port}", "127.0.0.1", port, version)
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"demo app {version} did not start"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def apps() -> Iterator[Apps]:
    apps = Apps()
    yield apps
    for proc in apps.procs:
        proc.terminate()
    for proc in apps.procs:
        proc.wait(10)


async def eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


ROUTER_KINDS = ["builtin", pytest.param("haproxy", marks=pytest.mark.skipif(bool(NO_HAPROXY), reason=NO_HAPROXY))]


@pytest.fixture(params=ROUTER_KINDS)
async def router(request: pytest.FixtureRequest) -> AsyncIterator[Router]:
    made: Router
    if request.param == "builtin":
        made = BuiltinRouter("web.test", "127.0.0.1", free_port())
    else:
        made = HAProxyRouter("web.test", "127.0.0.1", free_port(), max_body=1000)
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_router_fills_windows_per_release(router: Router, apps: Apps) -> None:
    good, bad = apps.start("v1"), apps.start("v2", DEMO_ERROR_RATE="1")
    await router.set_backends([good, bad])
    before = time.time()
    async with httpx.AsyncClient() as client:
        statuses = [(await client.get(f"http://127.0.0.1:{router.port}/version")).status_code for _ in range(20)]
    after = time.time()
    assert sorted(statuses) == [200] * 10 + [500] * 10
    await eventually(lambda: sum(c.requests for c in router.counters.values()) == 20, "the counts")
    v1, v2 = router.counters["v1"], router.counters["v2"]
    w1, w2 = v1.window(int(before), after + 1), v2.window(int(before), after + 1)
    assert (w1.requests, w1.errors, w1.failed) == (10, 0, 0)
    assert (w2.requests, w2.errors, w2.failed, w2.error_rate) == (10, 10, 0, 1.0)
    assert sum(w1.latency_buckets) == 10 and w1.quantile_ms(0.95) is not None
    assert v1.window(int(before) - 60, int(before)).requests == 0


async def test_builtin_router_counts_unanswered_requests_as_failed(apps: Apps) -> None:
    router = BuiltinRouter("web.test", "127.0.0.1", free_port())
    await router.start()
    try:
        await router.set_backends([Backend("web.test-dead", "127.0.0.1", free_port(), "v-dead")])
        before = time.time()
        async with httpx.AsyncClient() as client:
            statuses = [(await client.get(f"http://127.0.0.1:{router.port}/")).status_code for _ in range(3)]
        assert all(s >= 500 for s in statuses), statuses
        w = router.counters["v-dead"].window(int(before), time.time() + 1)
        assert (w.requests, w.errors, w.failed, w.seen, w.error_rate) == (0, 3, 3, 3, 1.0)
    finally:
        await router.stop()


def test_haproxy_request_log_lines_land_in_windows() -> None:
    """The log reader's three outcomes: an answer (with its status and time), no answer at all
    (termination state S*/K* with C, H or Q: failed), and a line of no server of ours (ignored)."""
    r = HAProxyRouter("web.test", "127.0.0.1", free_port(), max_body=1000)
    r._releases["web.test-v1-1"] = "v1"  # what set_backends records for the log
    before = time.time()
    for line in (b"200 12 ---- web.test-v1-1", b"500 3 ---- web.test-v1-1", b"503 0 SC-- web.test-v1-1"):
        r.observe(line)
    r.observe(b"503 0 SC-- <NOSRV>")
    w = r.counters["v1"].window(int(before), time.time() + 1)
    assert (w.requests, w.errors, w.failed) == (2, 2, 1)
    assert w.latency_buckets[LATENCY_BUCKETS.index(0.015)] == 1 and w.latency_buckets[LATENCY_BUCKETS.index(0.005)] == 1

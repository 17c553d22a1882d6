"""Zero-downtime deploys and warm rollback under steady load, through the agent's router.

    .venv/bin/python bench/zero_downtime.py [--quick] [--json FILE] [--cycles 3] [--min-requests 50000]
                                            [--routers builtin,haproxy] [--loadgen auto|wrk|python]
                                            [--rate RPS] [--connections 16] [--keep]

A real `conveyor server` subprocess (its own CONVEYOR_HOME, SQLite, CONVEYOR_POLL_INTERVAL=0)
deploys a service made of examples/demo-app (`run: python3 app.py --port $PORT`, health every
200 ms, 2 successes) to environments with `target: {kind: local, replicas: 2}`: one per router
kind (`builtin`, `haproxy`), `rollout: {strategy: rolling, max_surge: 1}`, `quick_rollback: 15m`,
and one more, `naive`, for the baseline. Two commits, v1 and v2 (VERSION differs).

Per router: a steady load run ("before", the throughput and latency of v1 alone), then the same
load for the whole cycle: a few seconds steady, then --cycles times (deploy v2 through
POST /api/v1/deployments, rolling; roll back to v1 through POST /api/v1/rollbacks, a router switch
to the warm v1). Each operation gets an equal time slot, long enough that at least --min-requests
requests flow at the rate measured before; the load stops when the last slot ends.

Load: wrk (`-t2 -c16 --latency`, GET /version over keep-alive, 127.0.0.1 only) when it is
installed, else a Python asyncio load generator in a subprocess that counts the same way. By
default each connection sends its next request as soon as the answer came (the router runs flat
out); --rate R adds a pause per connection (wrk's Lua `delay`) for about R requests/s. Failed
requests = wrk's "Non-2xx or 3xx responses" (status >= 400; the Python generator counts every
non-2xx) plus its socket errors (connect, read, write, timeout > 2 s).

Rollback time: a probe thread sends GET /version through the router on one keep-alive connection
(a 1 ms pause between requests) and records (time, status, version). The rollback time is from the
POST /rollbacks request to the first probe response after which every response (until the next
operation) comes from the previous version.

Baseline, in the same run: a naive stop-then-start restart. The conveyor.yml schema allows only
rolling and blue_green, so the benchmark drives the agent's own API
(POST /v1/environments/web.naive/operations, strategy "recreate": stop every old instance, then
start the new ones and wait for their health checks) with the same releases, the same load and the
same slots, --cycles times v1 -> v2 -> v1. The ratio is failed requests and availability against
the built-in router's rolling cycle.

The built-in router's steady throughput is also compared with HAProxy's (same backends, same
load): the ratio builtin / HAProxy. HAProxy is skipped, said so, when the agent cannot start it.

Exit status 1 when a target is missed: 0 failed requests out of >= --min-requests at >= 1,000 rps
through the built-in router, every warm rollback < 1 s; the same for HAProxy when it is available.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from conveyor.devserver import ServerProcess, free_port, make_token, server_env

ROOT = Path(__file__).resolve().parents[1]
DEMO_APP = ROOT / "examples" / "demo-app"
FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}
TARGET_RPS = 1000.0
TARGET_ROLLBACK_S = 1.0
PATH = "/version"
POLL_SERVER = 0.1  # how often a deployment's state is read: the server's CPU is part of what is measured
POLL_AGENT = 0.05  # as often as the local target polls the agent (targets/local.py POLL_SECONDS)
WRK_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# --- processes -----------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Server:
    """A `conveyor server` subprocess (conveyor.devserver) with its own CONVEYOR_HOME and an admin token."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.database_url = f"sqlite:///{home / 'conveyor.db'}"
        self.process: ServerProcess | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/api/v1", timeout=60)

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        token = make_token(self.database_url, "bench", ["admin", "release_manager"])
        self.client.headers["Authorization"] = f"Bearer {token}"
        # the benchmark's service checkout is next to HOME
        extra = {"CONVEYOR_SOURCE_LOCAL_ROOTS": str(self.home.parent)}
        env = server_env(self.home, self.database_url, self.port, poll_interval=0, extra=extra)
        self.process = ServerProcess(self.port, env, self.home / "server.log")
        self.process.start()

    def stop(self) -> None:
        self.client.close()
        if self.process:
            self.process.stop(timeout=30)

    def log(self) -> str:
        return self.process.log(4000) if self.process else ""

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def wait(self, deployment_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            d: dict[str, Any] = self.ok("GET", f"/deployments/{deployment_id}")
            if d["state"] in FINISHED:
                return d
            if time.monotonic() > deadline:
                raise RuntimeError(f"deployment {deployment_id} unfinished after {timeout:.0f} s: {d['state']}")
            time.sleep(POLL_SERVER)

    def deploy(self, environment: str, sha: str) -> dict[str, Any]:
        d = self.ok("POST", "/deployments", json={"environment": environment, "ref": sha})
        return self.wait(d["id"])


class Agent:
    """The agent the server started (HOME/agent/agent.json and token), spoken to directly."""

    def __init__(self, home: Path) -> None:
        info = json.loads((home / "agent" / "agent.json").read_text())
        self.pid, self.url = int(info["pid"]), info["url"]
        token = (home / "agent" / "token").read_text().strip()
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def state(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get(f"/v1/environments/{key}").raise_for_status().json()
        return result

    def counters(self, key: str) -> dict[str, dict[str, int]]:
        return {
            release: {k: c[k] for k in ("requests", "errors_5xx", "failed")}
            for release, c in self.state(key)["counters"].items()
        }

    def router_available(self, kind: str) -> str | None:
        """None when the agent can start a router of this kind, else why not."""
        key = f"bench-probe-{kind}"
        response = self.http.put(f"/v1/environments/{key}", json={"port": free_port(), "router": kind})
        if response.status_code >= 300:
            with contextlib.suppress(ValueError):
                return str(response.json().get("detail", response.text))
            return f"{response.status_code} {response.text[:300]}"
        self.http.delete(f"/v1/environments/{key}")
        return None

    def operate(self, key: str, body: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        op = self.http.post(f"/v1/environments/{key}/operations", json=body).raise_for_status().json()
        deadline = time.monotonic() + timeout
        while op["state"] == "running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"agent operation {body['id']} unfinished after {timeout:.0f} s")
            time.sleep(POLL_AGENT)
            op = self.http.get(f"/v1/environments/{key}/operations/{body['id']}").raise_for_status().json()
        result: dict[str, Any] = op
        return result


def stop_agent(home: Path) -> None:
    """SIGTERM to the pid in HOME/agent/agent.json (it stops its instances and routers), then wait."""
    path = home / "agent" / "agent.json"
    if not path.exists():
        return
    pid = int(json.loads(path.read_text())["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


# --- the service ---------------------------------------------------------------------------


def service_config(ports: dict[str, int]) -> str:
    return textwrap.dedent(
        f"""\
        service: web
        run: python3 app.py --port $PORT
        health: {{path: /healthz, interval: 200ms, successes: 2, timeout: 30s}}
        environments:
          builtin:
            target: {{kind: local, port: {ports["builtin"]}, replicas: 2, router: builtin}}
            rollout: {{strategy: rolling, max_surge: 1}}
            quick_rollback: 15m
          haproxy:
            target: {{kind: local, port: {ports["haproxy"]}, replicas: 2, router: haproxy}}
            rollout: {{strategy: rolling, max_surge: 1}}
            quick_rollback: 15m
          naive:
            target: {{kind: local, port: {ports["naive"]}, replicas: 2, router: builtin}}
        """
    )


def make_repo(path: Path, ports: dict[str, int]) -> tuple[str, str]:
    """The demo app as a service repository with two commits; returns (v1 sha, v2 sha)."""
    shutil.copytree(DEMO_APP, path, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    (path / "conveyor.yml").write_text(service_config(ports))
    (path / "VERSION").write_text("v1\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "web v1")
    v1 = git(path, "rev-parse", "HEAD")
    (path / "VERSION").write_text("v2\n")
    git(path, "commit", "-q", "-am", "web v2")
    return v1, git(path, "rev-parse", "HEAD")


# --- load ----------------------------------------------------------------------------------


@dataclass
class LoadSettings:
    tool: str  # wrk | python
    threads: int
    connections: int
    script: Path
    rate: float = 0.0  # 0: as fast as the router answers; else a pause per connection for about this rate

    @property
    def pause_ms(self) -> float:
        return max(1.0, round(self.connections * 1000 / self.rate)) if self.rate else 0.0  # wrk takes whole ms

    def describe(self) -> str:
        paced = f", each connection pausing {self.pause_ms:.0f} ms (--rate {self.rate:g})" if self.rate else ""
        if self.tool == "wrk":
            return f"wrk -t{self.threads} -c{self.connections} --latency (GET {PATH}, keep-alive{paced})"
        return f"python asyncio load generator, {self.connections} keep-alive connections (GET {PATH}{paced})"


class LoadRun:
    """wrk (or the Python generator) against a port, until ``stop`` or ``cap`` seconds."""

    def __init__(self, settings: LoadSettings, port: int, cap: float) -> None:
        url = f"http://127.0.0.1:{port}{PATH}"
        if settings.tool == "wrk":
            cmd = ["wrk", f"-t{settings.threads}", f"-c{settings.connections}", f"-d{math.ceil(cap)}s"]
            cmd += ["--timeout", "2s", "--latency", "-s", str(settings.script), url]
        else:
            cmd = [sys.executable, __file__, "--loadgen-worker", url]
            cmd += ["--connections", str(settings.connections), "--seconds", str(cap)]
            cmd += ["--pause-ms", str(settings.pause_ms)]
        self.cap = cap
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        RUNNING.add(self.proc)

    def stop(self) -> dict[str, Any]:
        """SIGINT ends the run early (wrk and the Python generator both print their summary)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.result()

    def result(self) -> dict[str, Any]:
        try:
            out, _ = self.proc.communicate(timeout=self.cap + 30)
        finally:
            RUNNING.discard(self.proc)
        line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
        if line is None:
            raise RuntimeError(f"the load generator printed no summary (exit {self.proc.returncode}):\n{out[-2000:]}")
        raw = json.loads(line.removeprefix("WRKJSON "))
        seconds = raw["duration_us"] / 1e6
        sockets = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
        return {
            "seconds": round(seconds, 2),
            "requests": raw["requests"],
            "failed": raw["status"] + sockets,
            "bad_status": raw["status"],
            "socket_errors": {k: raw[k] for k in ("connect", "read", "write", "timeout")},
            "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
            "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "max_ms": raw["max_us"] / 1000,
        }


RUNNING: set[subprocess.Popen[str]] = set()  # load generators to kill if the benchmark is interrupted


def python_loadgen(url: str, connections: int, seconds: float, pause_ms: float) -> int:
    """The fallback load generator (run as a subprocess): keep-alive GETs on N connections."""
    host_port = url.removeprefix("http://").split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    request = f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode()
    counts = {"requests": 0, "status": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0}
    latencies: list[float] = []

    async def worker(stop: asyncio.Event) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while not stop.is_set():
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
                except (OSError, TimeoutError):
                    counts["connect"] += 1
                    await asyncio.sleep(0.01)
                    continue
            assert reader is not None
            t0 = time.perf_counter()
            try:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
                status = int(head[9:12])
                lower = head.lower()
                length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                await asyncio.wait_for(reader.readexactly(length), 2)
            except TimeoutError:
                counts["timeout"] += 1
                writer.close()
                writer = None
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                counts["read"] += 1
                writer.close()
                writer = None
                continue
            latencies.append(time.perf_counter() - t0)
            counts["requests"] += 1
            if pause_ms:
                await asyncio.sleep(pause_ms / 1000)
            if not 200 <= status < 300:
                counts["status"] += 1
            if b"connection: close" in lower:
                writer.close()
                writer = None

    async def main() -> float:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        started = time.perf_counter()
        tasks = [asyncio.create_task(worker(stop)) for _ in range(connections)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        stop.set()
        await asyncio.wait(tasks, timeout=3)
        return time.perf_counter() - started

    took = asyncio.run(main())
    ordered = sorted(latencies) or [0.0]

    def pct_us(q: float) -> int:
        return int(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1e6)

    summary = {**counts, "duration_us": int(took * 1e6), "max_us": int(ordered[-1] * 1e6)}
    summary.update(p50_us=pct_us(50), p90_us=pct_us(90), p99_us=pct_us(99))
    print("WRKJSON " + json.dumps(summary), flush=True)
    return 0


# --- the probe -----------------------------------------------------------------------------


@dataclass
class Sample:
    sent: float  # time.monotonic()
    received: float
    status: int  # 0: no answer (socket error)
    version: str


@dataclass
class Probe:
    """One keep-alive connection sending GET /version through the router, recording every answer."""

    port: int
    pause: float = 0.001
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Probe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                conn.request("GET", PATH)
                response = conn.getresponse()
                body = response.read()
                version = (
                    json.loads(body).get("version", "")
                    if response.status == 200
                    else body[:80].decode(errors="replace").strip()
                )
                self.samples.append(Sample(sent, time.monotonic(), response.status, version))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.samples.append(Sample(sent, time.monotonic(), 0, f"{type(exc).__name__}: {exc}"))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            if self.pause:
                time.sleep(self.pause)
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def window(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if s.sent >= start and s.received < end]


def settle_time(samples: list[Sample], start: float, version: str) -> float | None:
    """Seconds from ``start`` to the first answer after which every answer is 200 from ``version``."""
    last_other = max((i for i, s in enumerate(samples) if not (s.status == 200 and s.version == version)), default=-1)
    if last_other == len(samples) - 1:
        return None  # never settled within the window
    return samples[last_other + 1].received - start


def outages(samples: list[Sample], start: float) -> list[float]:
    """Lengths of the spans with no 200: from the last 200 before a run of failures (or ``start``)
    to the next 200 (or the last answer, when none came)."""
    spans: list[float] = []
    last_ok = start
    failing = False
    for s in samples:
        if s.status == 200:
            if failing:
                spans.append(s.received - last_ok)
            failing, last_ok = False, s.received
        else:
            failing = True
    if failing:
        spans.append(samples[-1].received - last_ok)
    return spans


# --- scenarios -----------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    load: LoadSettings
    server: Server
    agent: Agent | None = None
    v1: dict[str, Any] = field(default_factory=dict)  # {"sha", "version"}
    v2: dict[str, Any] = field(default_factory=dict)

    def steady(self, port: int) -> dict[str, Any]:
        return LoadRun(self.load, port, self.args.before).result()

    def slot_seconds(self, rps: float) -> float:
        """Each operation's slot: long enough that --min-requests flow at 85% of the steady rate."""
        n_ops = 2 * self.args.cycles
        needed = self.args.min_requests / max(rps * 0.85, 1.0) - self.args.lead
        return max(self.args.min_slot, needed / n_ops)

    def cycle(
        self, port: int, key: str, slot: float, operations: list[tuple[str, dict[str, Any], Callable[[], Any]]]
    ) -> dict[str, Any]:
        """Load for the whole cycle; each operation runs at the start of its slot."""
        assert self.agent is not None
        counters_before = self.agent.counters(key)
        probe = Probe(port, self.args.probe_pause).start()
        time.sleep(0.3)
        total = self.args.lead + slot * len(operations)
        run = LoadRun(self.load, port, total + 60)  # the cap only bounds a run that is never stopped
        t0 = run.started
        time.sleep(self.args.lead)
        done: list[dict[str, Any]] = []
        try:
            for i, (label, target, operation) in enumerate(operations):
                requested_wall, requested = time.time(), time.monotonic()
                outcome = operation()
                finished = time.monotonic()
                done.append(
                    {
                        "op": label,
                        "to": target["version"],
                        "requested": requested,
                        "requested_wall": requested_wall,
                        "finished_s": round(finished - requested, 3),
                        "outcome": outcome,
                    }
                )
                slot_end = t0 + self.args.lead + slot * (i + 1)
                time.sleep(max(self.args.min_dwell, slot_end - time.monotonic()))
        finally:
            load = run.stop()
            probe.stop()
        first_op = done[0]["requested"] if done else time.monotonic()
        ends = [d["requested"] for d in done[1:]] + [time.monotonic()]
        for d, end in zip(done, ends, strict=True):
            window = probe.window(d["requested"], end)
            switch = settle_time(window, d["requested"], d["to"])
            d["all_traffic_on_new_s"] = None if switch is None else round(switch, 3)
            d["probe_answers"] = len(window)
            d["probe_failed"] = sum(1 for s in window if s.status != 200)
            d["probe_failures"] = sorted({f"{s.status} {s.version}"[:120] for s in window if s.status != 200})[:5]
            d["outages_s"] = [round(x, 3) for x in outages(window, d["requested"])]
            rollout = d["outcome"].get("steps", {}).get("rollout")
            if rollout and rollout["start_ms"] is not None:  # the engine's share: request -> rollout step
                start = d["outcome"]["created_epoch"] + rollout["start_ms"] / 1000 - d["requested_wall"]
                d["rollout_step_started_s"] = round(start, 3)
            del d["requested"]
        before = probe.window(0, first_op)
        gaps = [b.received - a.received for a, b in zip(probe.samples, probe.samples[1:], strict=False)]
        return {
            "slot_s": round(slot, 2),
            "load": load,
            "operations": done,
            "probe": {
                "answers": len(probe.samples),
                "failed": sum(1 for s in probe.samples if s.status != 200),
                "median_interval_ms": round(sorted(gaps)[len(gaps) // 2] * 1000, 2) if gaps else None,
                "failed_before_first_operation": sum(1 for s in before if s.status != 200),
            },
            "router_counters": diff_counters(counters_before, self.agent.counters(key)),
        }

    # --- Conveyor: rolling deploy v2, warm rollback to v1, through the server ---

    def conveyor_operations(self, env: str) -> list[tuple[str, dict[str, Any], Callable[[], Any]]]:
        def deploy() -> dict[str, Any]:
            return summarize(self.server.deploy(env, self.v2["sha"]))

        def rollback() -> dict[str, Any]:
            d = self.server.ok("POST", "/rollbacks", json={"environment": env})
            return summarize(self.server.wait(d["id"]))

        ops: list[tuple[str, dict[str, Any], Callable[[], Any]]] = []
        for _ in range(self.args.cycles):
            ops += [("deploy v2 (rolling)", self.v2, deploy), ("rollback to v1 (warm)", self.v1, rollback)]
        return ops

    def run_router(self, env: str, port: int, slot: float | None = None) -> dict[str, Any]:
        first = self.server.deploy(env, self.v1["sha"])
        if first["state"] != "succeeded":
            raise RuntimeError(f"deploying v1 to {env} failed: {first['reason']}")
        print(f"  {env}: steady load for {self.args.before:.0f} s (v1 on 2 instances) ...", flush=True)
        before = self.steady(port)
        slot = slot or self.slot_seconds(before["rps"])
        print(f"  {env}: {self.args.cycles} x (deploy v2, roll back to v1) under load, {slot:.1f} s slots ...")
        during = self.cycle(port, f"web.{env}", slot, self.conveyor_operations(env))
        return {"port": port, "before": before, "during": during}

    def throughput(self, ports: dict[str, int]) -> dict[str, Any]:
        """Steady runs on each router in turn (both serve v1 on 2 instances), so that other work on
        the machine weighs on both alike; the ratio of the medians."""
        rps: dict[str, list[float]] = {kind: [] for kind in ports}
        p99: dict[str, list[float]] = {kind: [] for kind in ports}
        print(f"  throughput: {self.args.rounds} round(s) of {self.args.before:.0f} s on each router, alternating ...")
        for _ in range(self.args.rounds):
            for kind, port in ports.items():
                r = self.steady(port)
                if r["failed"]:
                    print(f"  throughput: {kind}: {r['failed']} failed requests in a steady run")
                rps[kind].append(r["rps"])
                p99[kind].append(r["p99_ms"])
        median = {kind: statistics.median(v) for kind, v in rps.items()}
        return {
            "rps": rps,
            "p99_ms": p99,
            "median_rps": median,
            "median_p99_ms": {kind: statistics.median(v) for kind, v in p99.items()},
            "ratio_builtin_over_haproxy": round(median["builtin"] / median["haproxy"], 3)
            if median["haproxy"]
            else None,
        }

    # --- baseline: stop-then-start through the agent's API ---

    def run_naive(self, port: int, slot: float, tmp: Path) -> dict[str, Any]:
        assert self.agent is not None
        first = self.server.deploy("naive", self.v1["sha"])
        if first["state"] != "succeeded":
            raise RuntimeError(f"deploying v1 to naive failed: {first['reason']}")
        worktrees = {}
        for release in (self.v1, self.v2):
            path = tmp / f"naive-{release['version']}"
            git(Path(self.args.repo), "worktree", "add", "-q", "--detach", str(path), release["sha"])
            worktrees[release["sha"]] = path
        counter = iter(range(1, 1000))

        def recreate(release: dict[str, Any]) -> Callable[[], Any]:
            def go() -> dict[str, Any]:
                assert self.agent is not None
                body = {
                    "id": f"bench-recreate-{next(counter)}",
                    "release": {
                        "version": release["version"],
                        "sha": release["sha"],
                        "workdir": str(worktrees[release["sha"]]),
                        "command": "python3 app.py --port $PORT",
                        "env": {"CONVEYOR_VERSION": release["version"], "CONVEYOR_SHA": release["sha"]},
                    },
                    "replicas": 2,
                    "strategy": "recreate",
                    "quick_rollback": 0,
                    "health": {"path": "/healthz", "interval": 0.2, "successes": 2, "timeout": 30},
                }
                op = self.agent.operate("web.naive", body)
                return {"state": op["state"], "message": op["message"]}

            return go

        ops: list[tuple[str, dict[str, Any], Callable[[], Any]]] = []
        for _ in range(self.args.cycles):
            ops += [("recreate v2", self.v2, recreate(self.v2)), ("recreate v1", self.v1, recreate(self.v1))]
        print(f"  naive: {self.args.cycles} x (stop-then-start v2, stop-then-start v1) under load, {slot:.1f} s slots")
        return {"port": port, "during": self.cycle(port, "web.naive", slot, ops)}


def summarize(d: dict[str, Any]) -> dict[str, Any]:
    """A deployment's outcome with its step timings relative to its creation (ms)."""
    created = datetime.fromisoformat(d["created_at"])

    def at(stamp: str | None) -> float | None:
        return None if not stamp else round((datetime.fromisoformat(stamp) - created).total_seconds() * 1000, 1)

    return {
        "created_epoch": created.timestamp(),
        "id": d["id"],
        "state": d["state"],
        "version": d["version"],
        "reason": d.get("reason"),
        "started_ms": at(d.get("started_at")),
        "finished_ms": at(d.get("finished_at")),
        "steps": {
            s["name"]: {
                "start_ms": at(s.get("started_at")),
                "end_ms": at(s.get("finished_at")),
                "msg": s.get("message"),
            }
            for s in d["steps"]
        },
    }


def diff_counters(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out = {}
    for release, c in after.items():
        prior = before.get(release, {})
        out[release] = {k: v - prior.get(k, 0) for k, v in c.items()}
    return out


# --- report --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "cores": os.cpu_count(),
        "nproc": int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout),
        "memory_kb": mem_kb,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": loadavg(),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def tool_versions() -> dict[str, str]:
    out = {}
    for name, cmd in (("wrk", ["wrk", "-v"]), ("haproxy", ["haproxy", "-v"])):
        with contextlib.suppress(OSError):
            text = subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()
            out[name] = text[0] if text else ""
    return out


def row(label: str, r: dict[str, Any]) -> str:
    sock = sum(r["socket_errors"].values())
    return (
        f"  {label:34}{r['seconds']:>7.1f}{r['requests']:>10,}{r['failed']:>8,}{r['bad_status']:>9,}{sock:>8,}"
        f"{r['rps']:>9,.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
    )


def availability(r: dict[str, Any]) -> float:
    total = r["requests"] + sum(r["socket_errors"].values()) - r["socket_errors"]["timeout"]
    return 1 - r["failed"] / total if total else 0.0


def print_report(report: dict[str, Any]) -> list[str]:
    """Prints the tables; returns the targets missed."""
    routers, naive = report["routers"], report.get("baseline")
    intervals = [r["during"]["probe"]["median_interval_ms"] for r in routers.values() if "during" in r]
    resolution = f", median {statistics.median(intervals):.1f} ms between answers" if intervals else ""
    print(
        f"\nload: {report['load']} · probe: 1 keep-alive connection, GET {PATH}, "
        f"{report['probe_pause_ms']:g} ms pause{resolution}"
    )
    print(
        f"  {'run':34}{'secs':>7}{'requests':>10}{'failed':>8}{'non-2xx':>9}{'socket':>8}{'rps':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}"
    )
    cycles = report["cycles"]
    for kind, r in routers.items():
        if "error" in r:
            print(f"  {kind}: {r['error']}")
            continue
        print(row(f"{kind}: steady v1 (before)", r["before"]))
        print(row(f"{kind}: {cycles}x deploy + rollback", r["during"]["load"]))
        if kind == "builtin" and naive:
            print(row(f"builtin: {cycles}x stop-then-start (base)", naive["during"]["load"]))
    print("  (failed = non-2xx + socket errors; latency percentiles from the load generator)")

    print("\noperations under load (s): finished = request -> deployment finished; switched = request -> every")
    print("probe answer from then on is 200 from the new version; probe failed = probe requests not 200")
    for kind, r in [*routers.items(), *([("naive (baseline)", naive)] if naive else [])]:
        if "error" in r:
            continue
        for d in r["during"]["operations"]:
            outcome = d["outcome"]
            state = outcome.get("state", "?")
            extra = ""
            if "rollout_step_started_s" in d:
                extra = f" (rollout step began at {d['rollout_step_started_s']:.3f})"
            if d["outages_s"]:
                extra += f" outage {sum(d['outages_s']):.3f} s"
            print(
                f"  {kind:17}{d['op']:24}{state:10} finished {d['finished_s']:6.3f}  switched "
                f"{fmt_s(d['all_traffic_on_new_s'])}  probe failed {d['probe_failed']}/{d['probe_answers']}{extra}"
            )
            for f in d["probe_failures"]:
                print(f"      probe: {f}")

    missed: list[str] = []
    print("\ntargets")
    for kind, r in routers.items():
        if "error" in r:
            if kind == "haproxy":
                print(f"  HAProxy: not available ({r['error']})")
            else:
                missed.append(f"{kind}: {r['error']}")
            continue
        load = r["during"]["load"]
        ok_failed = load["failed"] == 0
        ok_n = load["requests"] >= report["min_requests"]
        ok_rps = load["rps"] >= TARGET_RPS
        verdict = "PASS" if ok_failed and ok_n and ok_rps else "MISS"
        print(
            f"  [{verdict}] {kind}: {load['failed']} failed of {load['requests']:,} requests "
            f"(>= {report['min_requests']:,}) at {load['rps']:,.0f} rps (>= {TARGET_RPS:,.0f})"
        )
        if verdict == "MISS":
            missed.append(f"{kind} load target")
        rollbacks = [d["all_traffic_on_new_s"] for d in r["during"]["operations"] if d["op"].startswith("rollback")]
        worst = None if None in rollbacks else max(rollbacks, default=None)
        ok = worst is not None and worst < TARGET_ROLLBACK_S
        shown = ", ".join(fmt_s(x) for x in rollbacks)
        print(
            f"  [{'PASS' if ok else 'MISS'}] {kind}: warm rollback to 100% on v1: {shown}; max {fmt_s(worst)} (< 1 s)"
        )
        if not ok:
            missed.append(f"{kind} rollback")
        broken = [
            f"{d['op']}: {d['outcome'].get('state')} {d['outcome'].get('reason') or ''}".strip()
            for d in r["during"]["operations"]
            if d["outcome"].get("state") != "succeeded" or d["all_traffic_on_new_s"] is None
        ]
        for line in broken:
            print(f"  [MISS] {kind}: {line[:300]} (or traffic never settled on the new version)")
        if broken:
            missed.append(f"{kind} operations")
        names = {rel["version"]: label for label, rel in report.get("releases", {}).items()}
        counters = ", ".join(
            f"{names.get(release, '?')} ({release}): {c['requests']:,} answered, "
            f"{c['errors_5xx']} 5xx, {c['failed']} no answer"
            for release, c in r["during"]["router_counters"].items()
        )
        print(f"         router's own counters during the cycle: {counters or 'none'}")

    print("\nratios (same run)")
    b = routers.get("builtin", {})
    if naive and "during" in b:
        ours, base = b["during"]["load"], naive["during"]["load"]
        print(
            f"  stop-then-start baseline: {base['failed']:,} failed of {base['requests']:,} "
            f"(availability {availability(base):.4%}); Conveyor rolling + warm rollback: {ours['failed']:,} failed of "
            f"{ours['requests']:,} (availability {availability(ours):.4%})"
        )
        rate_ours = ours["failed"] / max(ours["requests"], 1)
        rate_base = base["failed"] / max(base["requests"], 1)
        ratio = "inf (Conveyor failed none)" if rate_ours == 0 else f"{rate_base / rate_ours:,.1f}x"
        print(f"  failed-request rate baseline / Conveyor: {ratio}")
        for name, r in (("baseline", naive), ("Conveyor", b)):
            spans = [x for d in r["during"]["operations"] for x in d["outages_s"]]
            seconds = r["during"]["load"]["seconds"]
            shown = ", ".join(f"{x:.2f} s" for x in spans) or "none"
            print(
                f"  {name}: probe saw no 200 for {sum(spans):.2f} s of {seconds:.1f} s "
                f"(time availability {1 - sum(spans) / seconds:.2%}); outages: {shown}"
            )
    t = report.get("throughput")
    if t:
        med, p99 = t["median_rps"], t["median_p99_ms"]
        runs = ", ".join(f"{kind} {'/'.join(f'{x:,.0f}' for x in v)}" for kind, v in t["rps"].items())
        print(
            f"  steady throughput builtin / HAProxy: {med['builtin']:,.0f} / {med['haproxy']:,.0f} rps "
            f"= {t['ratio_builtin_over_haproxy']:.2f} (medians of alternating runs: {runs}); "
            f"p99 {p99['builtin']:.2f} / {p99['haproxy']:.2f} ms"
        )
    elif "before" in b:
        why = routers["haproxy"].get("error", "") if "haproxy" in routers else "not measured (--routers)"
        why = "not measured: it needs unpaced load (no --rate)" if report["rate"] and not why else why
        print(f"  throughput builtin / HAProxy: HAProxy {why or 'not measured'}")
    return missed


def fmt_s(v: float | None) -> str:
    return "never" if v is None else f"{v:.3f}"


# --- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run: 1 cycle, 5,000 requests")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--cycles", type=int, help="deploy + rollback cycles per router (default 3)")
    parser.add_argument("--min-requests", type=int, help="requests the cycle must carry (default 50,000)")
    parser.add_argument("--before", type=float, help="seconds of the steady 'before' run (default 10)")
    parser.add_argument("--routers", default="builtin,haproxy", help="comma-separated: builtin, haproxy")
    parser.add_argument("--no-baseline", action="store_true", help="skip the stop-then-start baseline")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="load connections")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="pace the load to about this many requests/s (a pause per connection); default: as fast as it goes",
    )
    parser.add_argument("--probe-pause", type=float, default=0.001, help="seconds between probe requests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) and print it")
    parser.add_argument("--loadgen-worker", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--pause-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    args.cycles = args.cycles or (1 if quick else 3)
    args.min_requests = args.min_requests if args.min_requests is not None else (5_000 if quick else 50_000)
    args.before = args.before or (3.0 if quick else 10.0)
    args.rounds = 1 if quick else 3  # alternating steady runs per router for the throughput ratio
    args.lead = 1.0 if quick else 3.0  # steady seconds at the start of the cycle run
    args.min_slot = 3.0 if quick else 4.0  # an operation's slot is at least this long
    args.min_dwell = 1.0  # and the state after it is watched at least this long
    return args


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="conveyor-zdt-"))
        print(f"  keeping {path}")
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="conveyor-zdt-") as name:
            yield Path(name)


def main() -> int:
    args = parse_args()
    if args.loadgen_worker:
        return python_loadgen(args.loadgen_worker, args.connections, args.seconds, args.pause_ms)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    routers = [r.strip() for r in args.routers.split(",") if r.strip()]
    if set(routers) - {"builtin", "haproxy"} or not routers:
        print(f"--routers: use builtin and/or haproxy, not {args.routers!r}", file=sys.stderr)
        return 2
    tool = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")
    if tool == "wrk" and not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk), use --loadgen python", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "tools": tool_versions(),
        "command": " ".join([".venv/bin/python", "bench/zero_downtime.py", *sys.argv[1:]]),
        "cycles": args.cycles,
        "min_requests": args.min_requests,
        "probe_pause_ms": args.probe_pause * 1000,
        "rate": args.rate,
        "routers": {},
    }
    m = report["machine"]
    print(
        f"Conveyor zero-downtime benchmark · {report['date']} · {m['nproc']} cores, {m['memory_gib']} GiB · {m['cpu']}"
    )
    print(f"  load average at start {m['load_average_at_start']} (1/5/15 min)")
    with workspace(args.keep) as tmp:
        script = tmp / "summary.lua"
        load = LoadSettings(tool, args.threads, args.connections, script, args.rate)
        pacing = f"delay = function() return {load.pause_ms:.0f} end\n" if args.rate else ""
        script.write_text(pacing + WRK_SCRIPT)
        report["load"] = load.describe()
        ports = {"builtin": free_port(), "haproxy": free_port(), "naive": free_port()}
        repo = tmp / "web"
        args.repo = str(repo)
        sha1, sha2 = make_repo(repo, ports)
        server = Server(tmp / "home")
        bench = Bench(args, load, server)
        try:
            server.start()
            server.ok("POST", "/services", json={"source": str(repo)})
            print("  preparing: v1 and v2 to the builtin environment once (the versions, the agent) ...")
            first = server.deploy("builtin", sha1)
            if first["state"] != "succeeded":
                raise RuntimeError(f"deploying v1 failed: {first['reason']}")
            second = server.deploy("builtin", sha2)
            if second["state"] != "succeeded":
                raise RuntimeError(f"deploying v2 failed: {second['reason']}")
            bench.v1 = {"sha": sha1, "version": first["version"]}
            bench.v2 = {"sha": sha2, "version": second["version"]}
            report["releases"] = {"v1": bench.v1, "v2": bench.v2}
            back = server.ok("POST", "/rollbacks", json={"environment": "builtin"})
            server.wait(back["id"])
            bench.agent = Agent(server.home)
            slot = None
            for kind in routers:
                if kind == "haproxy" and (why := bench.agent.router_available("haproxy")):
                    print(f"  HAProxy: not available ({why})")
                    report["routers"][kind] = {"error": f"not available: {why}"}
                    continue
                try:
                    report["routers"][kind] = bench.run_router(kind, ports[kind], slot)
                except Exception as exc:  # one router failing must not lose the other's figures
                    if kind != "haproxy":
                        raise
                    report["routers"][kind] = {"error": f"failed: {type(exc).__name__}: {exc}"}
                    continue
                slot = slot or report["routers"][kind]["during"]["slot_s"]
                if kind == "builtin" and not args.no_baseline:
                    report["baseline"] = bench.run_naive(ports["naive"], slot, tmp)
            if not args.rate and all("before" in report["routers"].get(k, {}) for k in ("builtin", "haproxy")):
                report["throughput"] = bench.throughput({k: ports[k] for k in ("builtin", "haproxy")})
        finally:
            for proc in list(RUNNING):
                proc.kill()
            server.stop()
            stop_agent(server.home)
    report["load_average_at_end"] = loadavg()
    print(f"  load average at end {report['load_average_at_end']} (1/5/15 min)")
    missed = print_report(report)
    if "baseline" in report:
        print(
            "\nbaseline: a naive stop-then-start restart of the same two instances behind the same built-in router,"
            "\ndriven through the agent's API (strategy 'recreate': stop all old instances, then start the new ones"
            "\nand wait for their health checks), with the same load and the same slots as the rolling cycle."
            "\nIts request-count availability is lower than its time availability: a 503 from an empty rotation"
            "\ncomes back in well under a millisecond, so a closed-loop load generator sends many more requests"
            "\nwhile nothing serves. The time availability (probe) is the fairer of the two."
        )
    report["targets_missed"] = missed
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

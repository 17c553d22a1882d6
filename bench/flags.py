"""Feature flags: local evaluation cost, OFREP throughput on one server worker, and how fast a
change reaches SDK clients in other processes.

    .venv/bin/python bench/flags.py [--quick] [--json FILE] [--seconds 10] [--connections 16]
                                    [--clients 20] [--flips 20] [--baseline-flips 2]
                                    [--rounds 3] [--only all|ofrep] [--users 1000]
                                    [--loadgen auto|wrk|python] [--keep]

Three parts, each with a baseline measured in the same run:

1. Local evaluation (in this process, no server). timeit loops, best of several repeats, of
   ``Ruleset.evaluate`` and of the module-level ``conveyor_flags.feature_flag`` (an offline default
   client holding the same ruleset) for two flags: ``simple`` (on for everyone) and ``rollout`` (one
   ``IN`` constraint on ``country`` + a 30% rollout on ``user_id``). Baseline: UnleashClient's
   ``is_enabled`` on the equivalent features (``default``; ``flexibleRollout`` 30% on ``userId``,
   group ``rollout``, with the same constraint), fully offline: a FileCache bootstrapped from a
   dict, no ``initialize_client()`` (no registration, no metrics, no fetching). Its engine
   (``yggdrasil_engine``) alone is timed too. Before timing, 10,000 user ids are checked to get the
   same answer from both. Target: under 2 us per call for the simple flag.

2. OFREP on one server worker: a real server subprocess (``conveyor server``'s app, settings and
   uvicorn call, one worker, its own CONVEYOR_HOME, SQLite) with an SDK key and 50 flags in
   production. wrk (``-t2 -c16``, keep-alive, 127.0.0.1) sends ``POST
   /ofrep/v1/evaluate/flags/rollout`` with ``{"context": {"targetingKey": "user-N", "country":
   "SE"}}`` (N cycling over ``--users`` ids, 1,000 by default), and the same body to the bulk ``POST
   /ofrep/v1/evaluate/flags`` (50 flags), for ``--seconds`` each. Baselines in the same run, same
   wrk settings and body: ``POST /bench/bare``, a bare async route the launcher adds to the same
   app (same process, middleware and background threads: the target's baseline); a bare Starlette
   app in its own process under the same uvicorn call (the framework's ceiling); and the server's
   ``GET /api/v1/health`` (the issue's first baseline). ``--rounds`` interleaved rounds, best of
   each. Targets: single at least 5,000/s and at least 0.8 of ``/bench/bare``. ``--only ofrep``
   runs this part alone. Without wrk a Python asyncio load generator (a subprocess) does the same.
   The server keeps a single evaluation's encoded answer per ruleset version and request body
   (api/ofrep.py), at most 10,000 of them: with the default 1,000 ids every request after the
   first thousand is answered from it; ``--users 1000000`` makes nearly every body new (no hits).

3. Propagation: ``--clients`` SDK clients (``conveyor_flags.Client``, default options: the SSE
   stream) in separate processes, on the production SDK key. Each reports ``time.time()`` from its
   ``on_change`` callback when the flag's value changes. The flag is switched off (``POST
   .../kill``) and on again (``POST .../on``) through the admin API, ``--flips`` times in all (after
   one unmeasured off/on pair that proves every stream is connected); the latency of one client for
   one flip is the time from the API call returning to that client's callback. Baseline: the same
   number of clients with ``stream=False`` (polling at the SDK's default interval), on another
   environment's key, their starts spread over one poll interval, ``--baseline-flips`` flips.
   Target: p99 under 250 ms on loopback.

Exit status 1 when a target is missed, a client missed a flip, or OFREP answered anything but 200.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import math
import os
import platform
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import conveyor_flags
import httpx
from conveyor_flags import Client, compile_ruleset

from conveyor.devserver import ServerProcess, free_port, make_token, server_env

TARGET_SIMPLE_NS = 2000.0
TARGET_OFREP_RPS = 5000.0  # single-flag evaluations per second on one worker
TARGET_OFREP_RATIO = 0.8  # of the bare endpoint's requests per second, same run
BULK_FLAGS = 50  # flags in production for the bulk run (the three above and 47 more)
TARGET_PROPAGATION_P99_MS = 250.0
USERS = [f"user-{i}" for i in range(10_000)]
COUNTRY_RULE = {"attribute": "country", "operator": "IN", "values": ["SE", "NO"]}

# --- part 1: local evaluation ---------------------------------------------------------------

RULESET = {
    "environment": "production",
    "version": 1,
    "flags": {
        "simple": {"key": "simple", "type": "boolean", "enabled": True, "default": False, "strategies": []},
        "rollout": {
            "key": "rollout",
            "type": "boolean",
            "enabled": True,
            "default": False,
            "strategies": [
                {"constraints": [COUNTRY_RULE], "rollout": 30, "stickiness": "user_id", "group_id": "rollout"}
            ],
        },
    },
}
UNLEASH_FEATURES = {
    "version": 2,
    "features": [
        {
            "name": "simple",
            "enabled": True,
            "strategies": [{"name": "default", "parameters": {}, "constraints": []}],
        },
        {
            "name": "rollout",
            "enabled": True,
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "30", "stickiness": "userId", "groupId": "rollout"},
                    "constraints": [
                        {
                            "contextName": "country",
                            "operator": "IN",
                            "values": ["SE", "NO"],
                            "inverted": False,
                            "caseInsensitive": False,
                        }
                    ],
                }
            ],
        },
    ],
}


def calibrate(stmt: str, namespace: dict[str, Any], min_seconds: float) -> tuple[timeit.Timer, int]:
    """A timer and the number of calls that make one run last at least ``min_seconds``."""
    timer = timeit.Timer(stmt, globals=namespace)
    number = 1
    while True:
        took = timer.timeit(number)
        if took >= min_seconds:
            return timer, number
        number = max(number * 2, int(number * min_seconds / max(took, 1e-9) * 1.1))


def best_ns(cases: dict[str, str], namespace: dict[str, Any], repeats: int, min_seconds: float) -> dict[str, Any]:
    """Nanoseconds per call of each statement: the best of ``repeats`` runs of N calls, N sized so a
    run takes at least ``min_seconds`` (as ``python -m timeit``; the loop's own cost is included).
    The runs go round-robin over the cases, so a burst of other work on the machine does not
    land on one case only."""
    timers = {name: calibrate(stmt, namespace, min_seconds) for name, stmt in cases.items()}
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (timer, number) in timers.items():
            runs[name].append(timer.timeit(number) / number * 1e9)
    return {
        name: {
            "stmt": cases[name],
            "ns": min(runs[name]),
            "median_ns": statistics.median(runs[name]),
            "calls_per_run": timers[name][1],
            "runs": repeats,
        }
        for name in cases
    }


def unleash_client(cache_dir: str) -> tuple[Any, Any] | str:
    """An UnleashClient serving UNLEASH_FEATURES offline, and its engine; or why there is none."""
    try:
        from UnleashClient import UnleashClient
        from UnleashClient.cache import FileCache
    except ImportError as exc:
        return f"UnleashClient is not installed ({exc}); pip install UnleashClient"
    cache = FileCache("conveyor-bench", directory=cache_dir)
    cache.bootstrap_from_dict(UNLEASH_FEATURES)
    client = UnleashClient(
        url="http://127.0.0.1:9/unleash-is-never-called",
        app_name="conveyor-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )  # initialize_client() is not called: no registration, no metrics, no fetch; the bootstrap serves
    return client, client._engine


def local_evaluation(repeats: int, min_seconds: float) -> dict[str, Any]:
    ruleset = compile_ruleset(RULESET)
    conveyor_flags.configure(url=None, sdk_key=None, ruleset=RULESET)  # offline default client
    inside = next(u for u in USERS if ruleset.evaluate("rollout", {"user_id": u, "country": "SE"}, False).value)
    out: dict[str, Any] = {"rollout_user": inside, "repeats": repeats, "min_seconds_per_run": min_seconds}
    ns: dict[str, Any] = {
        "ruleset": ruleset,
        "feature_flag": conveyor_flags.feature_flag,
        "ctx_simple": {"user_id": inside},
        "ctx_rollout": {"user_id": inside, "country": "SE"},
        "uid": inside,
    }
    cases = {
        "ruleset_simple": 'ruleset.evaluate("simple", ctx_simple, False)',
        "ruleset_rollout": 'ruleset.evaluate("rollout", ctx_rollout, False)',
        "feature_flag_simple": 'feature_flag("simple", user_id=uid)',
        "feature_flag_rollout": 'feature_flag("rollout", user_id=uid, country="SE")',
    }
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-unleash-") as cache_dir:
        made = unleash_client(cache_dir)
        if isinstance(made, str):
            out["unleash"] = made
        else:
            client, engine = made
            ns.update(
                unleash=client,
                engine=engine,
                uctx_simple={"userId": inside},
                uctx_rollout={"userId": inside, "country": "SE"},
                ectx_simple={"userId": inside},
                ectx_rollout={"userId": inside, "properties": {"country": "SE"}},
            )
            # equivalent features: the same answer for every id, in and out of the country rule
            differ = sum(
                client.is_enabled("rollout", {"userId": u, "country": c})
                is not ruleset.evaluate("rollout", {"user_id": u, "country": c}, False).value
                for u in USERS
                for c in ("SE", "US")
            )
            differ += not client.is_enabled("simple", {"userId": inside})
            out["unleash"] = {"version": _version("UnleashClient"), "engine": _version("yggdrasil-engine")}
            out["disagreements"] = differ
            cases.update(
                unleash_simple='unleash.is_enabled("simple", uctx_simple)',
                unleash_rollout='unleash.is_enabled("rollout", uctx_rollout)',
                engine_simple='engine.is_enabled("simple", ectx_simple)',
                engine_rollout='engine.is_enabled("rollout", ectx_rollout)',
            )
        out.update(best_ns(cases, ns, repeats, min_seconds))
    conveyor_flags.default_client().close()
    for flag in ("simple", "rollout"):
        if f"unleash_{flag}" in out:
            out[f"ratio_{flag}"] = {
                "feature_flag_vs_is_enabled": out[f"feature_flag_{flag}"]["ns"] / out[f"unleash_{flag}"]["ns"],
                "ruleset_vs_engine": out[f"ruleset_{flag}"]["ns"] / out[f"engine_{flag}"]["ns"],
            }
    return out


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


# --- the server -------------------------------------------------------------------------------


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


def make_repo(path: Path) -> None:
    """A service with three command-target environments (flags are per service environment)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    target = "{target: {kind: command, deploy: 'true'}}"
    envs = "".join(f"  {env}: {target}\n" for env in ("production", "staging", "development"))
    (path / "conveyor.yml").write_text(f"service: bench\nenvironments:\n{envs}")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")


# `conveyor server` (cli/server.py: the same app, settings and uvicorn call) plus one bare async route,
# POST /bench/bare, matched first: the same process, middleware and background threads as OFREP
SERVER_WITH_BARE_ENDPOINT = """\
import logging

import uvicorn
from starlette.responses import Response
from starlette.routing import Route

from conveyor.app import create_app
from conveyor.runtime import Runtime
from conveyor.settings import Settings
from conveyor.store.db import Database

BODY = b'{"key":"rollout","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{"version":1}}'


async def bare(request):
    await request.body()
    return Response(BODY, media_type="application/json")


settings = Settings()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(Runtime(settings=settings, db=Database(settings.app_database_url)))
app.router.routes.insert(0, Route("/bench/bare", bare, methods=["GET", "POST"]))
uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=5)
"""


class Server:
    """A `conveyor server` subprocess (one uvicorn worker, conveyor.devserver) with its own
    CONVEYOR_HOME and an admin token."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.database_url = f"sqlite:///{home / 'conveyor.db'}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: ServerProcess | None = None
        self.client = httpx.Client(base_url=self.url + "/api/v1", timeout=60)

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        token = make_token(self.database_url, "bench", ["admin", "release_manager"])
        self.client.headers["Authorization"] = f"Bearer {token}"
        # the benchmark's service checkout is next to HOME
        extra = {"CONVEYOR_SOURCE_LOCAL_ROOTS": str(self.home.parent)}
        env = server_env(self.home, self.database_url, self.port, poll_interval=0, extra=extra)
        launcher = self.home / "serve.py"
        launcher.write_text(SERVER_WITH_BARE_ENDPOINT)
        self.process = ServerProcess(self.port, env, self.home / "server.log", argv=[sys.executable, str(launcher)])
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
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}\n{self.log()}")
        return response.json()

    def setup(self, repo: Path) -> dict[str, str]:
        """The service, the flags of part 1 on in production, two poll flags, and SDK keys."""
        self.ok("POST", "/services", json={"source": str(repo)})
        for key in ("simple", "rollout", "propagation"):
            self.ok("POST", "/flags", json={"key": key})
        rollout = [{"constraints": [COUNTRY_RULE], "rollout": 30, "stickiness": "user_id", "group_id": "rollout"}]
        self.ok("PUT", "/flags/simple/environments/production", json={"enabled": True})
        self.ok("PUT", "/flags/rollout/environments/production", json={"enabled": True, "strategies": rollout})
        for env in ("production", "staging"):
            self.ok("PUT", f"/flags/propagation/environments/{env}", json={"enabled": True})
        for i in range(BULK_FLAGS - 3):  # bulk: flags of each kind, on, in production
            kind = ("boolean", "string", "number", "json")[i % 4]
            key = f"bulk_{i:02d}"
            self.ok("POST", "/flags", json={"key": key, "type": kind, **BULK_DEFAULTS[kind]})
            strategies = [{"constraints": [COUNTRY_RULE], "rollout": 10 * (i % 10)}] if i % 3 else []
            self.ok(
                "PUT", f"/flags/{key}/environments/production", json={"enabled": i % 5 != 4, "strategies": strategies}
            )
        return {
            env: self.ok("POST", "/flags/sdk-keys", json={"environment": env, "name": "bench"})["key"]
            for env in ("production", "staging")
        }

    def flip(self, flag: str, env: str, on: bool) -> tuple[float, float]:
        """Switch the flag on or kill it; the wall-clock times just before and after the call."""
        path = f"/flags/{flag}/environments/{env}/" + ("on" if on else "kill")
        sent = time.time()
        response = self.client.post(path, json=None if on else {"reason": "bench/flags.py"})
        returned = time.time()
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return sent, returned


def stop_agent(home: Path) -> None:
    """Defensive: command targets start no agent, but if one runs from this home, stop it."""
    path = home / "agent" / "agent.json"
    if not path.exists():
        return
    with contextlib.suppress(ProcessLookupError, ValueError, KeyError):
        os.kill(int(json.loads(path.read_text())["pid"]), signal.SIGTERM)


# --- part 2: OFREP throughput -----------------------------------------------------------------

WRK_DONE = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""
WRK_OFREP = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{key}"
local threads = 0
setup = function(thread)  -- the second thread starts halfway through the ids: no body twice at once
  thread:set("start", threads * math.floor({users} / 2))
  threads = threads + 1
end
local i = nil
request = function()
  i = ((i or start or 0) + 1) % {users}
  return wrk.format(nil, nil, nil, '{{"context":{{"targetingKey":"user-' .. i .. '","country":"SE"}}}}')
end
"""
BULK_DEFAULTS: dict[str, dict[str, Any]] = {
    "boolean": {},
    "string": {"default": "grey", "on_value": "blue"},
    "number": {"default": 1, "on_value": 2.5},
    "json": {"default": {"limit": 1}, "on_value": {"limit": 10}},
}
# the bare endpoint: one Starlette route under uvicorn with `conveyor server`'s settings, reading the
# same request and answering a body like OFREP's, with no middleware, no database and no evaluation
BARE_APP = """\
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"key":"rollout","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{"version":1}}'


async def bare(request):
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/bare", bare, methods=["GET", "POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", timeout_graceful_shutdown=5)
"""
RUNNING: set[subprocess.Popen[str]] = set()  # load generators and clients to kill on the way out


def load(
    tool: str, script: Path | None, url: str, seconds: float, connections: int, key: str | None, users: int = 1000
) -> dict[str, Any]:
    """One load run; wrk's summary (or the Python generator's, same shape)."""
    if tool == "wrk":
        cmd = ["wrk", "-t2", f"-c{connections}", f"-d{math.ceil(seconds)}s", "--timeout", "5s", "--latency"]
        cmd += ["-s", str(script), url]
    else:
        cmd = [sys.executable, __file__, "--loadgen-worker", url, "--connections", str(connections)]
        cmd += ["--seconds", str(seconds), "--users", str(users)] + (["--key", key] if key else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        RUNNING.discard(proc)
    line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"the load generator printed no summary (exit {proc.returncode}):\n{out[-2000:]}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    took = raw["duration_us"] / 1e6
    return {
        "seconds": round(took, 2),
        "requests": raw["requests"],
        "non_2xx": raw["status"],
        "socket_errors": {k: raw[k] for k in ("connect", "read", "write", "timeout")},
        "rps": round(raw["requests"] / took, 1) if took else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
    }


def ofrep_throughput(server: Server, key: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    check = httpx.post(
        server.url + "/ofrep/v1/evaluate/flags/rollout",
        headers={"X-API-Key": key},
        json={"context": {"targetingKey": "user-1", "country": "SE"}},
        timeout=30,
    )
    if check.status_code != 200 or check.json().get("reason") not in ("TARGETING_MATCH", "DEFAULT"):
        raise RuntimeError(f"OFREP answered {check.status_code} {check.text}")
    bulk_url = server.url + "/ofrep/v1/evaluate/flags"
    bulk_check = httpx.post(bulk_url, headers={"X-API-Key": key}, json={"context": {"targetingKey": "u"}}, timeout=30)
    flags = bulk_check.json().get("flags", []) if bulk_check.status_code == 200 else []
    if len(flags) != BULK_FLAGS or any("errorCode" in f for f in flags):
        raise RuntimeError(f"bulk OFREP answered {bulk_check.status_code} {bulk_check.text[:2000]}")
    ofrep_lua, health_lua = tmp / "ofrep.lua", tmp / "health.lua"
    ofrep_lua.write_text(WRK_OFREP.format(key=key, users=args.users) + WRK_DONE)
    health_lua.write_text(WRK_DONE)
    ofrep_url = server.url + "/ofrep/v1/evaluate/flags/rollout"
    health_url = server.url + "/api/v1/health"
    bare_py, bare_port = tmp / "bare_app.py", free_port()
    bare_py.write_text(BARE_APP)
    bare_url = f"http://127.0.0.1:{bare_port}/bare"
    bare = subprocess.Popen([sys.executable, str(bare_py), str(bare_port)], text=True)
    RUNNING.add(bare)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(bare_url, timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline or bare.poll() is not None:
                raise RuntimeError("the bare Starlette app did not start") from None
            time.sleep(0.1)
    runs: dict[str, list[dict[str, Any]]] = {"ofrep": [], "bulk": [], "bare": [], "starlette": [], "health": []}
    # interleaved rounds, so that a burst of load from elsewhere falls on every kind alike
    for round_ in range(1, args.rounds + 1):
        for name, lua, url, what in (
            ("bare", ofrep_lua, server.url + "/bench/bare", "POST /bench/bare (bare endpoint, same server)"),
            ("starlette", ofrep_lua, bare_url, "POST /bare (a bare Starlette app, its own process)"),
            ("health", health_lua, health_url, "GET /api/v1/health (the server's own health endpoint)"),
            ("ofrep", ofrep_lua, ofrep_url, "POST /ofrep/v1/evaluate/flags/rollout"),
            ("bulk", ofrep_lua, bulk_url, f"POST /ofrep/v1/evaluate/flags ({BULK_FLAGS} flags)"),
        ):
            print(f"  round {round_}/{args.rounds}: {args.seconds:g} s of {what} ...")
            runs[name].append(
                load(args.tool, lua, url, args.seconds, args.connections, key if name != "health" else None, args.users)
            )
    bare.terminate()
    bare.wait(timeout=30)
    RUNNING.discard(bare)
    best = {name: max(results, key=lambda x: x["rps"]) for name, results in runs.items()}

    def ratio(name: str, baseline: str) -> float | None:
        return round(best[name]["rps"] / best[baseline]["rps"], 3) if best[baseline]["rps"] else None

    return {
        "first_answer": check.json(),
        **best,
        "rounds": {name: [x["rps"] for x in results] for name, results in runs.items()},
        "ratio_rps": ratio("ofrep", "bare"),
        "bulk_ratio_rps": ratio("bulk", "bare"),
        "ratio_rps_starlette": ratio("ofrep", "starlette"),
        "ratio_rps_health": ratio("ofrep", "health"),
        "bulk_flag_evaluations_per_s": round(best["bulk"]["rps"] * BULK_FLAGS),
    }


def python_loadgen(url: str, connections: int, seconds: float, key: str | None, users: int = 1000) -> int:
    """The fallback load generator (run as a subprocess): keep-alive requests on N connections;
    POST with an OFREP body when ``key`` is given, else GET."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.rpartition(":")
    counts = {"requests": 0, "status": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0}
    latencies: list[float] = []
    turn = [0]

    def request() -> bytes:
        if key is None:
            return f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode()
        turn[0] = (turn[0] + 1) % users
        body = json.dumps({"context": {"targetingKey": f"user-{turn[0]}", "country": "SE"}}).encode()
        head = f"POST /{path} HTTP/1.1\r\nHost: {host_port}\r\nX-API-Key: {key}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    async def worker(stop: asyncio.Event) -> None:
        reader = writer = None
        while not stop.is_set():
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
                except (OSError, TimeoutError):
                    counts["connect"] += 1
                    await asyncio.sleep(0.01)
                    continue
            assert reader is not None
            t0 = time.perf_counter()
            try:
                writer.write(request())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                status = int(head[9:12])
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                await asyncio.wait_for(reader.readexactly(length), 5)
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
            counts["status"] += not 200 <= status < 300

    async def main() -> float:
        stop = asyncio.Event()
        started = time.perf_counter()
        tasks = [asyncio.create_task(worker(stop)) for _ in range(connections)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait(tasks, timeout=6)
        return time.perf_counter() - started

    took = asyncio.run(main())
    ordered = sorted(latencies) or [0.0]

    def pct_us(q: float) -> int:
        return int(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1e6)

    summary = {**counts, "duration_us": int(took * 1e6), "max_us": int(ordered[-1] * 1e6)}
    summary.update(p50_us=pct_us(50), p90_us=pct_us(90), p99_us=pct_us(99))
    print("WRKJSON " + json.dumps(summary), flush=True)
    return 0


# --- part 3: propagation ----------------------------------------------------------------------

# One SDK client process: prints "started" after its imports, waits DELAY s, creates the client,
# prints "ready V", then "seen V TIME VERSION" from on_change whenever the flag's value changes;
# exits when its stdin closes.
CLIENT = r"""
import sys, time
from conveyor_flags import Client
url, key, flag, mode, delay = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
print("started", flush=True)
time.sleep(delay)
client = Client(url, key, stream=(mode == "stream"), ready_timeout=30)
if not client.wait_until_ready(30):
    print("error no ruleset after 30 s", flush=True)
    sys.exit(1)
last = [None]

def changed(ruleset):
    seen = time.time()
    value = bool(ruleset.evaluate(flag, {}, None).value)
    if value != last[0]:
        last[0] = value
        print(f"seen {int(value)} {seen:.6f} {ruleset.version}", flush=True)

client.on_change(changed)
last[0] = bool(client.evaluate(flag, {}, None).value)
print(f"ready {int(last[0])}", flush=True)
sys.stdin.read()
client.close()
"""


class Fleet:
    """N client processes; their lines arrive on one queue as (index, words)."""

    def __init__(self, n: int, url: str, key: str, flag: str, mode: str, spread: float = 0.0) -> None:
        self.n, self.mode = n, mode
        self.lines: queue.Queue[tuple[int, list[str]]] = queue.Queue()
        self.backlog: list[tuple[int, list[str]]] = []  # lines read ahead by wait_for, in order
        self.procs: list[subprocess.Popen[str]] = []
        for i in range(n):
            delay = spread * i / n
            proc = subprocess.Popen(
                [sys.executable, "-c", CLIENT, url, key, flag, mode, f"{delay:.3f}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            RUNNING.add(proc)
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(i, proc), daemon=True).start()

    def _read(self, i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put((i, line.split()))
        self.lines.put((i, ["exited", str(proc.wait())]))

    def _next(self, deadline: float) -> tuple[int, list[str]] | None:
        if self.backlog:
            return self.backlog.pop(0)
        try:
            return self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def wait_for(self, word: str, timeout: float) -> dict[int, list[str]]:
        """The first line starting with ``word`` from every client (other lines stay for later);
        raise at the deadline."""
        got: dict[int, list[str]] = {}
        kept: list[tuple[int, list[str]]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(got) < self.n:
                item = self._next(deadline)
                if item is None:
                    missing = sorted(set(range(self.n)) - set(got))
                    raise RuntimeError(f"{self.mode} clients {missing} did not say {word!r} in {timeout:.0f} s")
                i, words = item
                if words and words[0] in ("error", "exited"):
                    raise RuntimeError(f"{self.mode} client {i}: {' '.join(words)}")
                if words and words[0] == word and i not in got:
                    got[i] = words
                else:
                    kept.append(item)
        finally:
            self.backlog[:0] = kept
        return got

    def see(self, value: bool, timeout: float) -> tuple[dict[int, float], list[int]]:
        """Each client's time of seeing ``value``; and who did not by the deadline."""
        seen: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < self.n and time.monotonic() < deadline:
            item = self._next(deadline)
            if item is None:
                break
            i, words = item
            if words[:2] == ["seen", str(int(value))]:
                seen[i] = float(words[2])
        return seen, sorted(set(range(self.n)) - set(seen))

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            RUNNING.discard(proc)


def flips(
    server: Server, fleet: Fleet, env: str, count: int, timeout: float, gap: tuple[float, float]
) -> dict[str, Any]:
    """``count`` flips (off, on, off, ...); per flip every client's latency after the call returned."""
    records = []
    for k in range(count):
        value = k % 2 == 1  # off first: the flag is on when this starts
        sent, returned = server.flip("propagation", env, value)
        seen, missed = fleet.see(value, timeout)
        records.append(
            {
                "to": "on" if value else "off",
                "api_ms": round((returned - sent) * 1000, 2),
                "after_return_ms": [round((seen[i] - returned) * 1000, 2) for i in sorted(seen)],
                "after_request_ms": [round((seen[i] - sent) * 1000, 2) for i in sorted(seen)],
                "missed": missed,
            }
        )
        if missed:  # the state must be in sync before the next flip means anything
            fleet.see(value, timeout)
        time.sleep(random.uniform(*gap))
    after = [v for r in records for v in r["after_return_ms"]]
    sent_ms = [v for r in records for v in r["after_request_ms"]]
    off = [v for r in records if r["to"] == "off" for v in r["after_return_ms"]]
    return {
        "clients": fleet.n,
        "flips": count,
        "observations": len(after),
        "expected_observations": count * fleet.n,
        "missed": sum(len(r["missed"]) for r in records),
        "after_return": summary([max(0.0, v) for v in after]),  # already seen when it returned: 0
        "after_return_signed": summary(after),
        "after_return_off_only": summary([max(0.0, v) for v in off]),
        "after_request": summary(sent_ms),
        "seen_before_return": sum(v < 0 for v in after),
        "api_call": summary([r["api_ms"] for r in records]),
        "per_flip": records,
    }


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min_ms": round(min(values), 2),
        "p50_ms": round(statistics.median(values), 2),
        "p90_ms": round(pct(values, 90) or 0, 2),
        "p99_ms": round(pct(values, 99) or 0, 2),
        "max_ms": round(max(values), 2),
        "mean_ms": round(statistics.fmean(values), 2),
    }


# --- report -----------------------------------------------------------------------------------


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


def print_local(r: dict[str, Any]) -> list[str]:
    print(
        f"\nlocal evaluation (ns per call, best of {r['repeats']} runs of >= {r['min_seconds_per_run']:g} s; "
        f"rollout user {r['rollout_user']!r}, country SE: inside the 30%)"
    )
    unleash = isinstance(r.get("unleash"), dict)
    print(f"  {'call':52}{'simple':>10}{'rollout':>10}")
    rows = [
        ("conveyor_flags Ruleset.evaluate", "ruleset"),
        ("conveyor_flags.feature_flag (default client)", "feature_flag"),
    ]
    if unleash:
        rows += [
            (f"UnleashClient {r['unleash']['version']} is_enabled (baseline)", "unleash"),
            (f"  its engine alone (yggdrasil-engine {r['unleash']['engine']})", "engine"),
        ]
    for label, key in rows:
        print(f"  {label:52}{r[key + '_simple']['ns']:>10.0f}{r[key + '_rollout']['ns']:>10.0f}")
    if unleash:
        for flag in ("simple", "rollout"):
            ratio = r[f"ratio_{flag}"]
            print(
                f"  {flag}: feature_flag / is_enabled = {ratio['feature_flag_vs_is_enabled']:.3f} "
                f"({1 / ratio['feature_flag_vs_is_enabled']:.0f}x faster); Ruleset.evaluate / engine = "
                f"{ratio['ruleset_vs_engine']:.3f}"
            )
        print(f"  answers compared on {len(USERS):,} ids x (SE, US): {r['disagreements']} disagreements")
    else:
        print(f"  baseline not measured: {r.get('unleash')}")
    missed = []
    worst = max(r["ruleset_simple"]["ns"], r["feature_flag_simple"]["ns"])
    verdict = "meets" if worst < TARGET_SIMPLE_NS else "MISSES"
    print(f"  target: simple flag {worst:.0f} ns per call {verdict} the {TARGET_SIMPLE_NS:.0f} ns target")
    if worst >= TARGET_SIMPLE_NS:
        missed.append(f"local evaluation of a simple flag {worst:.0f} ns >= {TARGET_SIMPLE_NS:.0f} ns")
    if unleash and r["disagreements"]:
        missed.append(f"{r['disagreements']} answers differ from UnleashClient's")
    return missed


def print_ofrep(r: dict[str, Any], describe: str) -> list[str]:
    print(f"\nOFREP on one server worker ({describe})")
    print(
        f"  {'request':44}{'secs':>6}{'requests':>10}{'non-2xx':>9}{'socket':>8}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
    )
    for label, key in (
        ("POST /ofrep/v1/evaluate/flags/rollout", "ofrep"),
        (f"POST /ofrep/v1/evaluate/flags ({BULK_FLAGS} flags)", "bulk"),
        ("POST /bench/bare (same server, baseline)", "bare"),
        ("POST /bare (bare Starlette app, own process)", "starlette"),
        ("GET /api/v1/health (same server)", "health"),
    ):
        x = r[key]
        print(
            f"  {label:44}{x['seconds']:>6.1f}{x['requests']:>10,}{x['non_2xx']:>9,}"
            f"{sum(x['socket_errors'].values()):>8,}"
            f"{x['rps']:>9,.0f}{x['p50_ms']:>8.2f}{x['p99_ms']:>8.2f}"
        )
    print(f"  best of {len(r['rounds']['ofrep'])} interleaved rounds each; every round's req/s: {r['rounds']}")
    print(f"  single evaluations/s over bare-endpoint requests/s: {r['ratio_rps']:.2f}")
    print(
        f"  bulk requests/s over bare-endpoint requests/s: {r['bulk_ratio_rps']:.2f} "
        f"({r['bulk_flag_evaluations_per_s']:,} flag evaluations/s)"
    )
    print(
        f"  single evaluations/s over a bare Starlette app's requests/s: {r['ratio_rps_starlette']:.2f}; "
        f"over the server's GET /api/v1/health: {r['ratio_rps_health']:.2f}"
    )
    missed = []
    if r["ofrep"]["rps"] < TARGET_OFREP_RPS:
        missed.append(f"OFREP single {r['ofrep']['rps']:,.0f}/s, target {TARGET_OFREP_RPS:,.0f}/s")
    if (r["ratio_rps"] or 0) < TARGET_OFREP_RATIO:
        missed.append(f"OFREP single/bare endpoint {r['ratio_rps']}, target {TARGET_OFREP_RATIO}")
    for key in ("ofrep", "bulk", "bare", "starlette", "health"):
        bad = r[key]["non_2xx"] + sum(r[key]["socket_errors"].values())
        if bad:
            missed.append(f"{key}: {bad} failed requests")
    return missed


def print_propagation(r: dict[str, Any]) -> list[str]:
    s = r["stream"]
    print(
        f"\npropagation: {s['clients']} SDK client processes, {s['flips']} flips (off/on), "
        f"{s['observations']}/{s['expected_observations']} observations, {s['missed']} missed"
    )
    print(f"  {'ms':46}{'min':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")

    def line(label: str, x: dict[str, Any]) -> None:
        if x.get("n"):
            print(
                f"  {label:46}{x['min_ms']:>9.1f}{x['p50_ms']:>9.1f}{x['p90_ms']:>9.1f}"
                f"{x['p99_ms']:>9.1f}{x['max_ms']:>9.1f}"
            )

    line("stream: API call returned -> client saw it", s["after_return"])
    line("  the same, switching off (kill) only", s["after_return_off_only"])
    line("  the same, signed (< 0: before it returned)", s["after_return_signed"])
    line("stream: API request sent -> client saw it", s["after_request"])
    line("the admin API call itself (request -> return)", s["api_call"])
    print(
        f"  {s['seen_before_return']} of {s['observations']} observations came before the API call returned "
        "(counted as 0 ms above): the server pushes the change before it answers"
    )
    b = r.get("poll")
    if b and "after_return" in b:
        line(f"baseline: polling every {r['poll_interval_s']:g} s, after return", b["after_return"])
        line("  the same, from the request being sent", b["after_request"])
        ratio = (
            f"; polling / stream, from the request being sent: p50 {r['ratio_p50']:,.0f}x, p99 {r['ratio_p99']:,.0f}x"
            if "ratio_p50" in r
            else ""
        )
        print(
            f"  baseline: {b['observations']}/{b['expected_observations']} observations over {b['flips']} flips, "
            f"{b['missed']} missed{ratio}"
        )
    else:
        print(
            f"  baseline not measured ({r.get('poll_skipped', '--baseline-flips 0')}); polling every "
            f"{r['poll_interval_s']:g} s (the SDK's default without the stream) would take "
            f"{r['poll_interval_s'] / 2:g} s on average, up to {r['poll_interval_s']:g} s; "
            "Unleash's SDKs poll every 15 s"
        )
    missed = []
    p99 = s["after_return"].get("p99_ms")
    verdict = "meets" if p99 is not None and p99 < TARGET_PROPAGATION_P99_MS else "MISSES"
    print(
        f"  target: p99 {p99} ms after the API call returned {verdict} the {TARGET_PROPAGATION_P99_MS:.0f} ms "
        f"target (from the request being sent: p99 {s['after_request'].get('p99_ms')} ms)"
    )
    if verdict == "MISSES":
        missed.append(f"propagation p99 {p99} ms >= {TARGET_PROPAGATION_P99_MS:.0f} ms")
    if s["missed"]:
        missed.append(f"{s['missed']} client observations missed (stream)")
    if b and b.get("missed"):
        missed.append(f"{b['missed']} client observations missed (polling baseline)")
    return missed


# --- main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a short smoke run (about 20 s, no polling baseline)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--seconds", type=float, help="seconds per OFREP load run (default 10; --quick 3)")
    p.add_argument("--connections", type=int, default=16, help="keep-alive connections of the load generator")
    p.add_argument(
        "--users", type=int, default=1000, help="targeting keys the OFREP requests cycle over (distinct bodies)"
    )
    p.add_argument("--rounds", type=int, help="interleaved OFREP/bulk/baseline load rounds (default 3; --quick 1)")
    p.add_argument("--only", choices=("all", "ofrep"), default="all", help="ofrep: part 2 alone")
    p.add_argument("--clients", type=int, default=20, help="SDK client processes (propagation)")
    p.add_argument("--flips", type=int, help="measured flips over the stream (default 20; --quick 4)")
    p.add_argument("--baseline-flips", type=int, help="flips seen by polling clients (default 2; --quick 0)")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server log)")
    p.add_argument("--loadgen-worker", help=argparse.SUPPRESS)
    p.add_argument("--key", help=argparse.SUPPRESS)
    args = p.parse_args()
    q = args.quick
    args.seconds = args.seconds or (3.0 if q else 10.0)
    args.flips = args.flips if args.flips is not None else (4 if q else 20)
    args.baseline_flips = args.baseline_flips if args.baseline_flips is not None else (0 if q else 2)
    args.rounds = args.rounds or (1 if q else 3)
    args.repeats = 3 if q else 7
    args.min_run = 0.05 if q else 0.2
    return args


class Done(Exception):
    """--only ofrep: the parts after OFREP are skipped."""


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="conveyor-bench-flags-"))
        print(f"  keeping {path}")
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="conveyor-bench-flags-") as name:
            yield Path(name)


def main() -> int:
    args = parse_args()
    if args.loadgen_worker:
        return python_loadgen(args.loadgen_worker, args.connections, args.seconds, args.key, args.users)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    logging.getLogger("UnleashClient").setLevel(logging.ERROR)
    args.tool = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")
    if args.tool == "wrk" and not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk), use --loadgen python", file=sys.stderr)
        return 2
    poll_interval = float(inspect.signature(Client).parameters["poll_interval"].default)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": " ".join([".venv/bin/python", "bench/flags.py", *sys.argv[1:]]),
        "targets": {"simple_flag_ns": TARGET_SIMPLE_NS, "propagation_p99_ms": TARGET_PROPAGATION_P99_MS},
    }
    m = report["machine"]
    print(
        f"Conveyor feature-flag benchmark · {report['date']} · {m['nproc']} cores, {m['memory_gib']} GiB · {m['cpu']}"
    )
    print(f"  load average at start {m['load_average_at_start']} (1/5/15 min)")
    if args.only == "all":
        print("  local evaluation (timeit) ...")
        report["local"] = local_evaluation(args.repeats, args.min_run)
    describe = (
        f"wrk -t2 -c{args.connections} --latency, keep-alive, {args.seconds:g} s each"
        if args.tool == "wrk"
        else f"python asyncio load generator, {args.connections} keep-alive connections, {args.seconds:g} s each"
    )
    report["ofrep_load"] = describe
    fleets: list[Fleet] = []
    with workspace(args.keep) as tmp:
        make_repo(tmp / "bench-service")
        server = Server(tmp / "home")
        try:
            server.start()
            keys = server.setup(tmp / "bench-service")
            poll = None
            if args.baseline_flips and args.only == "all":
                # started now so their starts spread over one poll interval while the rest runs
                print(f"  starting {args.clients} polling clients (starts spread over {poll_interval:g} s) ...")
                poll = Fleet(args.clients, server.url, keys["staging"], "propagation", "poll", spread=poll_interval)
                fleets.append(poll)
                poll.wait_for("started", 120)  # their imports are done: they do not load the OFREP runs
            report["ofrep"] = ofrep_throughput(server, keys["production"], args, tmp)
            if args.only == "ofrep":
                raise Done
            print(f"  propagation: {args.clients} stream clients, {args.flips} flips ...")
            stream = Fleet(args.clients, server.url, keys["production"], "propagation", "stream")
            fleets.append(stream)
            stream.wait_for("ready", 120)
            for value in (False, True):  # unmeasured: every stream is up once all saw both
                server.flip("propagation", "production", value)
                _seen, missed = stream.see(value, 30)
                if missed:
                    raise RuntimeError(f"stream clients {missed} did not see the warm-up flip in 30 s")
            time.sleep(0.5)
            prop: dict[str, Any] = {"poll_interval_s": poll_interval}
            prop["stream"] = flips(server, stream, "production", args.flips, 10, (0.2, 0.5))
            stream.close()
            if poll is not None:
                poll.wait_for("ready", poll_interval + 60)
                print(f"  polling baseline: {args.baseline_flips} flips, up to {poll_interval:g} s each ...")
                prop["poll"] = flips(server, poll, "staging", args.baseline_flips, poll_interval + 15, (0.0, 3.0))
                # from the request being sent: the stream's figures after the return are mostly 0
                stream_sent, poll_sent = prop["stream"]["after_request"], prop["poll"]["after_request"]
                if stream_sent.get("p50_ms") and poll_sent.get("p50_ms"):
                    prop["ratio_p50"] = poll_sent["p50_ms"] / stream_sent["p50_ms"]
                    prop["ratio_p99"] = poll_sent["p99_ms"] / stream_sent["p99_ms"]
            else:
                prop["poll_skipped"] = "--baseline-flips 0" + (" (--quick)" if args.quick else "")
            report["propagation"] = prop
        except Done:
            pass
        finally:
            for fleet in fleets:
                fleet.close()
            for proc in list(RUNNING):
                proc.kill()
                proc.wait()
            server.stop()
            stop_agent(server.home)
    report["load_average_at_end"] = loadavg()
    print(f"  load average at end {report['load_average_at_end']} (1/5/15 min)")
    missed = print_local(report["local"]) if "local" in report else []
    missed += print_ofrep(report["ofrep"], describe)
    missed += print_propagation(report["propagation"]) if "propagation" in report else []
    report["targets_missed"] = missed
    for line in missed:
        print(f"MISSED: {line}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"JSON written to {args.json}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

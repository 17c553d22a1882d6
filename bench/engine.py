"""Engine orchestration overhead: deployments whose steps do (almost) nothing, through a real
`conveyor server` subprocess, on SQLite and on PostgreSQL.

    .venv/bin/python bench/engine.py [--deployments 200] [--environments 4] [--sequential 50]
                                     [--backends sqlite,postgres] [--git-count 5] [--json out.json]

Two scenarios per backend, on one service whose environments run
``steps: [prepare, tag, rollout, announce]`` with a ``command`` target whose deploy is ``true``,
no build, no migrate, no smoke, and ``tag: {bump: patch}``:

* parallel: ``--deployments`` requests spread round-robin over ``--environments`` environments,
  all requested at once (one deployment per environment runs at a time, environments in
  parallel); every request deploys the same commit, so after the first the tag step reuses its tag.
* sequential: ``--sequential`` deployments to one more environment, one at a time (request, wait
  until finished, next); each deploys a new commit, so every tag step creates a tag.

Per-step figures come from the step journal (GET /api/v1/deployments/{id}): a step's duration is
started_at -> finished_at; the gap is the time between one step's end and the next one's start
(the DBOS checkpoint and the loading of the next step's context); "with gap" is both together.

Baseline, measured in the same run: the bare work of each step without the engine, run
in-process, one after another, on a clone of the same repository: prepare = GitRepo.add_worktree;
tag = the tag step's git calls (find the tag on the commit, else list tags and create the next);
rollout = subprocess.run(["true"]); announce = nothing; and after each step one transaction that
updates a journal row in a database of the same kind (SQLite file / PostgreSQL). The ratio is the
engine's per-step time (with gap) over the baseline's per-step time.

DBOS floor, measured in the same run: a minimal DBOS app in a child process (the same dbos, a
system database of the same kind -- SQLite in WAL mode / a fresh PostgreSQL database -- and a
queue registered as Conveyor's: partition_concurrency=1) runs ``--sequential`` workflows of 4
no-op steps one after another (enqueue, wait for the result, next). Its per-step time with the
gap is one step's end to the next one's end (the checkpoint of the first, the call of the second),
as for Conveyor. Conveyor is compared with it like for like: its per-step orchestration cost
(each step's median incl. gap minus the median of its bare work, averaged over the 4 steps) and
its ``announce`` step (no work) incl. its gap, each over the floor; the target is at most 3x on
SQLite, sequential.

Git processes per deployment (``--git-count``, 0 = off): after the timed runs, a separate SQLite
server whose PATH starts with a ``git`` that logs its arguments and runs the real one deploys that
many new commits to one environment, one at a time; each deployment's git processes (request to
end) are counted by subcommand. It is not timed (the logging wrapper costs a shell per call).

PostgreSQL: CONVEYOR_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres) must let us
create a database; a fresh one is made and dropped. Unreachable: the backend is skipped, said so.
Exit status 1 when any deployment did not succeed (their reasons are printed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from conveyor.devserver import ServerProcess, free_port, make_token, server_env
from conveyor.domain.versions import next_version
from conveyor.store.db import make_engine
from conveyor.vcs.git import GitRepo

PG_ADMIN_URL = os.environ.get("CONVEYOR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
STEPS = ["prepare", "tag", "rollout", "announce"]
COMMAND_STEPS = {"rollout"}  # the only step here that spawns a process (the deploy command `true`)
FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}
TARGET_MEDIAN_MS = 25.0
TARGET_FLOOR_RATIO = 3.0  # Conveyor's per-step orchestration over the DBOS floor
TARGET_START_MS = 20.0  # sequential request -> start, median
FLOOR_STEPS = 4


# --- statistics ----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 2) if values else None,
        "p95_ms": round(pct(values, 95) or 0, 2) if values else None,
        "mean_ms": round(statistics.fmean(values), 2) if values else None,
    }


def ms(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() * 1000


# --- the service repository ----------------------------------------------------------------


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


def service_config(lanes: list[str]) -> str:
    env = "{target: {kind: command, deploy: 'true'}, tag: {bump: patch}, steps: [prepare, tag, rollout, announce]}"
    lines = ["service: bench", "environments:"] + [f"  {lane}: {env}" for lane in [*lanes, "solo"]]
    return "\n".join(lines) + "\n"


def make_repo(path: Path, lanes: list[str], commits: int) -> tuple[str, list[str]]:
    """The service repository: the first commit (deployed by the parallel scenario) and
    ``commits`` newer ones (one per sequential deployment)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "conveyor.yml").write_text(service_config(lanes))
    (path / "app.txt").write_text("bench\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    first = git(path, "rev-parse", "HEAD")
    newer = []
    for i in range(commits):
        git(path, "commit", "-q", "--allow-empty", "-m", f"change {i + 1}")
        newer.append(git(path, "rev-parse", "HEAD"))
    return first, newer


# --- databases -----------------------------------------------------------------------------


def pg_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True):
            return None
    except Exception as exc:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'home' / 'conveyor.db'}"
        return
    import psycopg

    name = f"conveyor_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


# --- the server ----------------------------------------------------------------------------


class Server:
    """A `conveyor server` subprocess (conveyor.devserver) with its own CONVEYOR_HOME and an admin token."""

    def __init__(self, home: Path, database_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.home, self.database_url, self.port = home, database_url, free_port()
        self.extra_env = extra_env or {}
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: ServerProcess | None = None
        self.client = httpx.Client(base_url=self.url + "/api/v1", timeout=60)

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        token = make_token(self.database_url, "bench", ["admin", "release_manager"])
        self.client.headers["Authorization"] = f"Bearer {token}"
        # the benchmark's service checkout is next to HOME
        extra = {"CONVEYOR_SOURCE_LOCAL_ROOTS": str(self.home.parent), **self.extra_env}
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
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}\n{self.log()}")
        return response.json()

    def deploy(self, environment: str, sha: str) -> str:
        return str(self.ok("POST", "/deployments", json={"environment": environment, "ref": sha})["id"])

    def detail(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("GET", f"/deployments/{deployment_id}")
        return result


# --- scenarios -----------------------------------------------------------------------------


def run_parallel(server: Server, lanes: list[str], sha: str, count: int, timeout: float) -> dict[str, Any]:
    start = time.monotonic()
    ids = [server.deploy(lanes[i % len(lanes)], sha) for i in range(count)]
    posted = time.monotonic() - start
    pending = set(ids)
    deadline = start + timeout
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} of {count} deployments unfinished after {timeout:.0f} s")
        rows = server.ok("GET", "/deployments", params={"limit": 1000})
        pending -= {d["id"] for d in rows if d["state"] in FINISHED}
        if pending:
            time.sleep(0.1)
    wall = time.monotonic() - start
    return {"wall_s": wall, "post_s": posted, "details": [server.detail(i) for i in ids]}


def run_sequential(server: Server, shas: list[str], timeout: float) -> dict[str, Any]:
    start = time.monotonic()
    details = []
    for sha in shas:
        deployment_id = server.deploy("solo", sha)
        deadline = time.monotonic() + timeout
        while True:
            d = server.detail(deployment_id)
            if d["state"] in FINISHED:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"deployment {deployment_id} unfinished after {timeout:.0f} s")
            time.sleep(0.02)
        details.append(d)
    return {"wall_s": time.monotonic() - start, "details": details}


def analyse(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-step durations, gaps and latencies from the step journals."""
    states: dict[str, int] = {}
    duration: dict[str, list[float]] = {name: [] for name in STEPS}
    with_gap: dict[str, list[float]] = {name: [] for name in STEPS}
    gaps: list[float] = []
    begin_gap, finish_gap, to_start, orchestration, engine_ms = [], [], [], [], []
    failures: dict[str, int] = {}
    for d in sorted(details, key=lambda d: d["seq"]):
        states[d["state"]] = states.get(d["state"], 0) + 1
        if d["state"] != "succeeded":
            failures[d["reason"]] = failures.get(d["reason"], 0) + 1
            continue
        to_start.append(ms(d["created_at"], d["started_at"]))
        engine_ms.append(ms(d["started_at"], d["finished_at"]))
        previous_end = d["started_at"]
        body = 0.0
        for s in d["steps"]:
            took = ms(s["started_at"], s["finished_at"])
            gap = ms(previous_end, s["started_at"])
            duration[s["name"]].append(took)
            with_gap[s["name"]].append(took + gap)
            (begin_gap if previous_end == d["started_at"] else gaps).append(gap)
            previous_end = s["finished_at"]
            body += took
        finish_gap.append(ms(previous_end, d["finished_at"]))
        orchestration.append(engine_ms[-1] - body)
    every = [v for name in STEPS for v in duration[name]]
    every_gap = [v for name in STEPS for v in with_gap[name]]
    return {
        "states": states,
        "failures": failures,
        "step": summary(every),
        "step_with_gap": summary(every_gap),
        "no_command_step": summary([v for n in STEPS if n not in COMMAND_STEPS for v in duration[n]]),
        "command_step": summary([v for n in COMMAND_STEPS for v in duration[n]]),
        "by_step": {n: summary(duration[n]) for n in STEPS},
        "by_step_with_gap": {n: summary(with_gap[n]) for n in STEPS},
        "drift": {n: drift(duration[n]) for n in STEPS},
        "gap_between_steps": summary(gaps),
        "gap_begin_to_first_step": summary(begin_gap),
        "gap_last_step_to_finish": summary(finish_gap),
        "orchestration_per_deployment": summary(orchestration),
        "engine_per_deployment": summary(engine_ms),
        "request_to_start": summary(to_start),
    }


def drift(values: list[float]) -> dict[str, Any] | None:
    """Median of the first and of the last fifth (in request order): does a step slow down?"""
    k = len(values) // 5
    if k < 3:
        return None
    return {"first_ms": round(statistics.median(values[:k]), 2), "last_ms": round(statistics.median(values[-k:]), 2)}


# --- baseline ------------------------------------------------------------------------------


def baseline(repo: Path, work: Path, database_url: str, shas: list[str]) -> dict[str, Any]:
    """The bare work of each step, run directly (see the module docstring), one deployment per sha."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_journal"))
        conn.execute(text("CREATE TABLE bench_journal (id INTEGER PRIMARY KEY, state VARCHAR(16), at VARCHAR(40))"))
        conn.execute(text("INSERT INTO bench_journal (id, state, at) VALUES (1, 'pending', '')"))
    git_repo = GitRepo(repo)

    def journal(state: str) -> None:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE bench_journal SET state = :s, at = :at WHERE id = 1"),
                {"s": state, "at": datetime.now(UTC).isoformat()},
            )

    def tag(sha: str) -> None:
        if git_repo.version_tag_at(sha) is None:
            versions = [v for v, _tag, _sha in git_repo.version_tags()]
            name = next_version(versions, "patch").tag("v")
            git_repo.create_tag(name, sha, f"bench {name}")
            git_repo.push_tag(name)  # no origin: one git call, as for the service itself

    bodies: dict[str, Callable[[int, str], object]] = {
        "prepare": lambda i, sha: git_repo.add_worktree(work / f"wt-{i}", sha),
        "tag": lambda _i, sha: tag(sha),
        "rollout": lambda _i, _sha: subprocess.run(["true"], check=True),
        "announce": lambda i, sha: f"Deployment complete: bench {sha[:12]} #{i}",
    }
    took: dict[str, list[float]] = {name: [] for name in STEPS}
    for i, sha in enumerate(shas):
        for name in STEPS:
            t0 = time.perf_counter()
            bodies[name](i, sha)
            journal(name)
            took[name].append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    return {
        "step": summary([v for n in STEPS for v in took[n]]),
        "by_step": {n: summary(took[n]) for n in STEPS},
    }


def compare(result: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Engine per-step time (with the gap before it) against the bare work: difference and ratio."""

    def one(engine: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
        e, b = engine["median_ms"], bare["median_ms"]
        if e is None or b is None:
            return {}
        return {"engine_ms": e, "bare_ms": b, "overhead_ms": round(e - b, 2), "ratio": round(e / b, 2) if b else None}

    return {
        "all": one(result["step_with_gap"], base["step"]),
        **{n: one(result["by_step_with_gap"][n], base["by_step"][n]) for n in STEPS},
    }


# --- DBOS floor ----------------------------------------------------------------------------


def floor_child(url: str, count: int) -> dict[str, Any]:
    """In a child process of its own: a bare DBOS app whose workflow runs FLOOR_STEPS no-op steps,
    ``count`` workflows one after another through a queue registered as Conveyor's."""
    from dbos import DBOS, DBOSConfig, SetEnqueueOptions, SetWorkflowID

    marks: dict[str, list[float]] = {}

    @DBOS.step()
    def noop(workflow_id: str, name: str) -> dict[str, Any]:
        marks[workflow_id].append(time.perf_counter())  # the step's end, as the journal's finished_at
        return {"ok": True, "message": name, "cancelled": False}

    @DBOS.workflow()
    def floor_workflow(workflow_id: str) -> str:
        marks[workflow_id] = [time.perf_counter()]
        for i in range(FLOOR_STEPS):
            noop(workflow_id, f"step{i + 1}")
        return "succeeded"

    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # as conveyor.runtime does for its own
    config: DBOSConfig = {
        "name": "bench-floor",
        "system_database_url": url.replace("postgresql://", "postgresql+psycopg://", 1),
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue("deploys", partition_concurrency=1, polling_interval_sec=0.1)
    with_gap: list[float] = []
    workflow_ms: list[float] = []
    try:
        for i in range(count):
            workflow_id = f"floor-{i}-{uuid.uuid4().hex[:8]}"
            with SetWorkflowID(workflow_id), SetEnqueueOptions(queue_partition_key="bench/solo", priority=i + 1):
                handle = DBOS.enqueue_workflow("deploys", floor_workflow, workflow_id)
            assert handle.get_result() == "succeeded"
            m = marks[workflow_id]
            # a step's end to the next one's end: the first step has no step before it
            with_gap += [(m[k] - m[k - 1]) * 1000 for k in range(2, len(m))]
            workflow_ms.append((m[-1] - m[0]) * 1000)
    finally:
        DBOS.destroy()
    return {"workflows": count, "step_with_gap": summary(with_gap), "workflow_body": summary(workflow_ms)}


def dbos_floor(backend: str, tmp: Path, count: int) -> dict[str, Any]:
    """The DBOS floor (see the module docstring), in a child process, on a fresh database."""
    with database(backend, tmp) if backend == "postgres" else _sqlite_floor(tmp) as url:
        out = subprocess.run(
            [sys.executable, __file__, "--dbos-floor-child", url, str(count)],
            capture_output=True,
            text=True,
            timeout=max(120, count * 2),
        )
    if out.returncode != 0:
        raise RuntimeError(f"the DBOS floor failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def _sqlite_floor(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'dbos-floor.db'}"


def versus_floor(stats: dict[str, Any], base: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """Conveyor's per-step orchestration cost against the DBOS floor: each step's median incl. its
    gap minus the median of its bare work, averaged over the steps; and the announce step (no work)
    incl. its gap."""
    f = floor["step_with_gap"]["median_ms"]
    by_step = {n: c.get("overhead_ms") for n, c in compare(stats, base).items() if n != "all"}
    known = [v for v in by_step.values() if v is not None]
    overhead = round(statistics.fmean(known), 2) if known else None  # the steps' mean
    announce = stats["by_step_with_gap"]["announce"]["median_ms"]

    def ratio(v: float | None) -> float | None:
        return round(v / f, 2) if v is not None and f else None

    return {
        "floor_ms": f,
        "overhead_ms": overhead,
        "overhead_ratio": ratio(overhead),
        "overhead_by_step_ms": by_step,
        "announce_ms": announce,
        "announce_ratio": ratio(announce),
    }


# --- one backend ---------------------------------------------------------------------------


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    lanes = [f"lane{i + 1}" for i in range(args.environments)]
    with tempfile.TemporaryDirectory(prefix=f"conveyor-bench-{backend}-") as tmp_name:
        tmp = Path(tmp_name)
        first, newer = make_repo(tmp / "bench-service", lanes, args.sequential)
        clone = tmp / "baseline-clone"
        git(tmp, "clone", "-q", str(tmp / "bench-service"), str(clone))
        git(clone, "remote", "remove", "origin")
        with database(backend, tmp) as url:
            server = Server(tmp / "home", url)
            server.start()
            try:
                server.ok("POST", "/services", json={"source": str(tmp / "bench-service")})
                print(f"  {backend}: parallel, {args.deployments} deployments over {len(lanes)} environments ...")
                par = run_parallel(server, lanes, first, args.deployments, timeout=max(180, args.deployments * 3))
                print(f"  {backend}: sequential, {args.sequential} deployments to one environment ...")
                seq = run_sequential(server, newer, timeout=60)
            finally:
                server.stop()
            print(f"  {backend}: baseline (bare step work, in-process) ...")
            base_url = url if backend == "postgres" else f"sqlite:///{tmp / 'baseline.db'}"
            base_par = baseline(clone, tmp / "baseline-worktrees", base_url, [first] * args.deployments)
            base_seq = baseline(clone, tmp / "baseline-worktrees-seq", base_url, newer)
        print(f"  {backend}: DBOS floor, {args.sequential} workflows of {FLOOR_STEPS} no-op steps ...")
        floor = dbos_floor(backend, tmp, args.sequential)
    scenarios = {}
    for key, raw, base, n_env in (("parallel", par, base_par, len(lanes)), ("sequential", seq, base_seq, 1)):
        stats = analyse(raw["details"])
        count = len(raw["details"])
        scenarios[key] = {
            "deployments": count,
            "environments": n_env,
            "wall_s": round(raw["wall_s"], 2),
            "deployments_per_minute": round(count / raw["wall_s"] * 60, 1),
            **({"requesting_s": round(raw["post_s"], 2)} if "post_s" in raw else {}),
            **stats,
            "baseline": base,
            "versus_baseline": compare(stats, base),
            "versus_floor": versus_floor(stats, base, floor),
        }
    return {"scenarios": scenarios, "dbos_floor": floor}


# --- git processes per deployment ----------------------------------------------------------

GIT_SHIM = """#!/bin/sh
printf '%s\\037' "$@" >> {log}
printf '\\n' >> {log}
exec {real} "$@"
"""


def git_subcommand(args: list[str]) -> str:
    """``rev-parse --verify`` from ``-c core.quotepath=off -C REPO rev-parse --verify ...``."""
    while len(args) >= 2 and args[0] in ("-c", "-C"):
        args = args[2:]
    if not args:
        return "?"
    if len(args) > 1 and (args[0] == "worktree" or (args[1].startswith("--") and "=" not in args[1])):
        return f"{args[0]} {args[1]}"
    return args[0]


def count_git(count: int) -> dict[str, Any]:
    """Git processes per sequential deployment (request to end), by subcommand, on SQLite."""
    real = shutil.which("git")
    assert real is not None
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-git-") as tmp_name:
        tmp = Path(tmp_name)
        _first, newer = make_repo(tmp / "bench-service", [], count + 1)
        shim_dir, log = tmp / "shim", tmp / "git-calls.log"
        shim_dir.mkdir()
        (shim_dir / "git").write_text(GIT_SHIM.format(log=log, real=real))
        (shim_dir / "git").chmod(0o755)
        log.touch()
        path = f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        server = Server(tmp / "home", f"sqlite:///{tmp / 'conveyor.db'}", {"PATH": path})
        server.start()
        per: list[dict[str, int]] = []
        try:
            server.ok("POST", "/services", json={"source": str(tmp / "bench-service")})
            run_sequential(server, newer[:1], timeout=60)  # the first: no release serves yet
            for sha in newer[1:]:
                seen = len(log.read_text().splitlines())
                run_sequential(server, [sha], timeout=60)
                by: dict[str, int] = {}
                for line in log.read_text().splitlines()[seen:]:
                    name = git_subcommand(line.rstrip("\x1f").split("\x1f"))
                    by[name] = by.get(name, 0) + 1
                per.append(by)
        finally:
            server.stop()
    totals = [sum(by.values()) for by in per]
    names = sorted({n for by in per for n in by})
    return {
        "deployments": len(per),
        "median": statistics.median(totals) if totals else None,
        "max": max(totals, default=None),
        "by_subcommand_median": {n: statistics.median([by.get(n, 0) for by in per]) for n in names},
    }


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
        "cores": int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
        "load_average_at_start": loadavg(),
    }


def loadavg() -> str:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:.1f}{unit}"


def print_scenario(backend: str, key: str, s: dict[str, Any]) -> None:
    how = (
        f"{s['deployments']} deployments over {s['environments']} environments, all requested at once"
        if key == "parallel"
        else f"{s['deployments']} deployments to one environment, one at a time"
    )
    print(f"\n{backend} · {key}: {how}")
    bad = {k: v for k, v in s["states"].items() if k != "succeeded"}
    print(
        f"  wall {s['wall_s']:.1f} s · {s['deployments_per_minute']:.0f} deployments/min"
        + (f" · NOT SUCCEEDED: {bad}" if bad else "")
    )
    for reason, count in s["failures"].items():
        print(f"  {count} x {reason}")
    rows = [
        ("step duration (journal)", s["step"]),
        ("  steps with no command", s["no_command_step"]),
        ("  steps running `true`", s["command_step"]),
        ("step incl. gap before it", s["step_with_gap"]),
        ("gap between steps", s["gap_between_steps"]),
        ("gap start -> first step", s["gap_begin_to_first_step"]),
        ("gap last step -> finish", s["gap_last_step_to_finish"]),
        ("engine time / deployment", s["engine_per_deployment"]),
        ("  of which not in a step", s["orchestration_per_deployment"]),
        ("request -> start" + (" (backlog)" if key == "parallel" else ""), s["request_to_start"]),
    ]
    print(f"  {'':28}{'median':>9}{'p95':>9}")
    for label, r in rows:
        print(f"  {label:28}{fmt(r['median_ms']):>9}{fmt(r['p95_ms']):>9}  ms")
    print(
        f"  {'step':10}{'med':>7}{'p95':>7}{'+gap':>7}{'bare':>7}{'extra':>7}{'ratio':>7}"
        f"{'first':>7}{'last':>7}   (ms; bare = baseline; first/last = median of first/last fifth)"
    )
    vs = s["versus_baseline"]
    for name in STEPS:
        d, g, c, dr = s["by_step"][name], s["by_step_with_gap"][name], vs[name], s["drift"][name] or {}
        print(
            f"  {name + ('*' if name in COMMAND_STEPS else ''):10}{fmt(d['median_ms']):>7}{fmt(d['p95_ms']):>7}"
            f"{fmt(g['median_ms']):>7}{fmt(c.get('bare_ms')):>7}{fmt(c.get('overhead_ms')):>7}"
            f"{fmt(c.get('ratio'), 'x'):>7}{fmt(dr.get('first_ms')):>7}{fmt(dr.get('last_ms')):>7}"
        )
    a = vs["all"]
    print(
        f"  all steps: {fmt(a.get('engine_ms'))} ms with gap vs {fmt(a.get('bare_ms'))} ms bare work: "
        f"orchestration adds {fmt(a.get('overhead_ms'))} ms per step (ratio {fmt(a.get('ratio'), 'x')})"
    )
    print("  * runs a process (the deploy command `true`) through the durable runner")
    f = s["versus_floor"]
    print(
        f"  DBOS floor (no-op step incl. gap) {fmt(f['floor_ms'])} ms: orchestration per step "
        f"{fmt(f['overhead_ms'])} ms = {fmt(f['overhead_ratio'], 'x')}; announce incl. gap "
        f"{fmt(f['announce_ms'])} ms = {fmt(f['announce_ratio'], 'x')} the floor"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--deployments", type=int, default=200, help="deployments in the parallel scenario")
    parser.add_argument("--environments", type=int, default=4, help="environments they are spread over")
    parser.add_argument("--sequential", type=int, default=50, help="deployments in the one-environment scenario")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--git-count", type=int, default=5, help="deployments whose git processes are counted")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--dbos-floor-child", nargs=2, metavar=("URL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dbos_floor_child:
        print(json.dumps(floor_child(args.dbos_floor_child[0], int(args.dbos_floor_child[1]))))
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown or not backends:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown)) or '(none)'}; use sqlite and/or postgres")
    if shutil.which("git") is None:
        print("git is needed on PATH", file=sys.stderr)
        return 1

    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": " ".join([".venv/bin/python", "bench/engine.py", *sys.argv[1:]]),
        "target_median_ms": TARGET_MEDIAN_MS,
        "backends": {},
        "skipped": {},
    }
    m = report["machine"]
    print(f"Conveyor engine benchmark · {report['date']} · {m['cores']} cores, {m['memory_gib']} GiB · {m['cpu']}")
    print(f"  load average at start {m['load_average_at_start']} (1/5/15 min)")
    for backend in backends:
        if backend == "postgres" and (problem := pg_problem()):
            print(f"  postgres: not reachable at {PG_ADMIN_URL} ({problem}); skipping PostgreSQL")
            report["skipped"]["postgres"] = problem
            continue
        report["backends"][backend] = run_backend(backend, args)

    if args.git_count > 0:
        print(f"  git processes: {args.git_count} deployments through a counting git ...")
        report["git_per_deployment"] = count_git(args.git_count)
    report["load_average_at_end"] = loadavg()
    print(f"  load average at end {report['load_average_at_end']} (1/5/15 min)")
    for backend, result in report["backends"].items():
        for key, s in result["scenarios"].items():
            print_scenario(backend, key, s)
    print(
        "\nbaseline: the same steps' bare work run in-process without the engine -- prepare = git worktree add,"
        "\ntag = the tag step's git calls, rollout = subprocess.run(['true']), announce = nothing -- each followed"
        "\nby one journal-row UPDATE transaction in a database of the same kind."
    )
    if "git_per_deployment" in report:
        g = report["git_per_deployment"]
        by = ", ".join(f"{n} {v:g}" for n, v in g["by_subcommand_median"].items())
        print(f"\ngit processes per deployment (sequential, new commit each): median {g['median']:g}, max {g['max']}")
        print(f"  by subcommand (median): {by}")
    if "sqlite" in report["backends"]:
        seq = report["backends"]["sqlite"]["scenarios"]["sequential"]
        median = seq["step"]["median_ms"]
        verdict = "meets" if median is not None and median < TARGET_MEDIAN_MS else "MISSES"
        gap = seq["step_with_gap"]["median_ms"]
        print(
            f"target: median step on SQLite (sequential, journal) {fmt(median)} ms {verdict} the "
            f"{TARGET_MEDIAN_MS:.0f} ms target; with the gap before each step {fmt(gap)} ms"
        )
    for backend, result in report["backends"].items():
        seq = result["scenarios"]["sequential"]
        f, start = seq["versus_floor"], seq["request_to_start"]["median_ms"]
        within = all(r is not None and r <= TARGET_FLOOR_RATIO for r in (f["overhead_ratio"], f["announce_ratio"]))
        print(
            f"target ({backend}, sequential): orchestration per step {fmt(f['overhead_ratio'], 'x')} and announce "
            f"{fmt(f['announce_ratio'], 'x')} the DBOS floor ({fmt(f['floor_ms'])} ms): "
            f"{'within' if within else 'NOT within'} {TARGET_FLOOR_RATIO:g}x; request -> start median "
            f"{fmt(start)} ms {'meets' if start is not None and start < TARGET_START_MS else 'MISSES'} "
            f"the {TARGET_START_MS:g} ms target"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    failed = any(
        k != "succeeded" for r in report["backends"].values() for s in r["scenarios"].values() for k in s["states"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

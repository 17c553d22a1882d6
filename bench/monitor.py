"""Monitoring after a deploy: how fast a bad release is rolled back, and how often a good one is.

    .venv/bin/python bench/monitor.py [--runs 5] [--clean 20] [--rate 200] [--interval 5]
                                      [--detect-for 60] [--clean-for 20] [--min-requests 100]
                                      [--json FILE] [--keep]

A real `conveyor server` subprocess (its own CONVEYOR_HOME, SQLite, CONVEYOR_POLL_INTERVAL=0)
deploys a service made of examples/demo-app to two environments on the local target
(`replicas: 2`, built-in router, `rollout: {strategy: blue_green}`, `quick_rollback: 15m`,
`tag: {bump: patch}`), both with `monitor: {interval: 5s, min_requests: 100,
rollback_if: {error_rate: "> 2%"}}`: `detect` watches for 60 s, `clean` for 20 s. Every deploy is
requested through POST /api/v1/deployments by the commit's SHA.

Load: one client thread per environment sends GET /version through the environment's router on
one keep-alive connection, paced at --rate requests/s (0: as fast as it goes), for the whole phase,
and records (sent, received, status, version) of every answer. The demo app answers 500 without
a version; every 200 names the release that answered it.

1. Detection time, --runs times. A new commit adds `ERROR_RATE` = 0.1 (the demo app answers that
   share of requests with 500, as in tests/e2e/test_monitoring.py) and is deployed. Detection time
   = from the first 500 the load client receives to the first answer after which every answer is
   a 200 from the previous release (its version), as the load client sees it. The deployment's own
   times (monitoring started, the breaching interval's end, finished) are shown against the same
   first 500.
2. Baseline, in the same run, alternating with (1): the same bad deploy, but a person rolls it back
   with POST /deployments/{id}/monitoring/rollback ("roll back now") at the first moment possible:
   as soon as the load client has seen a 500 and the deployment is in `monitoring`. That is the
   same warm rollback path with a reaction time of zero, so detection / baseline is what waiting
   for evidence costs. Detection / interval is shown too (the judgement can act at the end of
   the first interval at the earliest).
3. False rollbacks, --clean deploys of a healthy new commit each (a `notes.txt` change) to `clean`
   under the same load: how many were rolled back (target 0) and how many ended "not enough
   traffic to judge".

Exit status 1 when a target is missed: a detection of 15 s or more (or none), a false rollback, a
clean deploy that did not succeed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
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

from zero_downtime import Server, git, loadavg, machine, stop_agent

from conveyor.devserver import free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO_APP = ROOT / "examples" / "demo-app"
FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}
TARGET_DETECTION_S = 15.0
BAD_ERROR_RATE = "0.1"
DWELL_S = 2.0  # the load is watched this long after a deployment ended, so "every answer after" means something
PATH = "/version"
# the difference between the wall clock (server timestamps) and time.monotonic() (the load client)
WALL = time.time() - time.monotonic()


# --- the service ---------------------------------------------------------------------------


def monitor(seconds: float, args: argparse.Namespace) -> str:
    return (
        f"{{for: {seconds:g}s, interval: {args.interval:g}s, min_requests: {args.min_requests}, "
        f'rollback_if: {{error_rate: "> 2%"}}}}'
    )


def service_config(ports: dict[str, int], args: argparse.Namespace) -> str:
    envs = ""
    for name, seconds in (("detect", args.detect_for), ("clean", args.clean_for)):
        envs += textwrap.indent(
            textwrap.dedent(
                f"""\
                {name}:
                  target: {{kind: local, port: {ports[name]}, replicas: 2, router: builtin}}
                  rollout: {{strategy: blue_green}}
                  quick_rollback: 15m
                  tag: {{bump: patch}}
                  monitor: {monitor(seconds, args)}
                """
            ),
            "  ",
        )
    return (
        textwrap.dedent(
            """\
            service: web
            run: python3 app.py --port $PORT
            health: {path: /healthz, interval: 200ms, successes: 2, timeout: 30s}
            environments:
            """
        )
        + envs
    )


class Repo:
    """The demo app as a service repository; every commit is a new release."""

    def __init__(self, path: Path, config: str) -> None:
        self.path = path
        shutil.copytree(DEMO_APP, path, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
        (path / "conveyor.yml").write_text(config)
        git(path, "init", "-q", "-b", "main")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "web")
        self.base = git(path, "rev-parse", "HEAD")
        self.commits = 0

    def commit(self, notes: str, error_rate: str | None) -> str:
        self.commits += 1
        notes = f"{notes} (commit {self.commits})"
        (self.path / "notes.txt").write_text(notes + "\n")
        switch = self.path / "ERROR_RATE"
        if error_rate is None:
            switch.unlink(missing_ok=True)
        else:
            switch.write_text(error_rate + "\n")
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", notes)
        return git(self.path, "rev-parse", "HEAD")


# --- load ----------------------------------------------------------------------------------


@dataclass
class Answer:
    sent: float  # time.monotonic()
    received: float
    status: int  # 0: no answer (socket error)
    version: str


@dataclass
class Load:
    """One keep-alive connection sending GET /version through a router at ``rate`` requests/s."""

    port: int
    rate: float
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"load-{self.port}")
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        period = 1.0 / self.rate if self.rate > 0 else 0.0
        due = time.monotonic()
        while not self._stop.is_set():
            if period:
                due += period
                ahead = due - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # pacing, not synchronisation
                elif ahead < -1.0:
                    due = time.monotonic()  # after a stall, no burst to catch up
            sent = time.monotonic()
            try:
                conn.request("GET", PATH)
                response = conn.getresponse()
                body = response.read()
                version = json.loads(body).get("version", "") if response.status == 200 else ""
                self.answers.append(Answer(sent, time.monotonic(), response.status, version))
            except (OSError, http.client.HTTPException, ValueError):
                self.answers.append(Answer(sent, time.monotonic(), 0, ""))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def mark(self) -> int:
        return len(self.answers)

    def since(self, mark: int) -> list[Answer]:
        return self.answers[mark:]

    def serving(self) -> str:
        """The version of the latest 200."""
        return next((a.version for a in reversed(self.answers) if a.status == 200), "")


def restored_at(answers: list[Answer], previous: str) -> Answer | None:
    """The first answer after which every answer is a 200 from ``previous``; None if that never held."""
    last_other = max((i for i, a in enumerate(answers) if not (a.status == 200 and a.version == previous)), default=-1)
    return answers[last_other + 1] if last_other + 1 < len(answers) else None


# --- the benchmark -------------------------------------------------------------------------


def epoch(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


class Bench:
    def __init__(self, args: argparse.Namespace, server: Server, repo: Repo, ports: dict[str, int]) -> None:
        self.args, self.server, self.repo, self.ports = args, server, repo, ports

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        d: dict[str, Any] = self.server.ok("GET", f"/deployments/{deployment_id}")
        return d

    def wait(
        self,
        deployment_id: str,
        timeout: float,
        poll: float = 0.2,
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        done = until or (lambda d: d["state"] in FINISHED)
        deadline = time.monotonic() + timeout
        while True:
            d = self.deployment(deployment_id)
            if done(d):
                return d
            if time.monotonic() > deadline:
                raise RuntimeError(f"deployment {deployment_id} still {d['state']} after {timeout:.0f} s")
            time.sleep(poll)

    def request(self, environment: str, sha: str) -> str:
        d = self.server.ok("POST", "/deployments", json={"environment": environment, "ref": sha})
        return str(d["id"])

    def first_release(self, environment: str) -> dict[str, Any]:
        """The base commit, accepted as soon as it is monitored (setup, not measured)."""
        deployment_id = self.request(environment, self.repo.base)
        self.wait(deployment_id, 120, until=lambda d: d["state"] in FINISHED | {"monitoring"})
        with contextlib.suppress(RuntimeError):  # it may have ended already
            self.server.ok(
                "POST", f"/deployments/{deployment_id}/monitoring/accept", json={"reason": "benchmark setup"}
            )
        d = self.wait(deployment_id, 60)
        if d["state"] != "succeeded":
            raise RuntimeError(f"first release to {environment}: {d['state']}: {d['reason']}")
        return d

    def monitoring(self, deployment_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.server.ok("GET", f"/deployments/{deployment_id}/monitoring")
        return view

    # --- detection ---

    def bad_deploy(self, load: Load, run: int, by_person: bool) -> dict[str, Any]:
        previous = load.serving()
        sha = self.repo.commit(f"bad release {run}: one request in ten fails", BAD_ERROR_RATE)
        mark = load.mark()
        requested = time.monotonic()
        deployment_id = self.request("detect", sha)
        decided: float | None = None
        if by_person:
            decided = self.roll_back_at_first_500(load, mark, deployment_id)
        d = self.wait(deployment_id, self.args.detect_for + 120)
        finished = time.monotonic()
        while time.monotonic() < finished + DWELL_S:
            time.sleep(0.1)  # watch the traffic after the end
        answers = load.since(mark)
        view = self.monitoring(deployment_id)
        return self.detection(run, by_person, d, view, answers, previous, requested, decided)

    def roll_back_at_first_500(self, load: Load, mark: int, deployment_id: str) -> float:
        """A person with no reaction time: "roll back now" as soon as the load saw a 500 and the
        deployment is being monitored. Returns when the request was sent (monotonic)."""
        deadline = time.monotonic() + 120
        while not any(a.status >= 500 for a in load.since(mark)):
            if time.monotonic() > deadline:
                raise RuntimeError("the bad release answered no 500 in 120 s")
            time.sleep(0.01)
        self.wait(deployment_id, 120, poll=0.02, until=lambda d: d["state"] in FINISHED | {"monitoring"})
        sent = time.monotonic()
        response = self.server.client.post(
            f"/deployments/{deployment_id}/monitoring/rollback", json={"reason": "benchmark: instant rollback"}
        )
        if response.status_code >= 300:
            raise RuntimeError(f"roll back now: {response.status_code} {response.text}")
        return sent

    def detection(
        self,
        run: int,
        by_person: bool,
        d: dict[str, Any],
        view: dict[str, Any],
        answers: list[Answer],
        previous: str,
        requested: float,
        decided: float | None,
    ) -> dict[str, Any]:
        first_bad = next((a for a in answers if a.status >= 500), None)
        first_new = next((a for a in answers if a.status == 200 and a.version not in ("", previous)), None)
        restored = restored_at(answers, previous)
        mon = view.get("monitoring") or {}
        breach = mon.get("breach") or {}
        zero = first_bad.received + WALL if first_bad else None

        def rel(wall: float | None) -> float | None:
            return wall - zero if wall is not None and zero is not None else None

        def rel_mono(t: float | None) -> float | None:
            return t - first_bad.received if t is not None and first_bad else None

        bad_seq = breach.get("seq")
        breach_sample = next((s for s in view.get("samples", []) if s["seq"] == bad_seq), None)
        return {
            "run": run,
            "by": "person (roll back now)" if by_person else "monitoring",
            "deployment": d["id"],
            "version": d["version"],
            "previous": previous,
            "state": d["state"],
            "outcome": mon.get("outcome"),
            "reason": d["reason"],
            "detection_s": restored.received - first_bad.received if restored and first_bad else None,
            "answers": len(answers),
            "bad_answers": sum(1 for a in answers if a.status >= 500),
            "new_200s": sum(1 for a in answers if a.status == 200 and a.version not in ("", previous)),
            "no_answer": sum(1 for a in answers if a.status == 0),
            # all relative to the first 500 the load client received
            "requested_s": rel_mono(requested),
            "first_new_answer_s": rel_mono(first_new.received) if first_new else None,
            "monitoring_started_s": rel(epoch(mon.get("started_at"))),
            "breach_interval_end_s": rel(epoch(breach.get("at"))),
            "breach_seq": bad_seq,
            "breach_interval": (
                {k: breach_sample[k] for k in ("requests", "errors", "failed")} if breach_sample else None
            ),
            "person_decided_s": rel_mono(decided),
            "finished_s": rel(epoch(d["finished_at"])),
            "restored_s": rel_mono(restored.received) if restored else None,
        }

    # --- clean deploys ---

    def clean_deploy(self, run: int) -> dict[str, Any]:
        sha = self.repo.commit(f"healthy release {run}", None)
        requested = time.monotonic()
        deployment_id = self.request("clean", sha)
        d = self.wait(deployment_id, self.args.clean_for + 120)
        took = time.monotonic() - requested
        view = self.monitoring(deployment_id)
        mon = view.get("monitoring") or {}
        samples = view.get("samples", [])
        requests = sum(s["requests"] for s in samples)
        errors = sum(s["errors"] + s["failed"] for s in samples)
        return {
            "run": run,
            "deployment": d["id"],
            "version": d["version"],
            "state": d["state"],
            "outcome": mon.get("outcome"),
            "reason": d["reason"],
            "seconds": took,
            "samples": len(samples),
            "window_requests": requests,
            "window_errors": errors,
            "verdicts": [s["verdict"] for s in samples],
        }


# --- report --------------------------------------------------------------------------------


def fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def free_g() -> str:
    out = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()
    mem = next((line.split() for line in out if line.startswith("Mem:")), [])
    return f"{mem[1]} GiB total, {mem[6]} GiB available" if len(mem) > 6 else "?"


def summary(values: list[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    return {
        "n": len(values),
        "missing": len(values) - len(known),
        "median": statistics.median(known) if known else None,
        "max": max(known) if known else None,
        "min": min(known) if known else None,
    }


def print_detection(report: dict[str, Any]) -> None:
    print("\ndetection (seconds after the first 500 the load client received)")
    head = (
        f"  {'run':<4}{'rolled back by':<24}{'state':<13}{'requested':>10}{'1st new':>9}{'monitor':>9}"
        f"{'breach':>8}{'person':>8}{'finished':>10}{'100% prev':>11}{'500s':>6}{'new 200s':>9}"
    )
    print(head)
    for r in report["detection"] + report["baseline"]:
        print(
            f"  {r['run']:<4}{r['by']:<24}{r['state']:<13}{fmt(r['requested_s']):>10}{fmt(r['first_new_answer_s']):>9}"
            f"{fmt(r['monitoring_started_s']):>9}{fmt(r['breach_interval_end_s']):>8}{fmt(r['person_decided_s']):>8}"
            f"{fmt(r['finished_s']):>10}{fmt(r['restored_s']):>11}{r['bad_answers']:>6}{r['new_200s']:>9}"
        )
    print(
        "  requested: POST /deployments; 1st new: first 200 from the bad release; monitor: monitoring window"
        "\n  started; breach: end of the interval judged a breach; person: 'roll back now' sent; finished: the"
        "\n  deployment's finished_at; 100% prev: first answer after which every answer is a 200 from the previous"
        "\n  release (= the detection time)"
    )


def print_report(report: dict[str, Any]) -> list[str]:
    missed: list[str] = []
    print_detection(report)
    det, base = report["detection_summary"], report["baseline_summary"]
    interval = report["interval_s"]
    print("\nsummary")
    print(f"  {'':44}{'median':>9}{'max':>9}{'min':>9}{'runs':>6}")
    for label, s in (
        ("detection by monitoring (s)", det),
        ("baseline: person rolls back at once (s)", base),
    ):
        print(f"  {label:44}{fmt(s['median']):>9}{fmt(s['max']):>9}{fmt(s['min']):>9}{s['n']:>6}")
    parts = report["parts"]
    for label, key in (
        ("  monitoring: breaching interval's end -> 100%", "breach_end_to_restored"),
        ("  person: 'roll back now' sent -> 100%", "person_to_restored"),
        ("  first 500 -> window start (a whole second)", "first_500_to_monitoring"),
    ):
        s = parts[key]
        print(f"  {label:44}{fmt(s['median']):>9}{fmt(s['max']):>9}{fmt(s['min']):>9}{s['n']:>6}")
    ratios = report["ratios"]
    print(f"  {'detection / interval (' + format(interval, 'g') + ' s)':44}{fmt(ratios['detection_over_interval']):>9}")
    print(f"  {'detection / baseline (medians)':44}{fmt(ratios['detection_over_baseline']):>9}")
    clean = report["clean_summary"]
    print(
        f"  clean deploys: {clean['n']} · rolled back {clean['rolled_back']} · not enough traffic "
        f"{clean['not_enough_traffic']} · passed {clean['passed']} · other {clean['other']} · "
        f"window requests per deploy median {clean['median_window_requests']:,.0f} · "
        f"errors seen in windows {clean['window_errors']} · load non-200 during the phase {clean['load_non_200']}"
    )

    print("\ntargets")
    ok = det["missing"] == 0 and det["max"] is not None and det["max"] < TARGET_DETECTION_S
    states = [r["state"] for r in report["detection"]]
    ok = ok and all(s == "rolled_back" for s in states)
    print(
        f"  [{'PASS' if ok else 'MISS'}] detection median {fmt(det['median'], ' s')}, max {fmt(det['max'], ' s')} "
        f"(< {TARGET_DETECTION_S:g} s; states {', '.join(states)})"
    )
    if not ok:
        missed.append("detection time")
    ok = clean["rolled_back"] == 0 and clean["other"] == 0
    print(f"  [{'PASS' if ok else 'MISS'}] false rollbacks {clean['rolled_back']} of {clean['n']} (target 0)")
    if not ok:
        missed.append("false rollbacks")
    return missed


# --- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="bad deploys rolled back by monitoring (default 5)")
    parser.add_argument(
        "--baseline-runs", type=int, help="bad deploys rolled back at once by a person (default --runs)"
    )
    parser.add_argument("--clean", type=int, default=20, help="healthy deploys (default 20)")
    parser.add_argument("--rate", type=float, default=200.0, help="load requests/s per environment; 0: flat out")
    parser.add_argument("--interval", type=float, default=5.0, help="monitor interval, seconds (default 5)")
    parser.add_argument("--detect-for", type=float, default=60.0, help="monitor `for` of the bad deploys (60)")
    parser.add_argument("--clean-for", type=float, default=20.0, help="monitor `for` of the healthy deploys (20)")
    parser.add_argument("--min-requests", type=int, default=100, help="monitor min_requests (default 100)")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) and print it")
    args = parser.parse_args()
    if args.baseline_runs is None:
        args.baseline_runs = args.runs
    return args


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="conveyor-monitor-"))
        print(f"  keeping {path}")
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="conveyor-monitor-") as name:
            yield Path(name)


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    started = time.monotonic()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine(),
        "memory": free_g(),
        "uptime_at_start": uptime(),
        "command": " ".join([".venv/bin/python", "bench/monitor.py", *sys.argv[1:]]),
        "interval_s": args.interval,
        "rate": args.rate,
        "detection": [],
        "baseline": [],
        "clean": [],
    }
    m = report["machine"]
    say(f"Conveyor monitoring benchmark · {report['date']} · {m['nproc']} cores, {report['memory']} · {m['cpu']}")
    say(f"  at start: {report['uptime_at_start']}")
    with workspace(args.keep) as tmp:
        ports = {"detect": free_port(), "clean": free_port()}
        config = service_config(ports, args)
        report["config"] = config
        repo = Repo(tmp / "web", config)
        server = Server(tmp / "home")
        bench = Bench(args, server, repo, ports)
        loads: list[Load] = []
        try:
            server.start()
            server.ok("POST", "/services", json={"source": str(repo.path)})
            say("  setup: the first release to detect (accepted at once) ...")
            bench.first_release("detect")
            load = Load(ports["detect"], args.rate).start()
            loads.append(load)
            time.sleep(2.0)  # steady traffic before the first deploy
            plan: list[bool] = []  # monitoring and person runs alternate, so both see the same machine
            auto, manual = args.runs, args.baseline_runs
            while auto or manual:
                if auto:
                    plan.append(False)
                    auto -= 1
                if manual:
                    plan.append(True)
                    manual -= 1
            counts = {False: 0, True: 0}
            for by_person in plan:
                counts[by_person] += 1
                n = counts[by_person]
                r = bench.bad_deploy(load, n, by_person)
                (report["baseline"] if by_person else report["detection"]).append(r)
                label = "baseline (person) " if by_person else "detection         "
                total = args.baseline_runs if by_person else args.runs
                say(
                    f"  {label}{n}/{total}: {r['version']} {r['state']:<11} 100% {r['previous']} "
                    f"{fmt(r['detection_s'], ' s')} after the first 500 "
                    f"(monitoring from {fmt(r['monitoring_started_s'])}, breach interval end "
                    f"{fmt(r['breach_interval_end_s'])}, finished {fmt(r['finished_s'])}) · load "
                    f"{time.monotonic() - started:.0f} s in, {loadavg()}"
                )
            load.stop()
            detect_answers = len(load.answers)
            say("  setup: the first release to clean (accepted at once) ...")
            bench.first_release("clean")
            load = Load(ports["clean"], args.rate).start()
            loads.append(load)
            time.sleep(2.0)
            mark = load.mark()
            for n in range(1, args.clean + 1):
                r = bench.clean_deploy(n)
                report["clean"].append(r)
                say(
                    f"  clean {n}/{args.clean}: {r['version']} {r['state']:<11} {r['outcome']:<19} "
                    f"{r['window_requests']:>6,} requests, {r['window_errors']} errors in {r['samples']} samples, "
                    f"{r['seconds']:.1f} s · load {loadavg()}"
                )
            clean_answers = load.since(mark)
            load.stop()
        finally:
            for load in loads:
                load.stop()
            server.stop()
            stop_agent(server.home)
    report["uptime_at_end"] = uptime()
    report["seconds"] = time.monotonic() - started
    say(f"  at end: {report['uptime_at_end']}")
    say(f"  run time {report['seconds'] / 60:.1f} min")
    det = summary([r["detection_s"] for r in report["detection"]])
    base = summary([r["detection_s"] for r in report["baseline"]])
    report["detection_summary"], report["baseline_summary"] = det, base
    everything = report["detection"] + report["baseline"]

    def gap(rows: list[dict[str, Any]], a: str, b: str) -> list[float | None]:
        return [r[b] - r[a] if r[a] is not None and r[b] is not None else None for r in rows]

    report["parts"] = {
        "breach_end_to_restored": summary(gap(report["detection"], "breach_interval_end_s", "restored_s")),
        "person_to_restored": summary(gap(report["baseline"], "person_decided_s", "restored_s")),
        "first_500_to_monitoring": summary([r["monitoring_started_s"] for r in everything]),
    }
    report["ratios"] = {
        "detection_over_interval": det["median"] / args.interval if det["median"] is not None else None,
        "detection_over_baseline": (
            det["median"] / base["median"] if det["median"] is not None and base["median"] else None
        ),
    }
    clean = report["clean"]
    rates = [a.status for a in clean_answers]
    report["clean_summary"] = {
        "n": len(clean),
        "rolled_back": sum(1 for r in clean if r["state"] == "rolled_back"),
        "not_enough_traffic": sum(1 for r in clean if r["outcome"] == "not_enough_traffic"),
        "passed": sum(1 for r in clean if r["state"] == "succeeded" and r["outcome"] == "passed"),
        "other": sum(1 for r in clean if r["state"] not in ("succeeded", "rolled_back")),
        "median_window_requests": statistics.median([r["window_requests"] for r in clean]) if clean else 0,
        "window_errors": sum(r["window_errors"] for r in clean),
        "load_answers": len(rates),
        "load_non_200": sum(1 for s in rates if s != 200),
        "detect_load_answers": detect_answers,
    }
    missed = print_report(report)
    report["targets_missed"] = missed
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

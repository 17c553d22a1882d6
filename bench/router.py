"""The built-in router's cost per request against HAProxy and nginx as proxies, in one alternating run.

    .venv/bin/python bench/router.py [--quick] [--json FILE] [--rounds 3] [--seconds 5]
                                     [--connections 32] [--keep]

Backend: an nginx of its own (one worker, temp config, a free port) answering every request with a
constant (`return 200 "ok"`, keep-alive). Candidates, each on its own free port in front of it:

- ``direct``: wrk straight to the backend nginx (the ceiling of this machine);
- ``haproxy``: HAProxy in one thread (``nbthread 1``), keep-alive to the backend;
- ``nginx``: nginx as a proxy in one worker, ``keepalive 64`` to the backend;
- ``builtin``: Conveyor's built-in router (``BuiltinRouter`` with one ``Backend``), in a child
  process started the way the agent runs its loop (``conveyor.agent.main.run`` when it exists,
  so uvloop when the agent uses it; else ``asyncio.run``).

Load: ``wrk -t1 -c32 -d5s --latency`` per candidate, the candidates in turn, --rounds times (A/B/C/D,
A/B/C/D, ...), each after a 1 s warm-up; the figures are the medians over the rounds. CPU per request
is the proxy's own CPU time (utime + stime from /proc/<pid>/stat of its processes: the nginx master
and workers, the haproxy process, the router's child process) over the wrk run, divided by the
requests wrk completed. For ``direct`` it is the backend nginx's CPU.

Exit status 1 when the built-in router (``builtin``, as the agent runs it) misses its target:
throughput under 0.5 x HAProxy's, or CPU per request over 2 x HAProxy's, or any failed request
(non-2xx or socket error) through any candidate; 2 when nginx, haproxy or wrk is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from conveyor.devserver import free_port  # noqa: E402

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CANDIDATES = ("direct", "haproxy", "nginx", "builtin")

ROUTER_CHILD = textwrap.dedent(
    """
    import asyncio, signal, sys
    from conveyor.agent import main as agent_main
    from conveyor.agent.router import BuiltinRouter
    from conveyor.agent.routing import Backend

    async def serve(port: int, backend_port: int) -> None:
        router = BuiltinRouter("bench", "127.0.0.1", port)
        await router.start()
        await router.set_backends([Backend("b1", "127.0.0.1", backend_port, "r1")])
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", type(asyncio.get_running_loop()).__module__, flush=True)
        await stop.wait()
        await router.stop()

    run = getattr(agent_main, "run_loop", asyncio.run)
    run(serve(int(sys.argv[1]), int(sys.argv[2])))
    """
)


@dataclass
class Sample:
    candidate: str
    round: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    failed: int


@dataclass
class Candidate:
    name: str
    port: int
    pids: list[int]  # whose CPU counts
    proc: subprocess.Popen[bytes] | None = None
    note: str = ""
    samples: list[Sample] = field(default_factory=list)


def _missing() -> list[str]:
    need = {"nginx": ["nginx", "/usr/sbin/nginx"], "haproxy": ["haproxy", "/usr/sbin/haproxy"], "wrk": ["wrk"]}
    return [name for name, paths in need.items() if not any(shutil.which(p) for p in paths)]


def _which(name: str) -> str:
    found = shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
    assert found is not None
    return found


def _cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _wait_http(port: int, what: str, proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode} before it answered on port {port}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2) as resp:
                body = resp.read()
                if resp.status == 200 and body == b"ok":
                    return
                last = RuntimeError(f"status {resp.status} body {body[:80]!r}")
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise SystemExit(f"{what} did not answer 200 'ok' on port {port} within {timeout:.0f}s: {last}")


def _nginx_conf(tmp: Path, name: str, port: int, proxy_to: int | None) -> Path:
    run = tmp / name
    run.mkdir()
    if proxy_to is None:
        location = 'default_type text/plain; return 200 "ok";'
        upstream = ""
    else:
        upstream = f"upstream app {{ server {HOST}:{proxy_to}; keepalive 64; }}"
        location = 'proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";'
    conf = run / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            daemon off;
            worker_processes 1;
            pid {run}/nginx.pid;
            error_log {run}/error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {run}/body; proxy_temp_path {run}/proxy;
                fastcgi_temp_path {run}/fcgi; uwsgi_temp_path {run}/uwsgi; scgi_temp_path {run}/scgi;
                keepalive_requests 1000000;
                keepalive_timeout 75s;
                {upstream}
                server {{
                    listen {HOST}:{port};
                    location / {{ {location} }}
                }}
            }}
            """
        )
    )
    return conf


def _haproxy_conf(tmp: Path, port: int, backend: int) -> Path:
    conf = tmp / "haproxy.cfg"
    conf.write_text(
        textwrap.dedent(
            f"""
            global
                nbthread 1
                maxconn 4096
            defaults
                mode http
                option http-keep-alive
                timeout connect 3s
                timeout client 60s
                timeout server 60s
                timeout http-keep-alive 60s
            frontend bench
                bind {HOST}:{port}
                default_backend app
            backend app
                http-reuse always
                server s1 {HOST}:{backend}
            """
        )
    )
    return conf


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
    )


@contextlib.contextmanager
def _stack(tmp: Path) -> Iterator[tuple[Candidate, list[Candidate]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        nginx = _which("nginx")
        backend_port = free_port()
        conf = _nginx_conf(tmp, "backend", backend_port, None)
        backend_proc = _spawn([nginx, "-c", str(conf), "-e", str(tmp / "backend" / "error.log")], tmp / "backend.log")
        procs.append(backend_proc)
        _wait_http(backend_port, "the backend nginx", backend_proc)
        backend = Candidate("direct", backend_port, [backend_proc.pid, *_children(backend_proc.pid)], backend_proc)

        hp_port = free_port()
        hp_proc = _spawn(
            [_which("haproxy"), "-db", "-f", str(_haproxy_conf(tmp, hp_port, backend_port))], tmp / "haproxy.log"
        )
        procs.append(hp_proc)
        _wait_http(hp_port, "haproxy", hp_proc)
        haproxy = Candidate("haproxy", hp_port, [hp_proc.pid, *_children(hp_proc.pid)], hp_proc)

        px_port = free_port()
        conf = _nginx_conf(tmp, "proxy", px_port, backend_port)
        px_proc = _spawn([nginx, "-c", str(conf), "-e", str(tmp / "proxy" / "error.log")], tmp / "nginx-proxy.log")
        procs.append(px_proc)
        _wait_http(px_port, "nginx as proxy", px_proc)
        proxy = Candidate("nginx", px_port, [px_proc.pid, *_children(px_proc.pid)], px_proc)

        rt_port = free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT / "src")) if p)
        log = tmp / "builtin.log"
        rt_proc = _spawn([sys.executable, "-c", ROUTER_CHILD, str(rt_port), str(backend_port)], log, env=env)
        procs.append(rt_proc)
        _wait_http(rt_port, "the built-in router", rt_proc)
        ready = log.read_text().split()
        router = Candidate("builtin", rt_port, [rt_proc.pid], rt_proc, note=ready[1] if len(ready) > 1 else "")
        yield backend, [backend, haproxy, proxy, router]
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _latency_ms(out: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
    return float(m[1]) * _UNITS[m[2]] if m else float("nan")


def _wrk(cand: Candidate, seconds: float, connections: int) -> tuple[int, float, float, float, int, str]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", f"http://{HOST}:{cand.port}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"(\d+) requests in ([0-9.]+)(ms|s|m)", out)
    if m is None:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    requests = int(m[1])
    secs = float(m[2]) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[m[3]]
    failed = 0
    if nm := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        failed += int(nm[1])
    if sm := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        failed += sum(int(x) for x in sm.groups())
    return requests, secs, _latency_ms(out, "50"), _latency_ms(out, "99"), failed, out


def _measure(cand: Candidate, rnd: int, seconds: float, connections: int) -> Sample:
    _wrk(cand, 1, connections)  # warm-up: connections pooled, caches warm
    before = sum(_cpu_ticks(p) for p in cand.pids)
    requests, secs, p50, p99, failed, _ = _wrk(cand, seconds, connections)
    ticks = sum(_cpu_ticks(p) for p in cand.pids) - before
    cpu_us = ticks / CLK_TCK * 1e6 / requests if requests else float("nan")
    return Sample(cand.name, rnd, requests, secs, requests / secs if secs else 0.0, p50, p99, cpu_us, failed)


def _median(samples: list[Sample], attr: str) -> float:
    return float(statistics.median(getattr(s, attr) for s in samples))


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs and logs)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 3.0
    missing = _missing()
    if missing:
        print(
            f"bench/router.py needs {', '.join(missing)} on PATH (or in /usr/sbin): "
            "install the Debian packages nginx, haproxy and wrk (apt-get install nginx haproxy wrk).",
            file=sys.stderr,
        )
        return 2
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    print(f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {platform.node()}, {os.cpu_count()} CPUs, {mem_gb:.1f} GB")
    haproxy_version = subprocess.run([_which("haproxy"), "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"python {platform.python_version()}, {haproxy_version}")
    print(f"load average at start {_loadavg()}")
    print(f"wrk -t1 -c{args.connections} -d{args.seconds:g}s --latency, {args.rounds} rounds, candidates in turn")
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-router-"))
    try:
        with _stack(tmp) as (_backend, cands):
            builtin = next(c for c in cands if c.name == "builtin")
            print(f"built-in router loop: {builtin.note or 'unknown'}")
            for rnd in range(1, args.rounds + 1):
                for cand in cands:
                    s = _measure(cand, rnd, args.seconds, args.connections)
                    cand.samples.append(s)
                    print(
                        f"  round {rnd} {cand.name:16} {s.rps:9.0f} req/s  p50 {s.p50_ms:6.3f} ms  "
                        f"p99 {s.p99_ms:6.3f} ms  {s.cpu_us_per_request:6.1f} us CPU/req  failed {s.failed}",
                        flush=True,
                    )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end {_loadavg()}")
    summary: dict[str, dict[str, float]] = {}
    print(f"\n{'candidate':16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'failed':>7}")
    for cand in cands:
        row = {
            "rps": _median(cand.samples, "rps"),
            "p50_ms": _median(cand.samples, "p50_ms"),
            "p99_ms": _median(cand.samples, "p99_ms"),
            "cpu_us_per_request": _median(cand.samples, "cpu_us_per_request"),
            "failed": float(sum(s.failed for s in cand.samples)),
        }
        summary[cand.name] = row
        print(
            f"{cand.name:16} {row['rps']:9.0f} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} "
            f"{row['cpu_us_per_request']:11.1f} {row['failed']:7.0f}"
        )
    paired = [
        (bs.rps / hs.rps, bs.cpu_us_per_request / hs.cpu_us_per_request)
        for bs, hs in zip(
            next(c for c in cands if c.name == "builtin").samples,
            next(c for c in cands if c.name == "haproxy").samples,
            strict=True,
        )
    ]
    print(
        "built-in / HAProxy per round (seconds apart): "
        + ", ".join(f"throughput {r:.2f}x CPU {c:.2f}x" for r, c in paired)
    )
    b, h = summary["builtin"], summary["haproxy"]
    rps_ratio = b["rps"] / h["rps"] if h["rps"] else 0.0
    cpu_ratio = b["cpu_us_per_request"] / h["cpu_us_per_request"] if h["cpu_us_per_request"] else float("inf")
    print(
        f"\nbuilt-in / HAProxy: throughput {rps_ratio:.2f}x (target >= 0.5), "
        f"CPU per request {cpu_ratio:.2f}x (target <= 2)"
    )
    misses = []
    if rps_ratio < 0.5:
        misses.append(f"throughput {rps_ratio:.2f}x HAProxy's, under 0.5x")
    if cpu_ratio > 2:
        misses.append(f"CPU per request {cpu_ratio:.2f}x HAProxy's, over 2x")
    failed = {name: row["failed"] for name, row in summary.items() if row["failed"]}
    if failed:
        misses.append(f"failed requests {failed}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "nproc": os.cpu_count(),
                    "rounds": args.rounds,
                    "seconds": args.seconds,
                    "connections": args.connections,
                    "builtin_loop": builtin.note,
                    "summary": summary,
                    "ratio_rps": rps_ratio,
                    "ratio_cpu": cpu_ratio,
                    "ratios_per_round": [{"rps": r, "cpu": c} for r, c in paired],
                    "samples": [asdict(s) for c in cands for s in c.samples],
                    "missed": misses,
                },
                indent=2,
            )
        )
    if misses:
        print("target missed: " + "; ".join(misses))
        return 1
    print("target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

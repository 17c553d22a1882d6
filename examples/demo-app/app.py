#!/usr/bin/env python3
"""Conveyor demo app: a tiny HTTP service that Conveyor's demo, tests and benchmarks deploy.

Standard library only; runs with any python3 >= 3.8 and no installs.

    python3 app.py --port 8080        (or PORT=8080 python3 app.py)

Routes: GET / (HTML version banner), GET /healthz, GET /version, GET|POST /api/echo.
Failure switches (an environment variable, or a file next to this script so a commit can
make a release bad) are described in README.md.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from urllib.parse import parse_qsl, urlsplit

APP_DIR = Path(__file__).resolve().parent
DEFAULT_PORT = 8080
DRAIN_SECONDS = 10.0  # how long SIGTERM waits for in-flight requests
STARTING_GRACE_SECONDS = 1.0  # how long a drain waits for accepted connections that sent nothing yet
IDLE_TIMEOUT_SECONDS = 120  # keep-alive connections idle this long are closed
SWITCH_FILE_TTL = 1.0  # switch files are re-read at most this often
MAX_BODY_BYTES = 10 * 1024 * 1024
CRASH_EXIT_CODE = 3
SHORT_SHA_LEN = 7
ROUTES = {
    "/": ("GET", "HEAD"),
    "/healthz": ("GET", "HEAD"),
    "/version": ("GET", "HEAD"),
    "/api/echo": ("GET", "HEAD", "POST"),
    "/checkout": ("GET", "HEAD"),
}


def log_error(message: str) -> None:
    print(f"demo-app: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- identity


class Identity:
    """What this process is: version, commit, environment, pid. Fixed for the process lifetime."""

    def __init__(self, environ: dict[str, str], directory: Path) -> None:
        self.version = environ.get("CONVEYOR_VERSION", "").strip() or read_version_file(directory) or "dev"
        self.sha = environ.get("CONVEYOR_SHA", "").strip()
        self.short_sha = self.sha[:SHORT_SHA_LEN]
        self.env = environ.get("CONVEYOR_ENV", "").strip()
        self.pid = os.getpid()

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "sha": self.sha, "env": self.env, "pid": self.pid}


def read_version_file(directory: Path) -> str:
    try:
        return (directory / "VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def render_index(identity: Identity) -> bytes:
    hue = zlib.crc32(identity.version.encode()) % 360  # each version gets its own colour
    version = html.escape(identity.version)
    env = html.escape(identity.env) or "&mdash;"
    sha = html.escape(identity.short_sha) or "&mdash;"
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>demo-app {version}</title>
<style>
  body {{ margin: 0; font-family: system-ui, sans-serif; background: #f4f4f5; color: #18181b; }}
  .banner {{ background: hsl({hue}, 55%, 35%); color: #fff; padding: 48px 24px; text-align: center; }}
  .banner .label {{ text-transform: uppercase; letter-spacing: .2em; opacity: .8; }}
  .banner h1 {{ font-size: clamp(48px, 12vw, 120px); margin: 8px 0 0; word-break: break-all; }}
  main {{ max-width: 640px; margin: 32px auto; padding: 0 24px; }}
  dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 8px 24px; font-size: 20px; }}
  dt {{ color: #71717a; }} dd {{ margin: 0; font-family: ui-monospace, monospace; }}
</style>
</head>
<body>
<div class="banner"><div class="label">version</div><h1 id="version">{version}</h1></div>
<main>
<dl>
  <dt>environment</dt><dd id="env">{env}</dd>
  <dt>commit</dt><dd id="sha">{sha}</dd>
  <dt>pid</dt><dd id="pid">{identity.pid}</dd>
</dl>
<p>Deployed by Conveyor. Endpoints: <a href="/healthz">/healthz</a>, <a href="/version">/version</a>,
<a href="/api/echo">/api/echo</a>.</p>
</main>
</body>
</html>
"""
    return page.encode("utf-8")


# ---------------------------------------------------------------- failure switches


def parse_rate(raw: str, source: str) -> float:
    text = raw.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{source} must be a fraction between 0 and 1 (got {text!r})") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{source} must be a fraction between 0 and 1 (got {text!r}); use 0.3 for 30%")
    return value


def parse_non_negative(raw: str, source: str, kind: type = float) -> float:
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ValueError(f"{source} must be a non-negative number (got {raw.strip()!r})") from None
    if value < 0:
        raise ValueError(f"{source} must be a non-negative number (got {raw.strip()!r})")
    return value


def truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


class SwitchState:
    __slots__ = ("error_rate", "fail_health", "slow_ms")

    def __init__(self, fail_health: bool, error_rate: float, slow_ms: float) -> None:
        self.fail_health = fail_health
        self.error_rate = error_rate
        self.slow_ms = slow_ms


class Switches:
    """Failure switches: environment variables (fixed at start) OR files in the app directory.

    Files: FAIL_HEALTH (present = failing), ERROR_RATE and SLOW_MS (containing a number). An
    environment variable, when set, wins over the file. Files are re-read at most once a second.
    """

    def __init__(self, environ: dict[str, str], directory: Path) -> None:
        self._dir = directory
        self._env_fail_health = truthy(environ.get("DEMO_FAIL_HEALTH"))
        rate = environ.get("DEMO_ERROR_RATE", "").strip()
        slow = environ.get("DEMO_SLOW_MS", "").strip()
        self._env_error_rate = parse_rate(rate, "DEMO_ERROR_RATE") if rate else None
        self._env_slow_ms = parse_non_negative(slow, "DEMO_SLOW_MS") if slow else None
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._files = SwitchState(False, 0.0, 0.0)
        self._reported: set[str] = set()

    def current(self) -> SwitchState:
        now = time.monotonic()
        with self._lock:
            if now - self._checked_at >= SWITCH_FILE_TTL:
                self._files = self._read_files()
                self._checked_at = now
            files = self._files
        return SwitchState(
            self._env_fail_health or files.fail_health,
            files.error_rate if self._env_error_rate is None else self._env_error_rate,
            files.slow_ms if self._env_slow_ms is None else self._env_slow_ms,
        )

    def _read_files(self) -> SwitchState:
        return SwitchState(
            (self._dir / "FAIL_HEALTH").exists(),
            self._read_number("ERROR_RATE", parse_rate),
            self._read_number("SLOW_MS", parse_non_negative),
        )

    def _read_number(self, name: str, parser) -> float:
        path = self._dir / name
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError:
            return 0.0
        try:
            return parser(raw, f"file {path}")
        except ValueError as exc:
            if name not in self._reported:  # say it once, not once a second
                self._reported.add(name)
                log_error(f"ignoring switch: {exc}")
            return 0.0


# ---------------------------------------------------------------- server


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # draining is done by wait_idle, with a deadline
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], identity: Identity, switches: Switches, crash_after: int):
        self.identity = identity
        self.switches = switches
        self.crash_after = crash_after
        self.index_page = render_index(identity)
        self.draining = threading.Event()
        self._cond = threading.Condition()
        self._in_flight = 0  # requests being handled
        self._starting = 0  # accepted connections that have not begun their first request
        self._served = 0
        super().__init__(address, DemoHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall on a reverse DNS lookup.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address) -> None:
        with self._cond:
            self._starting += 1
        super().process_request(request, client_address)

    def connection_started(self) -> None:
        with self._cond:
            self._starting -= 1
            self._cond.notify_all()

    def begin_request(self) -> None:
        with self._cond:
            self._in_flight += 1

    def end_request(self) -> int:
        """Returns how many requests this process has finished."""
        with self._cond:
            self._in_flight -= 1
            self._served += 1
            self._cond.notify_all()
            return self._served

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight (and new connections had a moment to send theirs)."""
        start = time.monotonic()
        deadline = start + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                starting_done = self._starting <= 0 or now - start >= STARTING_GRACE_SECONDS
                if self._in_flight == 0 and starting_done:
                    return True
                if now >= deadline:
                    return False
                self._cond.wait(min(0.1, deadline - now))

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # clients hang up all the time under load; not our error
        log_error(f"error handling a request from {client_address[0]}:")
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-app"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_SECONDS
    server: DemoServer

    def version_string(self) -> str:
        return self.server_version

    # ---- connection bookkeeping and quiet logging

    def setup(self) -> None:
        self._started = False
        super().setup()

    def finish(self) -> None:
        self._mark_started()
        super().finish()

    def _mark_started(self) -> None:
        if not self._started:
            self._started = True
            self.server.connection_started()

    def log_message(self, format: str, *args) -> None:
        pass  # one line per request is too much for load tests

    def log_error(self, format: str, *args) -> None:
        message = format % args
        if not message.startswith("Request timed out"):  # idle keep-alive, not an error
            log_error(f"{self.address_string()}: {message}")

    # ---- dispatch

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        self._mark_started()
        server = self.server
        server.begin_request()
        try:
            self._route()
        finally:
            served = server.end_request()
        if server.crash_after and served == server.crash_after:
            log_error(f"DEMO_CRASH_AFTER={server.crash_after}: crashing with exit code {CRASH_EXIT_CODE}")
            sys.stdout.flush()
            os._exit(CRASH_EXIT_CODE)

    def _route(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        allowed = ROUTES.get(path)
        if allowed is None:
            return self._send_json(404, {"error": "not found", "path": path})
        if self.command not in allowed:
            return self._send_json(405, {"error": "method not allowed"}, {"Allow": ", ".join(allowed)})
        if path == "/healthz":
            return self._healthz()
        switches = self.server.switches.current()
        if switches.slow_ms > 0:
            time.sleep(switches.slow_ms / 1000.0)
        if switches.error_rate > 0 and random.random() < switches.error_rate:
            return self._send_json(500, {"error": "injected failure (DEMO_ERROR_RATE / ERROR_RATE)"})
        identity = self.server.identity
        if path == "/":
            return self._send(200, self.server.index_page, "text/html; charset=utf-8")
        if path == "/version":
            return self._send_json(200, identity.as_json())
        if path == "/checkout":
            import checkout  # next to app.py; it uses the flags SDK when it is installed

            user = dict(parse_qsl(urlsplit(self.path).query)).get("user", "guest")
            return self._send(200, checkout.page(user, identity.version).encode(), "text/html; charset=utf-8")
        if self.command == "POST":
            content_type = self.headers.get("Content-Type", "application/octet-stream")
            return self._send(200, body, content_type)
        query = dict(parse_qsl(urlsplit(self.path).query))
        return self._send_json(200, {"echo": "hello", "query": query, "version": identity.version})

    def _healthz(self) -> None:
        server = self.server
        version = server.identity.version
        if server.draining.is_set():
            return self._send_json(503, {"status": "draining", "version": version})
        if server.switches.current().fail_health:
            return self._send_json(503, {"status": "failing", "version": version, "reason": "FAIL_HEALTH"})
        # in_flight counts other requests being handled right now (not this one)
        return self._send_json(200, {"status": "ok", "version": version, "in_flight": server.in_flight - 1})

    # ---- request body and responses

    def _read_body(self) -> bytes | None:
        """Read exactly Content-Length bytes so the next request on the connection starts clean."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send_json(411, {"error": "send a Content-Length; chunked bodies are not supported"})
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._send_json(400, {"error": f"bad Content-Length {raw!r}"})
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
            return None
        chunks = []
        remaining = length
        while remaining:
            chunk = self.rfile.read(remaining)
            if not chunk:
                self.close_connection = True
                return None  # client went away mid-body
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.server.draining.is_set() or self.close_connection:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Conveyor demo app (standard library only).")
    parser.add_argument("--port", type=int, default=None, help=f"port (default: $PORT, else {DEFAULT_PORT})")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address to bind")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    environ = dict(os.environ)
    try:
        port = args.port if args.port is not None else int(environ.get("PORT") or DEFAULT_PORT)
        switches = Switches(environ, APP_DIR)
        start_delay = parse_non_negative(environ.get("DEMO_START_DELAY") or "0", "DEMO_START_DELAY")
        crash_after = int(parse_non_negative(environ.get("DEMO_CRASH_AFTER") or "0", "DEMO_CRASH_AFTER", int))
    except ValueError as exc:
        log_error(f"bad configuration: {exc}")
        return 2
    identity = Identity(environ, APP_DIR)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if start_delay and stop.wait(start_delay):  # simulated slow boot; SIGTERM cuts it short
        print("demo-app stopped before listening", flush=True)
        return 0
    try:
        server = DemoServer((args.host, port), identity, switches, crash_after)
    except OSError as exc:
        log_error(f"cannot listen on {args.host}:{port}: {exc}")
        return 1
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    serving.start()
    host, bound_port = server.server_address[:2]
    print(f"demo-app listening on {host}:{bound_port} version={identity.version}", flush=True)

    # a signal's handler sets it; the wait has a timeout because the kernel may deliver SIGTERM to
    # another thread, and the handler runs only once this one wakes
    while not stop.wait(0.1):
        pass
    print("demo-app stopping: no new connections, draining in-flight requests", flush=True)
    server.draining.set()
    server.shutdown()  # the accept loop ends
    server.socket.close()  # and the port closes
    if not server.wait_idle(DRAIN_SECONDS):
        log_error(f"{server.in_flight} request(s) still in flight after {DRAIN_SECONDS:g}s; exiting anyway")
    print("demo-app stopped", flush=True)
    return 0


if __name__ == "__main__":
    # Daemon threads still parked in idle keep-alive reads end with the process.
    sys.exit(main())

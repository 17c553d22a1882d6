"""Test doubles for the SDK tests: a real HTTP server speaking the flags API (ruleset with ETag,
SSE stream), a server that drops every connection, and a wait helper. (Not named conftest so that
importing it cannot collide with the project's own tests/conftest.py in a combined run.)"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

SDK_KEY = "sdk-production-test"
T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
        time.sleep(0.02)
        last = check()
    return last


def make_ruleset(version: int, **flags: dict[str, Any]) -> dict[str, Any]:
    return {"environment": "production", "version": version, "flags": flags}


def bool_flag(on: bool) -> dict[str, Any]:
    return {"type": "boolean", "enabled": on, "default": False, "on_value": True, "strategies": []}


class FlagsServer:
    """Serves ``GET /api/v1/flags/ruleset`` (ETag, 304) and ``GET /api/v1/flags/stream`` (SSE,
    chunked, keepalive comments) the way the contract describes. Knobs: ``stream_enabled``,
    ``drop_streams()``, ``body_override`` (serve this text instead of the ruleset)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.version = 1
        self.ruleset = make_ruleset(1, new_checkout_flow=bool_flag(False))
        self.stream_enabled = True
        self.body_override: str | None = None
        self.generation = 0  # bumped to drop every open stream
        self.statuses: list[int] = []
        self.if_none_match: list[str | None] = []
        self.stream_connects = 0
        self.keys_seen: set[str | None] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.keys_seen.add(self.headers.get("X-API-Key"))
                if self.headers.get("X-API-Key") != SDK_KEY:
                    self._reply(401, b'{"detail": "bad key"}')
                elif self.path == "/api/v1/flags/ruleset":
                    server._ruleset(self)
                elif self.path == "/api/v1/flags/stream":
                    server._stream(self)
                else:
                    self._reply(404, b"{}")

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                server.statuses.append(status)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def _body(self) -> str:
        return self.body_override if self.body_override is not None else json.dumps(self.ruleset)

    def _ruleset(self, handler: Any) -> None:
        with self.cond:
            etag, body = self.etag, self._body()
        sent = handler.headers.get("If-None-Match")
        self.if_none_match.append(sent)
        if sent == etag and self.body_override is None:
            handler._reply(304, b"", {"ETag": etag})
        else:
            handler._reply(200, body.encode(), {"ETag": etag, "Content-Type": "application/json"})

    def _stream(self, handler: Any) -> None:
        if not self.stream_enabled:
            handler._reply(503, b'{"detail": "stream off"}')
            return
        self.statuses.append(200)
        with self.cond:  # counted with the generation it serves: a drop right after is never missed
            generation, sent_version, body = self.generation, self.version, self._body()
            self.stream_connects += 1
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(text: str) -> None:
            data = text.encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        try:
            chunk(f"event: ruleset\ndata: {body}\n\n")
            while True:
                with self.cond:
                    self.cond.wait_for(partial(self._news, generation, sent_version), timeout=0.2)
                    if self.generation != generation or not self.stream_enabled:
                        return  # drop: close the connection without the final chunk
                    changed, sent_version, body = self.version != sent_version, self.version, self._body()
                chunk(f"event: ruleset\ndata: {body}\n\n" if changed else ": keepalive\n\n")
        except OSError:
            return
        finally:
            handler.close_connection = True

    def _news(self, generation: int, version: int) -> bool:
        return self.generation != generation or self.version != version

    def start(self) -> FlagsServer:
        self.thread.start()
        return self

    def set_ruleset(self, **flags: dict[str, Any]) -> None:
        with self.cond:
            self.version += 1
            self.ruleset = make_ruleset(self.version, **flags)
            self.cond.notify_all()

    def drop_streams(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def stop(self) -> None:
        self.drop_streams()
        self.httpd.shutdown()
        self.httpd.server_close()


class ClosingServer:
    """Accepts TCP connections and closes them at once: a server that is up but answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def free_port_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"

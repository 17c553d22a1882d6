"""HTTP for the SDK: one GET for the ruleset and a Server-Sent Events reader. Standard library only.

Every request is made with ``http.client`` so the caller can hold the socket and shut it down from
another thread (that is how ``Client.close()`` ends a stream that is blocked reading).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from conveyor_flags._version import __version__

USER_AGENT = f"conveyor-flags-python/{__version__}"
RULESET_PATH = "/api/v1/flags/ruleset"
STREAM_PATH = "/api/v1/flags/stream"
MAX_BODY = 64 * 1024 * 1024  # a ruleset larger than this is refused rather than read into memory


class TransportError(Exception):
    """A request that did not produce a usable answer. ``kind`` groups errors for log-once."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Response:
    status: int
    etag: str | None
    body: str


@dataclass(frozen=True)
class Event:
    name: str
    data: str


class Endpoint:
    """The server's base URL and the SDK key; opens connections for the two requests."""

    def __init__(self, url: str, sdk_key: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"flags URL must look like http://host:port or https://host, got {url!r}")
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.sdk_key = sdk_key

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if self.sdk_key:
            headers["X-API-Key"] = self.sdk_key
        return headers

    def _open(
        self,
        path: str,
        headers: dict[str, str],
        timeout: float,
        read_timeout: float,
        hold: Callable[[socket.socket | None], None],
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.connect()
            conn.sock.settimeout(read_timeout)
            hold(conn.sock)
            conn.request("GET", self.prefix + path, headers=headers)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            hold(None)
            raise _unreachable(self.url, exc) from exc

    def fetch(self, etag: str | None, timeout: float, hold: Callable[[socket.socket | None], None]) -> Response:
        """GET the ruleset (conditional on ``etag``). 200 and 304 are answers; others raise."""
        headers = self._headers("application/json")
        if etag:
            headers["If-None-Match"] = etag
        conn, response = self._open(RULESET_PATH, headers, timeout, timeout, hold)
        try:
            if response.status == 304:
                return Response(304, response.getheader("ETag") or etag, "")
            body = response.read(MAX_BODY + 1)
            if response.status != 200:
                raise _status_error(response.status, body, self.url + RULESET_PATH)
            if len(body) > MAX_BODY:
                raise TransportError("too large", f"the ruleset from {self.url} is larger than {MAX_BODY} bytes")
            return Response(200, response.getheader("ETag"), body.decode("utf-8", errors="replace"))
        except (OSError, http.client.HTTPException) as exc:
            raise _unreachable(self.url, exc) from exc
        finally:
            conn.close()
            hold(None)

    def stream(
        self, timeout: float, read_timeout: float, hold: Callable[[socket.socket | None], None]
    ) -> Iterator[Event]:
        """Open the SSE stream and yield its events until it ends (then return) or fails (raise)."""
        headers = self._headers("text/event-stream")
        headers["Cache-Control"] = "no-cache"
        conn, response = self._open(STREAM_PATH, headers, timeout, read_timeout, hold)
        try:
            if response.status != 200:
                raise _status_error(response.status, response.read(4096), self.url + STREAM_PATH)
            yield from parse_sse(response.readline)
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError("stream interrupted", f"the flag stream from {self.url} broke: {exc}") from exc
        finally:
            conn.close()
            hold(None)


def parse_sse(readline: Callable[[], bytes]) -> Iterator[Event]:
    """Server-Sent Events (WHATWG): ``event:``/``data:`` fields, blank line dispatches, ``:`` comments."""
    name = ""
    data: list[str] = []
    while True:
        raw = readline()
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield Event(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)


def _unreachable(url: str, exc: BaseException) -> TransportError:
    return TransportError("unreachable", f"cannot reach the flags server at {url}: {exc or type(exc).__name__}")


def _status_error(status: int, body: bytes, where: str) -> TransportError:
    detail = body[:300].decode("utf-8", errors="replace").strip()
    hint = ""
    if status in (401, 403):
        hint = " (check the SDK key: CONVEYOR_FLAGS_KEY or sdk_key=)"
    elif status == 404:
        hint = " (check the URL: CONVEYOR_FLAGS_URL or url= is the Conveyor server's base URL)"
    return TransportError(f"http {status}", f"GET {where} answered {status}{hint}: {detail}")

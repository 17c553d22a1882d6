"""Refuse what no route should see: request bodies over the configured size (413, before they are
read in full), URLs over 8 KiB (414) and URLs holding control characters such as NUL (400)."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_URL_BYTES = 8192
"""Path and query together; the longest real URL (a deployment page with its filters) is a few hundred."""


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        message = f"request body is larger than {self.max_bytes} bytes"
        fix = "send a smaller body (CONVEYOR_MAX_BODY_BYTES sets the limit)"
        await refuse(send, 413, "too_large", message, fix)


OFREP_SINGLE = b"/ofrep/v1/evaluate/flags/"


class UrlLimit:
    """Refuse URLs longer than MAX_URL_BYTES, and URLs whose path or query decodes to a control
    character (NUL, a line break): no name, id or filter has one, and databases choke on NUL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
            query: bytes = scope.get("query_string") or b""
            size = len(raw_path) + len(query)
            if size > MAX_URL_BYTES:
                message = f"the URL is {size} bytes long; the limit is {MAX_URL_BYTES}"
                await refuse(send, 414, "invalid", message, "send long values in a request body")
                return
            # an OFREP flag key is only looked up in memory: OFREP answers it (404 FLAG_NOT_FOUND)
            checked = (("path", raw_path),) if not raw_path.startswith(OFREP_SINGLE) else ()
            for part, text in (*checked, ("query", query.replace(b"+", b" "))):
                found = next((byte for byte in unquote_to_bytes(text) if byte < 0x20 or byte == 0x7F), None)
                if found is not None:
                    message = f"the URL's {part} contains the control character 0x{found:02X}"
                    await refuse(send, 400, "invalid", message, "remove control characters from the URL")
                    return
        await self.app(scope, receive, send)


async def refuse(send: Send, status: int, kind: str, message: str, fix: str) -> None:
    """Answer with Conveyor's error body, before any route runs."""
    body = json.dumps({"error": kind, "message": message, "fix": fix}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Live updates over server-sent events. A stream renders the parts of a page (HTML fragments) in
a worker thread every ``interval`` seconds, from the database alone (the server keeps no state that
matters), and sends a part only when it differs from what the browser shows. ``static/live.js``
swaps each part into the element marked ``data-live-part=NAME``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from conveyor.web.pages import digest

KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 5.0  # how often a stream checks that its session is still signed in
MAX_SECONDS = 600.0  # then the stream ends; the browser's EventSource reconnects by itself

# render() -> (parts by name, finished): after a finished render the stream says "end" and stops
Render = Callable[[], tuple[dict[str, str], bool]]


def event(name: str, data: str) -> str:
    lines = data.splitlines() or [""]
    return f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


async def _events(
    request: Request, render: Render, shown: Mapping[str, str], interval: float, signed_in: Callable[[], bool]
) -> AsyncIterator[str]:
    sent = dict(shown)  # part name -> digest of what the browser has
    started = last_word = last_check = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        now = time.monotonic()
        if now - last_check > RECHECK_SECONDS:
            last_check = now
            if not await run_in_threadpool(signed_in):
                yield event("end", "signed out")
                return
        parts, finished = await run_in_threadpool(render)
        for name, html in parts.items():
            if sent.get(name) != digest(html):
                sent[name] = digest(html)
                last_word = time.monotonic()
                yield event(name, html)
        if finished:
            yield event("end", "finished")
            return
        if time.monotonic() - last_word > KEEPALIVE_SECONDS:
            last_word = time.monotonic()
            yield ": keepalive\n\n"
        if time.monotonic() - started > MAX_SECONDS or await request.is_disconnected():
            return
        await asyncio.sleep(interval)


def stream(request: Request, render: Render, interval: float, signed_in: Callable[[], bool]) -> StreamingResponse:
    """The SSE response. The page passes the digests of the parts it rendered as query parameters,
    so nothing is sent until something changes."""
    shown = {k: v for k, v in request.query_params.items() if len(v) <= 64}
    return StreamingResponse(
        _events(request, render, shown, interval, signed_in),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

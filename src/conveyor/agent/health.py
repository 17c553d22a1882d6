"""Health checks: one HTTP GET with a timeout; 2xx is healthy. Returns a short description either way."""

from __future__ import annotations

import asyncio
import contextlib


async def check_http(url: str, timeout: float) -> tuple[bool, str]:
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.rpartition(":")
    writer: asyncio.StreamWriter | None = None
    try:
        reader, stream = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        writer = stream
        stream.write(f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n".encode())
        await stream.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        body = b""
        with contextlib.suppress(TimeoutError):
            body = await asyncio.wait_for(reader.read(200), 0.5)
        text = body.decode("utf-8", "replace").strip().replace("\n", " ")[:120]
        return 200 <= status < 300, f"GET /{path}: {status} {text}".strip()
    except TimeoutError:
        return False, f"GET /{path}: no answer within {timeout:.1f}s"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        return False, f"GET /{path}: {type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.close()

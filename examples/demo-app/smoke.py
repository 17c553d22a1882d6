#!/usr/bin/env python3
"""Smoke test for the demo app: python3 smoke.py URL [--timeout SECONDS]

Passes when URL/healthz and URL/ both answer 200 and, if CONVEYOR_VERSION is set, the page shows
that version. Retries until the deadline (default 10 s), so it can run right after a rollout.
Prints one line. Exit codes: 0 passed, 1 failed, 2 usage error. Standard library only.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

POLL_INTERVAL = 0.25
REQUEST_TIMEOUT = 3.0


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes via a proxy
DEFAULT = urllib.request.build_opener()


def fetch(url: str, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "demo-app-smoke"})
    host = urllib.parse.urlsplit(url).hostname or ""
    opener = DIRECT if host in LOOPBACK_HOSTS or host.startswith("127.") else DEFAULT
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def check_once(base: str, expected_version: str, timeout: float) -> str | None:
    """One attempt; returns None when healthy, else the reason it is not."""
    try:
        status, body = fetch(base + "/healthz", timeout)
        if status != 200:
            return f"GET /healthz returned {status}: {body.strip()[:200]}"
        status, body = fetch(base + "/", timeout)
        if status != 200:
            return f"GET / returned {status}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach {base}: {reason}"
    if expected_version and expected_version not in body and html.escape(expected_version) not in body:
        return f"GET / does not show version {expected_version!r}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smoke-test a running demo app.")
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("SMOKE_TIMEOUT") or 10))
    args = parser.parse_args(argv)
    base = args.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        parser.error(f"URL must start with http:// or https:// (got {args.url!r})")
    expected = os.environ.get("CONVEYOR_VERSION", "").strip()

    started = time.monotonic()
    deadline = started + args.timeout
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        reason = check_once(base, expected, max(0.1, min(REQUEST_TIMEOUT, remaining)))
        elapsed = time.monotonic() - started
        if reason is None:
            shown = f" version={expected}" if expected else ""
            print(f"smoke ok: {base}{shown} ({attempts} attempt(s), {elapsed:.1f}s)", flush=True)
            return 0
        if time.monotonic() + POLL_INTERVAL > deadline:
            print(f"smoke FAILED: {base}: {reason} (after {attempts} attempt(s), {elapsed:.1f}s)", flush=True)
            return 1
        time.sleep(POLL_INTERVAL)  # poll interval between attempts, bounded by the deadline


if __name__ == "__main__":
    sys.exit(main())

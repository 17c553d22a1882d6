"""The demo's "new checkout flow" page, behind the feature flag `new_checkout_flow`.

The process document's pattern, with Conveyor's SDK (package conveyor-flags):

    if feature_flag('new_checkout_flow', user_id=user):
        ...new implementation...
    else:
        ...old implementation...

The SDK evaluates locally against a ruleset the server pushes over SSE. It is configured from
CONVEYOR_FLAGS_URL (default: CONVEYOR_SERVER_URL, which Conveyor sets) and CONVEYOR_FLAGS_KEY, or a
key file `flags.key` in CONVEYOR_STATE_DIR (the demo writes one per environment). Without the SDK
or a key the page shows the classic flow: a flag never breaks the app.
"""

from __future__ import annotations

import html
import os
import threading
from typing import Any

try:
    import conveyor_flags
except ImportError:  # the app also runs with a bare python3
    conveyor_flags = None

_lock = threading.Lock()
_client: Any = None


def _key() -> str:
    key = os.environ.get("CONVEYOR_FLAGS_KEY", "")
    path = os.path.join(os.environ.get("CONVEYOR_STATE_DIR", ""), "flags.key")
    if not key and os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            key = fh.read().strip()
    return key


def client() -> Any:
    """The SDK client, made once a key is there (the key file may appear after the app starts)."""
    global _client
    with _lock:
        if _client is None and conveyor_flags is not None:
            url = os.environ.get("CONVEYOR_FLAGS_URL") or os.environ.get("CONVEYOR_SERVER_URL", "")
            key = _key()
            if url and key:
                _client = conveyor_flags.Client(url, key)
        return _client


def page(user: str, version: str) -> str:
    flags = client()
    new_flow = bool(flags.feature_flag("new_checkout_flow", user_id=user, default=False)) if flags else False
    title = "New checkout flow" if new_flow else "Classic checkout"
    detail = "one page, saved cards, express pay" if new_flow else "three steps: cart, address, payment"
    state = "on" if new_flow else ("off" if flags else "off (no flags SDK or key configured)")
    return (
        "<!doctype html><meta charset=utf-8><title>Checkout</title>"
        "<body style='font-family:sans-serif;margin:3rem'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p>"
        f"<p>user <b>{html.escape(user)}</b> · flag <code>new_checkout_flow</code> is {state} · "
        f"release {html.escape(version)}</p>"
        "<p>Try <a href='?user=alice'>alice</a>, <a href='?user=bob'>bob</a>, <a href='?user=carol'>carol</a>; "
        "turn it on, roll it out or kill it with <code>conveyor flags</code> or the dashboard.</p>"
    )

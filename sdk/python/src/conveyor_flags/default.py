"""The process-wide default client behind ``conveyor_flags.feature_flag``.

Configured by ``configure(...)`` or, on the first ``feature_flag`` call, from the environment:
``CONVEYOR_FLAGS_URL``, ``CONVEYOR_FLAGS_KEY`` and optionally ``CONVEYOR_FLAGS_BOOTSTRAP``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from conveyor_flags.client import Client, log
from conveyor_flags.evaluate import Evaluation

_client: Client | None = None
_lock = threading.Lock()


def configure(
    url: str | None = None,
    sdk_key: str | None = None,
    *,
    bootstrap: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Client:
    """Create the default client (replacing and closing any previous one) and return it.

    Arguments left out come from CONVEYOR_FLAGS_URL, CONVEYOR_FLAGS_KEY, CONVEYOR_FLAGS_BOOTSTRAP.
    ``options`` are passed to ``Client`` (persist, poll_interval, stream, timeout, ready_timeout...).
    Raises ValueError for a malformed URL (this is the one call that may raise).
    """
    global _client
    client = _from_environment(url, sdk_key, bootstrap, **options)
    with _lock:
        previous, _client = _client, client
    if previous is not None:
        previous.close()
    return client


def default_client() -> Client:
    """The default client, configured from the environment on first use; never raises."""
    global _client
    client = _client
    if client is not None:
        return client
    with _lock:
        if _client is None:
            try:
                _client = _from_environment(None, None, None)
            except Exception as exc:
                log.warning("conveyor_flags: cannot configure from the environment (%s); serving defaults", exc)
                _client = Client(None, None, start=False)
        return _client


def _from_environment(
    url: str | None, sdk_key: str | None, bootstrap: str | os.PathLike[str] | None, **options: Any
) -> Client:
    env = os.environ
    return Client(
        url or env.get("CONVEYOR_FLAGS_URL") or None,
        sdk_key or env.get("CONVEYOR_FLAGS_KEY") or None,
        bootstrap=bootstrap or env.get("CONVEYOR_FLAGS_BOOTSTRAP") or None,
        **options,
    )


def feature_flag(key: str, user_id: Any = None, default: Any = False, **attributes: Any) -> Any:
    """The value of flag ``key`` for this user and attributes, evaluated locally; never raises.

        if feature_flag("new_checkout_flow", user_id=user.id, country=user.country):
            ...

    On any error (unknown flag, wrong type, no ruleset yet) it returns ``default`` and logs once.
    """
    try:
        client = _client or default_client()
        if user_id is not None:
            attributes["user_id"] = user_id
        return client.evaluate(key, attributes, default).value
    except Exception:
        return default


def feature_flag_details(key: str, user_id: Any = None, default: Any = False, **attributes: Any) -> Evaluation:
    """Like ``feature_flag`` but returns the whole Evaluation (value, variant, reason, error_code)."""
    if user_id is not None:
        attributes["user_id"] = user_id
    return default_client().evaluate(key, attributes, default)

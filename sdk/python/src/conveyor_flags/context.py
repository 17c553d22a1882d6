"""The request's flag context, set once and used by every flag check (Unleash's context provider).

    from conveyor_flags import flag_context, feature_flag

    with flag_context(user_id=request.user.id, country=request.country):   # in a middleware
        ...
        feature_flag("new_checkout_flow")        # evaluated for that user and country

The context lives in a ``contextvars.ContextVar``, so each thread and each asyncio task sees its own:
two concurrent requests never mix their users. Nested ``flag_context`` blocks add to (and override)
the outer one; attributes passed to ``feature_flag`` itself win over both. Leaving the block
restores what was there before. ``set_flag_context`` / ``reset_flag_context`` are the same without a
``with`` (for frameworks whose middleware has separate before/after hooks).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

__all__ = ["current_flag_context", "flag_context", "reset_flag_context", "set_flag_context"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CURRENT: ContextVar[Mapping[str, Any]] = ContextVar("conveyor_flags_context", default=_EMPTY)


def current_flag_context() -> Mapping[str, Any]:
    """The attributes set by the enclosing ``flag_context`` blocks (read-only; empty outside)."""
    return _CURRENT.get()


def set_flag_context(**attributes: Any) -> Token[Mapping[str, Any]]:
    """Add ``attributes`` to the current context; pass the returned token to ``reset_flag_context``."""
    return _CURRENT.set(MappingProxyType({**_CURRENT.get(), **attributes}))


def reset_flag_context(token: Token[Mapping[str, Any]]) -> None:
    """Restore the context as it was before the ``set_flag_context`` that returned ``token``."""
    _CURRENT.reset(token)


@contextmanager
def flag_context(**attributes: Any) -> Iterator[Mapping[str, Any]]:
    """Evaluate every flag inside the block with ``attributes`` (``user_id``, ``session_id``, ...)."""
    token = set_flag_context(**attributes)
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def with_current(context: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``context`` over the current flag context (explicit attributes win)."""
    current = _CURRENT.get()
    if not current:
        return context
    if not context:
        return current
    return {**current, **context}

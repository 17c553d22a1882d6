"""Incoming GitHub webhooks: signature check and push events."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.errors import InvalidInput

_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_BRANCH_PREFIX = "refs/heads/"


def verify_github_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` (``X-Hub-Signature-256``) is the HMAC-SHA256 of the raw ``body``.

    A missing or malformed header, or an empty secret, is False; this never raises.
    """
    try:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        match = _SIGNATURE.fullmatch(header.strip()) if isinstance(header, str) else None
        if not key or match is None:
            return False
        expected = hmac.new(key, bytes(body), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, match.group(1).lower())
    except Exception:
        return False


@dataclass(frozen=True)
class PushEvent:
    """What Conveyor needs from a GitHub ``push`` event."""

    repository: str  # full_name, e.g. "octo-org/shop"
    clone_url: str
    ssh_url: str
    html_url: str
    ref: str  # e.g. "refs/heads/main" or "refs/tags/v1.2.0"
    branch: str | None  # "main"; None when the ref is not a branch
    after: str  # the new head SHA (all zeros when deleted)
    deleted: bool
    pusher: str

    @property
    def tag(self) -> str | None:
        """The tag name when a tag was pushed, else None."""
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None


def _field(payload: Mapping[str, Any], path: str, kind: type) -> Any:
    """The value at dotted ``path``; InvalidInput naming the field when missing or of the wrong type."""
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise InvalidInput(f"push event has no '{path}' field", fix="send the full GitHub push event payload")
        value = value[key]
    if not isinstance(value, kind):
        raise InvalidInput(
            f"push event field '{path}' should be a {kind.__name__}, not {type(value).__name__}",
            fix="send the full GitHub push event payload",
        )
    return value


def parse_push_event(payload: Mapping[str, Any]) -> PushEvent:
    """Read a GitHub ``push`` event payload (already JSON-decoded)."""
    if not isinstance(payload, Mapping):
        raise InvalidInput("push event payload should be a JSON object", fix="send the GitHub push event")
    ref = _field(payload, "ref", str)
    after = _field(payload, "after", str)
    deleted = payload.get("deleted")
    return PushEvent(
        repository=_field(payload, "repository.full_name", str),
        clone_url=_field(payload, "repository.clone_url", str),
        ssh_url=_field(payload, "repository.ssh_url", str),
        html_url=_field(payload, "repository.html_url", str),
        ref=ref,
        branch=ref.removeprefix(_BRANCH_PREFIX) if ref.startswith(_BRANCH_PREFIX) else None,
        after=after,
        deleted=deleted if isinstance(deleted, bool) else set(after) == {"0"},
        pusher=_field(payload, "pusher.name", str),
    )

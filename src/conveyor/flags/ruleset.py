"""The ruleset one service's environment serves (docs/flags-ruleset.md), built from the database,
and a cache of compiled rulesets keyed by the stored version: a restart loses nothing but the cache."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from conveyor.errors import InvalidInput
from conveyor.flags import segment_store, store
from conveyor.flags.evaluate import Ruleset, compile_ruleset
from conveyor.flags.model import Definition, EnvState, dump


@dataclass(frozen=True)
class Scope:
    """What an SDK key reads: one service's flags in one of its environments."""

    service_id: int
    service: str
    environment: str


@dataclass(frozen=True)
class Snapshot:
    scope: Scope
    version: int
    document: dict[str, Any]
    text: str  # the document as compact JSON, one line (SSE data, the ruleset endpoint)
    ruleset: Ruleset

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def flag_entry(key: str, service: str, definition: Definition, state: EnvState) -> dict[str, Any]:
    d, s = dump(definition), dump(state)
    return {
        "key": key,
        "service": service,
        "type": d["type"],
        "enabled": s["enabled"],
        "default": d["default"],
        "on_value": d["on_value"],
        "variants": d["variants"],
        "strategies": s["strategies"],
        # Unleash's variant stickiness and dependent flags, only when used: the document stays small
        **({"variant_stickiness": d["variant_stickiness"]} if d["variant_stickiness"] != "default" else {}),
        **({"dependencies": d["dependencies"]} if d["dependencies"] else {}),
    }


def build_document(conn: Connection, scope: Scope) -> dict[str, Any]:
    """Every flag of the service as the environment serves it. The version is read first, so a
    document is never labelled newer than its content."""
    version = store.ruleset_version(conn, scope.service_id, scope.environment)
    flags = store.list_flags(conn, scope.service_id)
    states = store.get_states(conn, [f.id for f in flags])
    entries = {}
    for f in flags:
        state = states.get((f.id, scope.environment))
        entries[f.key] = flag_entry(f.key, f.service, f.definition, state.state if state else EnvState())
    document: dict[str, Any] = {"environment": scope.environment, "version": version, "flags": entries}
    segments = segment_store.ruleset_segments(conn, scope.service_id)
    if segments:  # only when the service has any: the document stays small
        document["segments"] = segments
    return document


def check_evaluable(
    key: str, service: str, definition: Definition, state: EnvState, segments: dict[str, Any] | None = None
) -> None:
    """Refuse a definition or state the evaluator would answer with an error (PARSE_ERROR,
    TYPE_MISMATCH): what the server accepts, every SDK can evaluate. A strategy must name
    segments of the service (``segments``, as the ruleset carries them)."""
    known = segments or {}
    for i, strategy in enumerate(state.strategies, 1):
        missing = [s for s in strategy.segments if str(s) not in known]
        if missing:
            raise InvalidInput(
                f"strategy {i} of flag {service}/{key} names segment ids {missing}, which service {service!r} "
                "does not have",
                fix="list the service's segments with `conveyor flags segment list`",
            )
    entry = flag_entry(key, service, definition, state.model_copy(update={"enabled": True}))
    document = {"environment": "check", "version": 0, "flags": {key: entry}, "segments": known}
    result = compile_ruleset(document).evaluate(key, {}, None)
    if result.error_code is not None:
        raise InvalidInput(
            f"flag {service}/{key} cannot be evaluated: {result.error_message or result.error_code}",
            fix="see docs/flags-ruleset.md for the ruleset format",
        )


class RulesetCache:
    """Compiled rulesets by scope. ``get`` reads the stored version (one small query) and rebuilds
    only when it moved, so every process serves what the database says."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[Scope, Snapshot] = {}

    def get(self, conn: Connection, scope: Scope) -> Snapshot:
        version = store.ruleset_version(conn, scope.service_id, scope.environment)
        with self._lock:
            cached = self._items.get(scope)
        if cached is not None and cached.version == version:
            return cached
        document = build_document(conn, scope)
        snapshot = Snapshot(
            scope,
            int(document["version"]),
            document,
            json.dumps(document, separators=(",", ":"), sort_keys=True),
            compile_ruleset(document),
        )
        with self._lock:
            current = self._items.get(scope)
            if current is None or current.version <= snapshot.version:
                self._items[scope] = snapshot
        return snapshot

"""OFREP evaluation routes (POST /ofrep/v1/evaluate/flags[/{key}]): the hot path of remote flag
evaluation, plain ASGI endpoints under Starlette's router, without FastAPI's dependency and
validation machinery and without a Request object.

A request does no database work while its SDK key and its environment's ruleset are fresh in
memory (flags/keys.py ``CACHE``, flags/live.py ``Live.fresh``): a revocation or a flag change in
this process is seen by the next request; one made through another server sharing the database
within a second. A single evaluation whose answer is a pure function of the ruleset version, the
flag key and the request body (``ofrep.answer_one``) is kept encoded on that version's ``Served``,
so the same request again is answered without parsing, evaluating or encoding. Outside the
official OFREP document (/ofrep/v1 is checked against it), so these routes are not in Conveyor's
own OpenAPI document.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from conveyor.flags import keys, ofrep
from conveyor.flags.live import Live, live_of
from conveyor.flags.ruleset import Scope as FlagScope
from conveyor.flags.ruleset import Snapshot
from conveyor.runtime import Runtime

SINGLE = "/ofrep/v1/evaluate/flags/{key:path}"  # a key with %2F reaches the route: 404 FLAG_NOT_FOUND
BULK = "/ofrep/v1/evaluate/flags"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
WANTED = frozenset({b"x-api-key", b"authorization", b"if-none-match"})
JSON_TYPE = (b"content-type", b"application/json")
CACHED_BODY_BYTES = 4096  # longer request bodies are evaluated every time
CACHED_ANSWERS = 10_000  # per ruleset version; emptied when full
CACHED_TOTAL = 100_000  # in every scope together (a few tens of MB at most); all emptied when reached
_cached = [0]  # answers kept since all were last emptied (an upper bound: dropped versions are not subtracted)

# (status, body, headers other than content-length and content-type) of an encoded answer
Encoded = tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]


def _load_key(rt: Runtime, key: str | None) -> keys.SdkKey:
    with rt.db.read() as conn:
        return keys.CACHE.load(conn, key)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers OFREP reads (raw, lower-case names; the first of each wins)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in WANTED and name not in found:
            found[name] = value
    return found


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _serving(scope: Scope, headers: dict[bytes, bytes]) -> tuple[ofrep.Served, Live]:
    """The caller's SDK key (401 if not live) and its environment's ruleset, from memory if fresh."""
    state = scope["app"].state
    raw_key = keys.key_from_headers(_text(headers.get(b"x-api-key")), _text(headers.get(b"authorization")))
    sdk = keys.CACHE.get(raw_key)
    if sdk is None:
        sdk = await run_in_threadpool(_load_key, state.runtime, raw_key)
    live: Live = getattr(state, "conveyor_flags", None) or live_of(state, state.runtime)
    scopes = live.scopes  # by SDK key id (one database per app): a key's scope never changes
    flag_scope = scopes.get(sdk.id)
    if flag_scope is None:
        if len(scopes) > 10_000:
            scopes.clear()
        flag_scope = scopes[sdk.id] = FlagScope(sdk.service_id, sdk.service, sdk.environment)
    snapshot = live.fresh(flag_scope)
    if snapshot is None:
        snapshot = await run_in_threadpool(live.snapshot, flag_scope)
    return _served(live, snapshot), live


def _served(live: Live, snapshot: Snapshot) -> ofrep.Served:
    ident = (snapshot.scope, snapshot.version)
    found = live.served.get(ident)
    if found is None or found.ruleset is not snapshot.ruleset:
        # one Served per scope: an older version's (and its cached answers) goes
        for old in [k for k in live.served if k[0] == snapshot.scope]:
            live.served.pop(old, None)
        if len(live.served) > 1000:
            live.served.clear()
        scope = snapshot.scope
        metadata = {"service": scope.service, "environment": scope.environment, "version": snapshot.version}
        found = live.served[ident] = ofrep.served(snapshot.ruleset, snapshot.document, metadata)
    assert isinstance(found, ofrep.Served)
    return found


async def _body(receive: Receive) -> bytes:
    """The request body (BodyLimit, outside, refuses one that is too large)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _encoded(answer: ofrep.Answer) -> Encoded:
    headers = tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items())
    if answer.body is None:
        return answer.status, b"", headers
    return answer.status, _dumps(answer.body).encode(), headers


async def _send(send: Send, encoded: Encoded) -> None:
    """The answer as two ASGI messages; a new header list each time (middleware adds to it)."""
    status, content, extra = encoded
    headers = [*extra]
    if status != 304:
        headers.append((b"content-length", str(len(content)).encode("latin-1")))
        if content:
            headers.append(JSON_TYPE)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _keep(live_served: dict[Any, Any], answers: dict[tuple[str, bytes], Any], ident: Any, encoded: Encoded) -> None:
    if len(answers) >= CACHED_ANSWERS:
        _cached[0] -= len(answers)
        answers.clear()
    if _cached[0] >= CACHED_TOTAL:
        for served in list(live_served.values()):
            served.answers.clear()
        _cached[0] = 0
    answers[ident] = encoded
    _cached[0] += 1


async def evaluate(scope: Scope, receive: Receive, send: Send) -> None:
    """OFREP single flag evaluation: ``{"context": {...}}`` in, value/reason/variant out."""
    serving, live = await _serving(scope, _headers(scope))
    raw = await _body(receive)
    key: str = scope["path_params"]["key"]
    answers: dict[tuple[str, bytes], Any] = serving.answers
    ident = (key, raw)
    encoded = answers.get(ident)
    if encoded is None:
        answer, pure = ofrep.answer_one(serving, key, raw)
        encoded = _encoded(answer)
        if pure and len(raw) <= CACHED_BODY_BYTES:
            _keep(live.served, answers, ident, encoded)
    await _send(send, encoded)


async def bulk(scope: Scope, receive: Receive, send: Send) -> None:
    """OFREP bulk evaluation of every flag of the environment; ETag and 304 on If-None-Match."""
    headers = _headers(scope)
    serving, _ = await _serving(scope, headers)
    raw = await _body(receive)
    await _send(send, _encoded(ofrep.evaluate_bulk(serving, raw, _text(headers.get(b"if-none-match")))))


class _Asgi:
    """Starlette calls an endpoint that is not a function as an ASGI app (no Request, no wrapper)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.__doc__ = handler.__doc__

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(scope, receive, send)


ROUTES = [
    Route(SINGLE, _Asgi(evaluate), methods=["POST"], name="ofrep_evaluate", include_in_schema=False),
    Route(BULK, _Asgi(bulk), methods=["POST"], name="ofrep_bulk", include_in_schema=False),
]

"""OFREP evaluation routes (POST /ofrep/v1/evaluate/flags[/{key}]): the hot path of remote flag
evaluation, plain Starlette routes without FastAPI's dependency and validation machinery.

A request does no database work while its SDK key and its environment's ruleset are fresh in
memory (flags/keys.py ``CACHE``, flags/live.py ``Live.fresh``): a revocation or a flag change in
this process is seen by the next request; one made through another server sharing the database
within a second. Outside the official OFREP document (/ofrep/v1 is checked against it), so these
routes are not in Conveyor's own OpenAPI document.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.flags import keys, ofrep
from conveyor.flags.live import Live, live_of
from conveyor.flags.ruleset import Scope, Snapshot
from conveyor.runtime import Runtime

SINGLE = "/ofrep/v1/evaluate/flags/{key:path}"  # a key with %2F reaches the route: 404 FLAG_NOT_FOUND
BULK = "/ofrep/v1/evaluate/flags"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _load_key(rt: Runtime, key: str | None) -> keys.SdkKey:
    with rt.db.read() as conn:
        return keys.CACHE.load(conn, key)


def _headers(request: Request) -> dict[bytes, bytes]:
    """The request headers OFREP reads (raw, lower-case names; the first of each wins)."""
    found: dict[bytes, bytes] = {}
    for name, value in request.scope["headers"]:
        if name in WANTED and name not in found:
            found[name] = value
    return found


WANTED = frozenset({b"x-api-key", b"authorization", b"if-none-match"})


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _serving(request: Request, headers: dict[bytes, bytes]) -> ofrep.Served:
    """The caller's SDK key (401 if not live) and its environment's ruleset, from memory if fresh."""
    rt: Runtime = request.app.state.runtime
    raw_key = keys.key_from_headers(_text(headers.get(b"x-api-key")), _text(headers.get(b"authorization")))
    sdk = keys.CACHE.get(raw_key)
    if sdk is None:
        sdk = await run_in_threadpool(_load_key, rt, raw_key)
    state = request.app.state
    live: Live = getattr(state, "conveyor_flags", None) or live_of(state, rt)
    scopes = live.scopes  # by SDK key id (one database per app): a key's scope never changes
    scope = scopes.get(sdk.id)
    if scope is None:
        if len(scopes) > 10_000:
            scopes.clear()
        scope = scopes[sdk.id] = Scope(sdk.service_id, sdk.service, sdk.environment)
    snapshot = live.fresh(scope)
    if snapshot is None:
        snapshot = await run_in_threadpool(live.snapshot, scope)
    return _served(live, snapshot)


def _served(live: Live, snapshot: Snapshot) -> ofrep.Served:
    ident = (snapshot.scope, snapshot.version)
    found = live.served.get(ident)
    if found is None or found.ruleset is not snapshot.ruleset:
        if len(live.served) > 1000:
            live.served.clear()
        scope = snapshot.scope
        metadata = {"service": scope.service, "environment": scope.environment, "version": snapshot.version}
        found = live.served[ident] = ofrep.served(snapshot.ruleset, snapshot.document, metadata)
    assert isinstance(found, ofrep.Served)
    return found


def _response(answer: ofrep.Answer) -> Response:
    if answer.body is None:
        return Response(status_code=answer.status, headers=answer.headers)
    content = _dumps(answer.body).encode()
    return Response(content, answer.status, answer.headers or None, "application/json")


async def evaluate(request: Request) -> Response:
    """OFREP single flag evaluation: ``{"context": {...}}`` in, value/reason/variant out."""
    serving = await _serving(request, _headers(request))
    raw = await request.body()
    return _response(ofrep.evaluate_one(serving, request.path_params["key"], raw))


async def bulk(request: Request) -> Response:
    """OFREP bulk evaluation of every flag of the environment; ETag and 304 on If-None-Match."""
    headers = _headers(request)
    serving = await _serving(request, headers)
    raw = await request.body()
    return _response(ofrep.evaluate_bulk(serving, raw, _text(headers.get(b"if-none-match"))))


ROUTES = [
    Route(SINGLE, evaluate, methods=["POST"], name="ofrep_evaluate", include_in_schema=False),
    Route(BULK, bulk, methods=["POST"], name="ofrep_bulk", include_in_schema=False),
]

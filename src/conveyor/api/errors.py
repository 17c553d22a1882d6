"""ConveyorError -> HTTP response, in one place. The status is the error class's ``http_status``
(``conveyor/errors.py``); the body is always {"error": kind, "message", "fix"}, plus "problems" for a
conveyor.yml. The OpenAPI document declares these statuses on every operation, so clients and
fuzzers know them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from conveyor.errors import ConveyorError
from conveyor.spec import SpecError


async def conveyor_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConveyorError)
    body: dict[str, object] = {"error": exc.kind, "message": exc.message, "fix": exc.fix}
    status = exc.http_status
    if isinstance(exc, SpecError):
        body["problems"] = [str(p) for p in exc.problems]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def value_out_of_range(_request: Request, exc: Exception) -> JSONResponse:
    """A value the database cannot store or compare (a NUL byte in PostgreSQL text, an integer past
    64 bits in SQLite), or a date past year 9999: bad input, named by the driver's first line."""
    cause = exc.orig if isinstance(exc, DataError) else exc
    detail = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    body = {
        "error": "invalid",
        "message": f"a value in the request cannot be stored: {detail}",
        "fix": "send text without NUL bytes, numbers below 2**63 and dates before year 9999",
    }
    return JSONResponse(body, status_code=400)


# every status an operation can answer besides its own: from ConveyorError above, the request
# limits (api/limits.py), and FastAPI's own refusals (400 for a body it cannot parse, 422)
DECLARED = {
    400: "Invalid input: a bad value, a body that is not JSON, a control character in the URL",
    401: "No token, or not a valid one",
    403: "The caller's roles do not allow this",
    404: "No such service, environment, deployment, flag, user or token",
    409: "Conflicts with the current state (e.g. already finished, already exists)",
    413: "Request body over CONVEYOR_MAX_BODY_BYTES",
    414: "URL over 8 KiB",
    422: "A body or parameter that does not match its schema, or a conveyor.yml with problems",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "invalid, not_found, unauthorized, forbidden, conflict, ..."},
        "message": {"type": "string", "description": "what is wrong, naming the bad value"},
        "fix": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "what to do about it"},
        "problems": {"type": "array", "items": {"type": "string"}, "description": "FILE:LINE:COL: message"},
    },
}
FASTAPI_ERROR = {"type": "object", "properties": {"detail": {}}, "required": ["detail"]}


def declare_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add DECLARED to every operation of an OpenAPI document that lacks them (in place)."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    either = {"anyOf": [{"$ref": "#/components/schemas/Error"}, FASTAPI_ERROR]}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, description in DECLARED.items():
                existing = responses.get(str(status))
                if existing is None:
                    entry: dict[str, Any] = {"description": description}
                    if path.startswith("/api/"):  # OFREP and /metrics answer in their own formats
                        entry["content"] = {"application/json": {"schema": either}}
                    responses[str(status)] = entry
                elif status == 422 and path.startswith("/api/"):  # FastAPI's validation error, or a SpecError
                    content = existing.setdefault("content", {}).setdefault("application/json", {})
                    content["schema"] = {"anyOf": [content.get("schema", FASTAPI_ERROR), either]}
    return schema


def install(app: FastAPI) -> None:
    app.add_exception_handler(ConveyorError, conveyor_error)
    app.add_exception_handler(DataError, value_out_of_range)
    app.add_exception_handler(OverflowError, value_out_of_range)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

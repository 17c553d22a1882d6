"""ConveyorError -> HTTP, in one place. The body is always {"error": kind, "message", "fix"}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from conveyor.errors import ConveyorError
from conveyor.spec import SpecError

STATUS = {
    "invalid": 400,
    "not_found": 404,
    "unauthorized": 401,
    "forbidden": 403,
    "conflict": 409,
    "error": 500,
}


async def conveyor_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConveyorError)
    body: dict[str, object] = {"error": exc.kind, "message": exc.message, "fix": exc.fix}
    status = STATUS.get(exc.kind, 500)
    if isinstance(exc, SpecError):
        body["problems"] = [str(p) for p in exc.problems]
        status = 422
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


def install(app: FastAPI) -> None:
    app.add_exception_handler(ConveyorError, conveyor_error)
    app.add_exception_handler(DataError, value_out_of_range)
    app.add_exception_handler(OverflowError, value_out_of_range)

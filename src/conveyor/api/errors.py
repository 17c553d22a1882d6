"""ConveyorError -> HTTP, in one place. The body is always {"error": kind, "message", "fix"}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


def install(app: FastAPI) -> None:
    app.add_exception_handler(ConveyorError, conveyor_error)

"""Each error class carries its HTTP status and CLI exit code; the API, the dashboard and the CLI
answer with them. The figures are the contract (DESIGN.md, docs/cli.md): they must not move."""

from __future__ import annotations

import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conveyor.api.errors import install
from conveyor.cli.output import handles_errors
from conveyor.errors import Conflict, ConveyorError, Forbidden, InvalidInput, NotFound, Unauthorized
from conveyor.spec import Problem, SpecError

CONTRACT: list[tuple[type[ConveyorError], str, int, int]] = [
    (ConveyorError, "error", 500, 1),
    (InvalidInput, "invalid", 400, 1),
    (NotFound, "not_found", 404, 1),
    (Unauthorized, "unauthorized", 401, 1),
    (Forbidden, "forbidden", 403, 1),
    (Conflict, "conflict", 409, 1),
    (SpecError, "invalid", 422, 1),
]


def _raise(cls: type[ConveyorError]) -> ConveyorError:
    if cls is SpecError:
        return SpecError([Problem("conveyor.yml", 3, 5, "unknown key 'brnach'")])
    return cls("the bad value", fix="the fix")


@pytest.mark.parametrize(("cls", "kind", "status", "code"), CONTRACT, ids=[c[0].__name__ for c in CONTRACT])
def test_each_class_carries_its_status_and_exit_code(
    cls: type[ConveyorError], kind: str, status: int, code: int
) -> None:
    assert (cls.kind, cls.http_status, cls.exit_code) == (kind, status, code)


@pytest.mark.parametrize(("cls", "kind", "status", "code"), CONTRACT, ids=[c[0].__name__ for c in CONTRACT])
def test_the_api_answers_the_class_status(cls: type[ConveyorError], kind: str, status: int, code: int) -> None:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    def boom() -> None:
        raise _raise(cls)

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == status
    assert response.json()["error"] == kind
    assert ("WWW-Authenticate" in response.headers) == (status == 401)
    if cls is SpecError:
        assert response.json()["problems"] == ["conveyor.yml:3:5: unknown key 'brnach'"]


@pytest.mark.parametrize(("cls", "kind", "status", "code"), CONTRACT, ids=[c[0].__name__ for c in CONTRACT])
def test_the_cli_exits_with_the_class_exit_code(cls: type[ConveyorError], kind: str, status: int, code: int) -> None:
    app = typer.Typer()

    @app.command()
    @handles_errors
    def boom() -> None:
        raise _raise(cls)

    result = CliRunner().invoke(app, [])
    assert result.exit_code == code
    assert result.stdout == ""


def test_a_usage_error_exits_2() -> None:
    from conveyor.cli.main import app

    assert CliRunner().invoke(app, ["deploy"]).exit_code == 2
    assert CliRunner().invoke(app, ["deploy", "production", "--no-such-option"]).exit_code == 2

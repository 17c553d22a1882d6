"""The app's routes are added as declared (conveyor/app.py ``add_routes``), not through
``include_router``: FastAPI would build every route's parameters and models again for the router's
wrapper on the first request (a quarter of a server's start). Straight from the app: no server."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from starlette.routing import Mount, Route

from conveyor.app import add_routes, create_app
from conveyor.runtime import Runtime
from conveyor.settings import Settings
from conveyor.store.db import Database


def test_every_route_of_the_app_is_a_route_built_once() -> None:
    app = create_app(Runtime(settings=Settings(home=Path("/nonexistent/conveyor-routes")), db=Database("sqlite://")))
    wrapped = [r for r in app.router.routes if not isinstance(r, Route | Mount)]
    assert not wrapped, f"routes behind a router wrapper: {wrapped}"
    paths = [r.path for r in app.router.routes if isinstance(r, Route)]
    # the order of matching is the declared order: OFREP's hot path first, the dashboard's output
    # section before the service page's routes, health after the API
    assert paths[0].startswith("/ofrep/v1/")
    assert paths.index("/services/{name}/output/{environment}") < paths.index("/services/{name}")
    assert paths.index("/api/v1/deployments") < paths.index("/api/v1/health")


def test_a_router_inside_a_router_is_refused_with_what_to_do() -> None:
    inner, outer = APIRouter(prefix="/inner"), APIRouter(prefix="/outer")

    @inner.get("/x")
    def x() -> dict[str, str]:
        return {}

    outer.include_router(inner)
    with pytest.raises(TypeError, match="list its router beside it instead"):
        add_routes(FastAPI(), outer)

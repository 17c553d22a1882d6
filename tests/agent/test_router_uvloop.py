"""The built-in router's tests again on uvloop, the loop the agent runs on when uvloop is
installed (conveyor.agent.main.run_loop): the protocol fast path and the move of a connection
onto streams (transport.set_protocol) must behave the same on both loops."""

from __future__ import annotations

import asyncio

import pytest

uvloop = pytest.importorskip("uvloop")

from tests.agent.test_router import *  # noqa: E402, F403
from tests.agent.test_smuggling import *  # noqa: E402, F403

# pytest-asyncio's replacement (a pytest_asyncio_loop_factories hook) lives in a conftest and would
# run every test on both loops; this module only wants its own tests on uvloop
pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture:DeprecationWarning')


@pytest.fixture(scope="module")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    return uvloop.EventLoopPolicy()  # type: ignore[no-any-return]


async def test_these_tests_run_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)

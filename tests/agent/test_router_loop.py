"""conveyor.agent.main.run_loop: the agent's loop (and so its routers) runs on uvloop when it is
installed, and on asyncio's own loop when it is not."""

from __future__ import annotations

import asyncio
import sys

import pytest

from conveyor.agent.main import run_loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_run_loop_uses_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert run_loop(_loop_module()).startswith("uvloop")


def test_run_loop_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert run_loop(_loop_module()).startswith("asyncio")

"""The agent's loop: uvloop when installed, asyncio's own when instances run as another user (uvloop's
subprocesses refuse Popen's user/group, which switch the account in the child)."""

from __future__ import annotations

import asyncio
import os

import pytest

from conveyor.agent.main import run_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_agent_runs_on_uvloop_when_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert run_loop(_loop_module()).startswith("uvloop")


def test_an_agent_that_switches_users_runs_on_asyncio_and_its_instances_get_the_user() -> None:
    assert run_loop(_loop_module(), switches_user=True).startswith("asyncio")
    if os.geteuid() != 0:
        pytest.skip("switching users needs root (CI runs as root)")

    async def whoami() -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "id", "-u", user=65534, group=65534, extra_groups=[], stdout=asyncio.subprocess.PIPE
        )
        return (await proc.communicate())[0]

    assert run_loop(whoami(), switches_user=True).strip() == b"65534"

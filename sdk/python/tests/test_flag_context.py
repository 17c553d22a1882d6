"""flag_context: the request's user set once (Unleash's context provider), isolated per thread and
per asyncio task; and a default-stickiness rollout without a user or session id is random per
evaluation, as in Unleash."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from conveyor_flags import (
    Client,
    compile_ruleset,
    current_flag_context,
    flag_context,
    reset_flag_context,
    set_flag_context,
)

RULESET = {
    "environment": "production",
    "version": 1,
    "flags": {
        "beta": {
            "type": "boolean",
            "enabled": True,
            "default": False,
            "strategies": [
                {"constraints": [{"attribute": "user_id", "operator": "IN", "values": ["42"]}]},
                {"constraints": [{"attribute": "plan", "operator": "IN", "values": ["pro"]}]},
            ],
        },
        "half": {"type": "boolean", "enabled": True, "default": False, "strategies": [{"rollout": 50}]},
    },
}


@pytest.fixture
def client(tmp_path: Path) -> Any:
    bootstrap = tmp_path / "flags.json"
    bootstrap.write_text(json.dumps(RULESET))
    with Client(None, bootstrap=bootstrap) as offline:
        yield offline


def test_context_applies_inside_the_block_only(client: Client) -> None:
    assert client.feature_flag("beta") is False
    with flag_context(user_id="42") as ctx:
        assert dict(ctx) == {"user_id": "42"}
        assert client.feature_flag("beta") is True
        assert client.feature_flag("beta", user_id="7") is False  # explicit arguments win
        with flag_context(user_id="7", plan="pro"):
            assert current_flag_context() == {"user_id": "7", "plan": "pro"}
            assert client.feature_flag("beta") is True  # through plan
        assert current_flag_context() == {"user_id": "42"}
    assert client.feature_flag("beta") is False
    assert current_flag_context() == {}


def test_set_and_reset_without_with(client: Client) -> None:
    token = set_flag_context(user_id="42")
    try:
        assert client.evaluate("beta").value is True
    finally:
        reset_flag_context(token)
    assert client.evaluate("beta").value is False


def test_threads_do_not_share_a_context(client: Client) -> None:
    barrier = threading.Barrier(2, timeout=30)
    seen: dict[str, list[bool]] = {}

    def request(user: str) -> None:
        with flag_context(user_id=user):
            barrier.wait()  # both requests are inside their blocks at once
            seen[user] = [client.feature_flag("beta") for _ in range(50)]
            barrier.wait()

    threads = [threading.Thread(target=request, args=(u,)) for u in ("42", "7")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen == {"42": [True] * 50, "7": [False] * 50}


def test_asyncio_tasks_do_not_share_a_context(client: Client) -> None:
    async def request(user: str, started: asyncio.Event, other: asyncio.Event) -> list[bool]:
        with flag_context(user_id=user):
            started.set()
            await other.wait()
            return [client.feature_flag("beta") for _ in range(10)]

    async def main() -> list[list[bool]]:
        a, b = asyncio.Event(), asyncio.Event()
        return list(await asyncio.gather(request("42", a, b), request("7", b, a)))

    assert asyncio.run(main()) == [[True] * 10, [False] * 10]


def test_default_stickiness_without_user_or_session_is_random_per_evaluation() -> None:
    ruleset = compile_ruleset(RULESET)
    anonymous = [ruleset.evaluate("half", {}, False).value for _ in range(400)]
    assert True in anonymous and False in anonymous  # 2 * 0.5**400: never flaky
    for who in ({"user_id": "u1"}, {"session_id": "s9"}):
        answers = {ruleset.evaluate("half", who, False).value for _ in range(50)}
        assert len(answers) == 1  # a user or session id makes it stable

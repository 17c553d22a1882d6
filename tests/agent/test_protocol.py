"""The agent's wire format (agent/protocol.py) against a real agent: the typed client sends the
protocol's requests and every answer parses into its model with no key the model leaves out; the
client finds the agent once per agent start and says "no agent" when it has gone."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from tests.conftest import wait_until

from conveyor.agent import client as agent_client
from conveyor.agent.client import (
    AgentClient,
    ensure_agent,
    environment_key,
    environment_state,
    find_agent,
    instance_output,
)
from conveyor.agent.protocol import (
    AgentHealth,
    EnvironmentConfig,
    EnvironmentState,
    HealthBody,
    InstanceOutput,
    MaintenanceBody,
    Operation,
    OperationBody,
    ReleaseBody,
    SwitchBody,
)

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-app"
COMMAND = f"exec {shlex.quote(sys.executable)} app.py"  # PORT comes from the environment
KEY = environment_key("shop", "production")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def undeclared(value: Any) -> list[str]:
    if isinstance(value, BaseModel):
        found = list(value.model_extra or {})
        return found + [k for name in type(value).model_fields for k in undeclared(getattr(value, name))]
    if isinstance(value, list):
        return [k for item in value for k in undeclared(item)]
    return []


def stop(home: Path) -> None:
    info = home / "agent" / "agent.json"
    if info.exists():
        os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)
        wait_until(lambda: not info.exists(), what="the agent to stop")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in [k for k in os.environ if k.startswith("CONVEYOR_")]:
        monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    try:
        yield home
    finally:
        stop(home)


def release(version: str) -> ReleaseBody:
    return ReleaseBody(version=version, sha=version.ljust(40, "0"), workdir=str(DEMO_APP), command=COMMAND)


def test_the_typed_client_speaks_the_protocol(home: Path) -> None:
    agent = ensure_agent(home)
    assert environment_key("shop", "production") == "shop.production"
    assert agent.health().pid > 0

    configured = agent.configure(KEY, EnvironmentConfig(port=free_port()))
    assert configured.active is None and not configured.maintenance
    body = OperationBody(
        id="op-1",
        release=release("v1.0.0"),
        health=HealthBody(interval=0.05, successes=1, timeout=15),
    )
    op = agent.operate(KEY, body)
    assert agent.operate(KEY, body).id == op.id == "op-1"  # the same id attaches to the same operation
    op = wait_until(lambda: (o := agent.operation(KEY, "op-1")).state != "running" and o, what="the deploy")
    assert op.state == "succeeded", op.log

    state = agent.state(KEY)
    assert state.active is not None and state.active.serving("v1.0.0", "v1.0.0".ljust(40, "0"))
    assert not state.active.serving("v2.0.0", "v1.0.0".ljust(40, "0"))
    assert state.rotation == [i.id for i in state.active.instances]

    not_warm = SwitchBody(id="op-2", version="v0.9.0", sha="0" * 40)
    assert agent.switch(KEY, not_warm) is None  # 409: nothing warm to switch to
    assert agent.cancel(KEY, "op-1").state == "succeeded"  # cancelling a finished operation changes nothing
    assert agent.maintenance(KEY, MaintenanceBody(on=True)).maintenance
    assert not agent.maintenance(KEY, MaintenanceBody(on=False)).maintenance

    output = agent.output(KEY, 5)
    assert [i.role for i in output] == ["active"] and output[0].lines_seen >= len(output[0].lines)
    assert agent.output(environment_key("shop", "nowhere"), 5) == []  # never configured: no instances


def test_every_agent_answer_is_declared_by_its_model(home: Path) -> None:
    agent = ensure_agent(home)
    agent.configure(KEY, EnvironmentConfig(port=free_port()))
    body = OperationBody(id="op-1", release=release("v1.0.0"), health=HealthBody(interval=0.05, successes=1))
    agent.operate(KEY, body)
    wait_until(lambda: agent.operation(KEY, "op-1").state != "running", what="the deploy")
    answers: list[tuple[type[BaseModel], Any]] = [
        (AgentHealth, agent.call("GET", "/v1/health")),
        (EnvironmentState, agent.call("GET", f"/v1/environments/{KEY}")),
        (Operation, agent.call("GET", f"/v1/environments/{KEY}/operations/op-1")),
        *[(EnvironmentState, e) for e in agent.call("GET", "/v1/environments")],
        *[(InstanceOutput, i) for i in agent.call("GET", f"/v1/environments/{KEY}/output")],
    ]
    for model, raw in answers:
        parsed = model.model_validate(raw)
        assert undeclared(parsed) == [], (model.__name__, raw)
        assert parsed.model_dump(mode="json") == raw


def test_the_agent_is_found_once_per_start_and_missed_when_gone(home: Path) -> None:
    assert find_agent(home) is None
    assert instance_output(home, "shop", "production", 10).agent is False  # never starts one
    assert environment_state(home, "shop", "production") is None

    first = ensure_agent(home)
    first.configure(KEY, EnvironmentConfig(port=free_port()))
    assert find_agent(home) is find_agent(home)  # one client per agent start, its files read once
    found = instance_output(home, "shop", "production", 10)
    assert found.agent is True and found.instances == []
    state = environment_state(home, "shop", "production")
    assert state is not None and state.key == "shop.production" and state.warm is None
    assert environment_state(home, "shop", "staging") is None  # not configured on this agent

    stop(home)
    assert instance_output(home, "shop", "production", 10).agent is False
    assert environment_state(home, "shop", "production") is None

    second = ensure_agent(home)  # a new agent: new files, a new client
    assert isinstance(second, AgentClient) and second is not first
    assert find_agent(home) is second


def test_a_stale_agent_file_means_no_agent(home: Path) -> None:
    agent_dir = home / "agent"
    agent_dir.mkdir(parents=True)
    (agent_dir / "agent.json").write_text(json.dumps({"url": f"http://127.0.0.1:{free_port()}", "pid": 1}))
    (agent_dir / "token").write_text("stale")
    assert instance_output(home, "shop", "production", 10).agent is False
    assert home.resolve() / "agent" not in agent_client._FOUND  # forgotten: the next read looks again
    (agent_dir / "agent.json").unlink()

from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.errors import NotFound
from conveyor.spec import CommandSpec, CommandTarget, EnvironmentSpec, LocalTarget, ServiceSpec
from conveyor.spec.models import GatesSpec, MonitorSpec, StagingVerifiedSpec


def environment(**fields: Any) -> EnvironmentSpec:
    return EnvironmentSpec.model_validate({"target": {"kind": "local", "port": 8000}, **fields})


def test_a_command_may_be_plain_text() -> None:
    target = CommandTarget.model_validate({"kind": "command", "deploy": "./deploy.sh", "rollback": {"run": "./back"}})
    assert target.deploy == CommandSpec(run="./deploy.sh")
    assert target.rollback == CommandSpec(run="./back")
    assert target.timeout == 600.0


def test_command_timeout_is_a_duration() -> None:
    assert CommandSpec.model_validate({"run": "make", "timeout": "2m"}).timeout == 120.0


def test_an_empty_command_is_rejected() -> None:
    with pytest.raises(ValidationError):
        CommandSpec.model_validate("")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (True, StagingVerifiedSpec()),
        (False, None),
        ("qa", StagingVerifiedSpec(environment="qa")),
        ({"signoff": True}, StagingVerifiedSpec(signoff=True)),
    ],
)
def test_staging_verified_shorthands(given: object, expected: StagingVerifiedSpec | None) -> None:
    assert GatesSpec.model_validate({"staging_verified": given}).staging_verified == expected


def test_gates_default_to_off() -> None:
    gates = GatesSpec()
    assert (gates.reviews, gates.approval, gates.staging_verified, gates.schedule) == (None, None, None, None)
    assert gates.expire_after == 86400.0


def test_step_plan_defaults_to_the_configured_steps() -> None:
    assert environment().step_plan() == ["prepare", "rollout", "announce"]
    full = environment(tag={}, migrate="alembic upgrade head", smoke="make smoke")
    assert full.step_plan() == ["prepare", "tag", "migrate", "rollout", "smoke", "announce"]


def test_step_plan_returns_the_given_steps() -> None:
    assert environment(steps=["migrate", "rollout"], smoke="x").step_plan() == ["migrate", "rollout"]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (["rollout", "prepare"], "steps must keep the order prepare, tag, migrate, rollout, smoke, announce"),
        (["rollout", "rollout"], "steps must keep the order"),
        (["prepare", "announce"], "steps must include rollout"),
        (["prepare", "monitor", "rollout"], "'monitor'"),
    ],
)
def test_steps_are_checked(steps: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        environment(steps=steps)


def test_auto_deploy_needs_a_branch() -> None:
    with pytest.raises(ValidationError, match="auto_deploy: true needs a branch"):
        environment(auto_deploy=True)
    assert environment(auto_deploy=True, branch="main").auto_deploy


def test_keyword_named_fields_accept_python_names_and_dump_yaml_names() -> None:
    monitor = MonitorSpec(for_=60, rollback_if={"p99_ms": ">= 1500", "error_rate": "> 2.5%"})
    assert monitor.for_ == 60.0
    assert monitor.model_dump(by_alias=True)["for"] == 60.0
    assert MonitorSpec.model_validate({"for": "1h"}).for_ == 3600.0


def test_models_are_frozen() -> None:
    target = LocalTarget(port=8000)
    with pytest.raises(ValidationError):
        target.port = 9000


def test_local_target_defaults() -> None:
    assert LocalTarget(port=8000).model_dump() == {
        "kind": "local",
        "port": 8000,
        "replicas": 1,
        "router": "builtin",
        "host": "127.0.0.1",
    }


@pytest.mark.parametrize("port", [0, 65536])
def test_local_target_port_range(port: int) -> None:
    with pytest.raises(ValidationError):
        LocalTarget(port=port)


def test_environment_lookup_names_the_known_ones() -> None:
    spec = ServiceSpec.model_validate(
        {
            "service": "shop",
            "run": "python -m shop",
            "environments": {
                "staging": {"target": {"kind": "local", "port": 8002}},
                "production": {"target": {"kind": "command", "deploy": "./deploy"}},
            },
        }
    )
    assert spec.environment("production").target == CommandTarget(deploy=CommandSpec(run="./deploy"))
    with pytest.raises(NotFound) as caught:
        spec.environment("prod")
    assert str(caught.value) == "service 'shop' has no environment 'prod' (defined: production, staging)"


def test_command_targets_need_no_run() -> None:
    spec = ServiceSpec.model_validate(
        {"service": "shop", "environments": {"prod": {"target": {"kind": "command", "deploy": "./deploy"}}}}
    )
    assert spec.run is None

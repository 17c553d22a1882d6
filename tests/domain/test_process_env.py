"""The environment allow-list: names and prefixes, never a CONVEYOR_* variable of the host, and the
order in which an instance's variables win."""

from __future__ import annotations

from conveyor.domain.process_env import (
    allowed,
    instance_environment,
    parse_names,
    release_environment,
)

HOST = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/conveyor",
    "LANG": "C.UTF-8",
    "LC_TIME": "en_GB.UTF-8",
    "TZ": "UTC",
    "CONVEYOR_TOKEN": "cvy_secret",
    "CONVEYOR_HOME": "/srv/conveyor",
    "CONVEYOR_DATABASE_URL": "postgresql://u:p@db/conveyor",
    "CONVEYOR_GITHUB_WEBHOOK_SECRET": "hook",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "AWS_REGION": "eu-west-1",
    "DATABASE_URL": "postgresql://app:pw@db/app",
    "PYTHONPATH": "/opt/conveyor/src",
}


def test_parse_names_splits_and_trims() -> None:
    assert parse_names(" DATABASE_URL, AWS_* ,,") == ("DATABASE_URL", "AWS_*")
    assert parse_names(None) == parse_names("") == ()


def test_allowed_takes_names_and_prefixes_but_never_conveyor_variables() -> None:
    assert allowed(HOST, ("PATH", "LC_*", "AWS_*")) == {
        "PATH": "/usr/bin:/bin",
        "LC_TIME": "en_GB.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "AWS_REGION": "eu-west-1",
    }
    assert allowed(HOST, ("*",)).keys().isdisjoint({k for k in HOST if k.startswith("CONVEYOR_")})
    assert allowed(HOST, ("CONVEYOR_TOKEN", "CONVEYOR_*")) == {}


def test_an_instance_gets_basics_its_release_env_port_and_id_only() -> None:
    env = instance_environment(HOST, {"GREETING": "hi", "CONVEYOR_VERSION": "v1"}, 4100, "shop.production-v1-1")
    assert env == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/conveyor",
        "LANG": "C.UTF-8",
        "LC_TIME": "en_GB.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "GREETING": "hi",
        "CONVEYOR_VERSION": "v1",
        "PORT": "4100",
        "CONVEYOR_INSTANCE": "shop.production-v1-1",
    }


def test_the_release_env_may_override_defaults_but_not_port_or_id() -> None:
    release = {"PYTHONUNBUFFERED": "0", "PORT": "1", "CONVEYOR_INSTANCE": "x", "HOME": "/app"}
    env = instance_environment(HOST, release, 4100, "i-1", home="/nonexistent")
    assert (env["PYTHONUNBUFFERED"], env["PORT"], env["CONVEYOR_INSTANCE"], env["HOME"]) == ("0", "4100", "i-1", "/app")
    assert instance_environment(HOST, {}, 1, "i", home="/home/app")["HOME"] == "/home/app"


def test_the_release_env_the_server_sends() -> None:
    step_env = {
        "PATH": "/usr/bin",
        "CONVEYOR_SERVICE": "shop",
        "CONVEYOR_ENV": "production",
        "CONVEYOR_VERSION": "v1.2.0",
        "CONVEYOR_SHA": "abc",
        "CONVEYOR_PREVIOUS_VERSION": "v1.1.0",
        "GREETING": "from the step",
    }
    env = release_environment(HOST, ("DATABASE_URL", "CONVEYOR_TOKEN"), {"GREETING": "hi"}, step_env)
    assert env == {
        "DATABASE_URL": "postgresql://app:pw@db/app",
        "GREETING": "hi",
        "CONVEYOR_SERVICE": "shop",
        "CONVEYOR_ENV": "production",
        "CONVEYOR_VERSION": "v1.2.0",
        "CONVEYOR_SHA": "abc",
    }

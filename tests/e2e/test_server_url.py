"""A step's CONVEYOR_SERVER_URL is the server's own address: the port it listens on, or the
CONVEYOR_SERVER_URL setting; never the CLI's CONVEYOR_URL (which a server need not have)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.e2e.harness import Server, commit, git

from conveyor.settings import Settings

RECORD = textwrap.dedent(
    """\
    #!/bin/sh
    echo "$CONVEYOR_SERVER_URL" > "$EFFECTS/server-url-$CONVEYOR_ENV"
    """
)


class BareServer(Server):
    """A server started as `conveyor server --port PORT` is: no CONVEYOR_URL in its environment."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("CONVEYOR_URL", None)
        return env


def _repo(path: Path, effects: Path) -> Path:
    path.mkdir()
    effects.mkdir()
    config = textwrap.dedent(
        f"""\
        service: shop
        env: {{EFFECTS: '{effects}'}}
        environments:
          staging:
            target: {{kind: command, deploy: ./record.sh}}
        """
    )
    git(path, "init", "-q", "-b", "main")
    commit(path, {"record.sh": RECORD, "conveyor.yml": config}, "initial")  # .sh files are made executable
    return path


def test_a_step_gets_the_address_the_server_listens_on(tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    repo = _repo(tmp_path / "shop", effects)
    server = BareServer(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'conveyor.db'}", poll_interval=0)
    assert server.port != 8000
    server.start()
    try:
        server.ok("POST", "/services", json={"source": str(repo)})
        deployment = server.ok("POST", "/deployments", json={"environment": "staging", "ref": "main"})
        assert server.wait_finished(deployment["id"])["state"] == "succeeded"
    finally:
        server.stop()
    assert (effects / "server-url-staging").read_text().strip() == f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        ({"port": 9123}, "http://127.0.0.1:9123"),
        ({"host": "0.0.0.0", "port": 9123}, "http://127.0.0.1:9123"),
        ({"host": "::", "port": 9123}, "http://[::1]:9123"),
        ({"host": "10.1.2.3", "port": 80}, "http://10.1.2.3:80"),
        ({"port": 9123, "server_url": "https://conveyor.example.com/"}, "https://conveyor.example.com"),
        ({"port": 9123, "url": "http://elsewhere:1"}, "http://127.0.0.1:9123"),  # the CLI's setting plays no part
    ],
)
def test_the_servers_own_url_setting(settings: dict[str, object], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONVEYOR_SERVER_URL", "CONVEYOR_HOST", "CONVEYOR_PORT", "CONVEYOR_URL"):
        monkeypatch.delenv(name, raising=False)
    assert Settings(**settings).own_url == url  # type: ignore[arg-type]

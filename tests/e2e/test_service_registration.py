"""Registering services against a real server: who may, what a re-registration shows and needs,
and where a service may come from (issue 11, item 1)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.e2e.harness import Server, commit, free_port, git, make_service_repo

from conveyor.auth.users import add_user, create_token
from conveyor.store.db import Database


@dataclass
class Reg:
    server: Server
    repo: Path
    tmp: Path
    tokens: dict[str, str]

    def as_(self, user: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.request(method, self.server.url + "/api/v1" + path, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def registered(self) -> list[dict[str, object]]:
        services: list[dict[str, object]] = self.as_("ada", "GET", "/services").json()
        return services


class ListedHostServer(Server):
    """A server that trusts 127.0.0.1 as a clone host, to reach a real git failure."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "CONVEYOR_SOURCE_HOSTS": "127.0.0.1"}


def start(tmp_path: Path, database_url: str, cls: type[Server] = Server) -> Reg:
    repo = make_service_repo(tmp_path / "shop", tmp_path / "effects")
    config = (repo / "conveyor.yml").read_text()
    commit(repo, {"conveyor.yml": config.replace("  production:\n", f"  production:\n{ONLY_RM}")}, "rm only")
    server = cls(home=tmp_path / "home", database_url=database_url, poll_interval=0)
    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    tokens = {}
    with db.begin() as conn:
        for name, roles in (("ada", ["admin"]), ("eve", ["engineer"]), ("rex", ["release_manager"])):
            tokens[name] = create_token(conn, add_user(conn, name, roles, now), now)
    db.dispose()
    server.token = tokens["ada"]
    server.start()
    return Reg(server, repo, tmp_path, tokens)


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Reg]:
    world = start(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}")
    try:
        yield world
    finally:
        world.server.stop()


ONLY_RM = "    deployers: [release_manager]\n"
EVIL = """\
service: shop
environments:
  production:
    deployers: [engineer]
    target: {kind: command, deploy: "id > %s"}
"""


def test_an_engineer_cannot_repoint_a_service_at_their_own_clone(reg: Reg) -> None:
    assert reg.as_("ada", "POST", "/services", json={"source": str(reg.repo)}).status_code == 201
    before = reg.registered()
    clone = reg.tmp / "eve-clone"
    git(reg.tmp, "clone", "-q", str(reg.repo), str(clone))
    pwned = reg.tmp / "pwned"
    commit(clone, {"conveyor.yml": EVIL % pwned}, "production is mine")

    r = reg.as_("eve", "POST", "/services", json={"source": str(clone)})
    assert r.status_code == 403 and "may not add or change services" in r.json()["message"]
    r = reg.as_("rex", "POST", "/services", json={"source": str(clone), "dry_run": True})
    assert r.status_code == 403  # not even a preview: that would clone and read files for them
    assert reg.registered() == before
    deploy = reg.as_("eve", "POST", "/deployments", json={"environment": "production", "ref": "main"})
    assert deploy.status_code == 403 and not pwned.exists()
    audit = reg.as_("ada", "GET", "/audit", params={"limit": 100}).json()["entries"]
    assert any(e["action"] == "forbidden" and e["actor"] == "eve" and e["subject"] == "services" for e in audit)


def test_a_changing_re_registration_is_a_diff_an_admin_confirms_and_the_audit_keeps(reg: Reg) -> None:
    assert reg.as_("ada", "POST", "/services", json={"source": str(reg.repo)}).status_code == 201
    config = (reg.repo / "conveyor.yml").read_text()
    commit(reg.repo, {"conveyor.yml": config.replace(ONLY_RM, "    deployers: [engineer]\n")}, "x")

    blind = reg.as_("ada", "POST", "/services", json={"source": str(reg.repo)})
    assert blind.status_code == 409 and "changes environments.production.deployers" in blind.json()["message"]
    assert reg.as_("ada", "GET", "/why", params={"environment": "production", "ref": "main"}).status_code == 200
    preview = reg.as_("ada", "POST", "/services", json={"source": str(reg.repo), "dry_run": True}).json()
    assert preview["changes"] == ["environments.production.deployers"] and preview["deployments"] == []
    assert "-    deployers: [release_manager]\n+    deployers: [engineer]" in preview["diff"]
    wrong = reg.as_("ada", "POST", "/services", json={"source": str(reg.repo), "confirm_diff": "0" * 64})
    assert wrong.status_code == 409
    # the engineer still may not deploy production: nothing was applied
    assert reg.as_("eve", "POST", "/deployments", json={"environment": "production", "ref": "main"}).status_code == 403

    body = {"source": str(reg.repo), "confirm_diff": preview["confirm"]}
    applied = reg.as_("ada", "POST", "/services", json=body)
    assert applied.status_code == 201, applied.text
    entry = next(
        e
        for e in reg.as_("ada", "GET", "/audit", params={"limit": 100}).json()["entries"]
        if e["action"] == "service.updated"
    )
    assert entry["actor"] == "ada" and entry["details"]["changes"] == ["environments.production.deployers"]
    assert "+    deployers: [engineer]" in entry["details"]["diff"]
    # unchanged: a refresh needs no confirmation
    assert reg.as_("ada", "POST", "/services", json={"source": str(reg.repo)}).status_code == 201


def test_sources_outside_the_allow_list_are_refused_without_fetching_or_showing_paths(reg: Reg) -> None:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    outside = reg.tmp.parent / f"{reg.tmp.name}-outside"
    make_service_repo(outside, reg.tmp / "effects2")
    home = str(reg.server.home)
    try:
        for source in (
            f"http://127.0.0.1:{port}/shop.git",
            f"https://127.0.0.1:{port}/shop.git",
            f"https://localhost:{port}/shop.git",
            "file:///etc",
            f"file://{outside}",
            str(outside),
            "/etc",
            "ext::sh -c touch% /tmp/conveyor-pwned",
        ):
            r = reg.as_("ada", "POST", "/services", json={"source": source})
            assert r.status_code in (400, 403), (source, r.status_code, r.text)
            assert home not in r.text and "`git" not in r.text, r.text
        assert hits == [] and reg.registered() == []
    finally:
        httpd.shutdown()
        subprocess.run(["rm", "-rf", str(outside)], check=False)


def test_a_failed_clone_is_a_clean_400(tmp_path: Path) -> None:
    world = start(tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", ListedHostServer)
    try:
        r = world.as_("ada", "POST", "/services", json={"source": f"https://127.0.0.1:{free_port()}/shop.git"})
        assert r.status_code == 400, r.text
        assert "could not read a git repository" in r.json()["message"]
        assert str(world.server.home) not in r.text and "clone" not in r.text
    finally:
        world.server.stop()


def test_the_cli_shows_the_diff_and_applies_it_only_with_yes(reg: Reg) -> None:
    env = {**reg.server.env(), "CONVEYOR_TOKEN": reg.tokens["ada"]}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor", "services", "add", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    assert cli(str(reg.repo)).returncode == 0
    config = (reg.repo / "conveyor.yml").read_text()
    commit(reg.repo, {"conveyor.yml": config.replace("kind: command", "kind: command, timeout: 5m", 1)}, "x")
    refused = cli(str(reg.repo))
    assert refused.returncode == 1
    assert "changes: environments.development.target" in " ".join(refused.stderr.split())
    assert "+" in refused.stderr and "--yes" in refused.stderr
    pending = reg.as_("ada", "POST", "/services", json={"source": str(reg.repo), "dry_run": True}).json()
    assert pending["changes"] == ["environments.development.target.timeout"]  # not applied
    applied = cli(str(reg.repo), "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "updated" in applied.stdout

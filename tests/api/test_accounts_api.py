"""Issue 11 attacks against a real server over HTTP: maintenance mode without permission (item 4),
a leaked token or a departing user that could not be cut off (item 9), unthrottled sign-ins
(item 10), an open /metrics, missing security headers. One server for the module; each test
uses its own users so the order does not matter."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.harness import Server, free_port
from tests.e2e.local import make_web_repo, stop_agent

from conveyor.auth import throttle
from conveyor.auth.users import add_user, create_token
from conveyor.store.db import Database

METRICS_TOKEN = "metrics-scraper-secret-0123456789"
USERS = {
    "ada": ["admin"],
    "eve": ["engineer"],
    "rita": ["release_manager"],
    "dan": ["engineer"],
    "lea": ["engineer"],
    "max": ["engineer"],
    "pat": ["engineer"],
    "tim": ["engineer"],
    "kim": ["engineer"],
}


@dataclass
class World:
    server: Server
    tokens: dict[str, str]
    production_port: int
    database_url: str

    def as_(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method,
            self.server.url + "/api/v1" + path,
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=30,
            **kwargs,
        )

    def ok(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        r = self.as_(user, method, path, **kwargs)
        assert r.status_code < 300, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def audit(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.ok("ada", "GET", "/audit", params={"limit": 10000})["entries"]
        return entries

    def login(self, name: str, password: str) -> httpx.Response:
        client = httpx.Client(base_url=self.server.url, timeout=30)
        form = client.get("/login")
        found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert found, form.text
        data = {"username": name, "password": password, "csrf_token": found.group(1), "next": "/"}
        response = client.post("/login", data=data)
        response.extensions["client"] = client
        return response


def config(staging: int, production: int) -> str:
    return textwrap.dedent(
        f"""\
        service: web
        run: python3 app.py --port $PORT
        health: {{path: /healthz, interval: 100ms, successes: 2, timeout: 10s}}
        environments:
          staging:
            target: {{kind: local, port: {staging}, replicas: 1}}
          production:
            deployers: [release_manager]
            target: {{kind: local, port: {production}, replicas: 1}}
        """
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("accounts")
    staging, production = free_port(), free_port()
    repo = make_web_repo(tmp / "web", config(staging, production))
    database_url = f"sqlite:///{tmp / 'c.db'}"
    db = Database(database_url)
    db.migrate()
    now = datetime.now(UTC)
    tokens = {}
    with db.begin() as conn:
        for name, roles in USERS.items():
            tokens[name] = create_token(conn, add_user(conn, name, roles, now, f"{name}'s old password"), now)
    db.dispose()
    server = Server(home=tmp / "home", database_url=database_url, poll_interval=0)
    original_env = server.env
    server.env = lambda: {**original_env(), "CONVEYOR_METRICS_TOKEN": METRICS_TOKEN}  # type: ignore[method-assign]
    server.start()
    tokens["alice"] = server.token  # admin and release_manager, made by the harness
    world = World(server, tokens, production, database_url)
    world.ok("alice", "POST", "/services", json={"source": str(repo)})
    try:
        yield world
    finally:
        server.stop()
        stop_agent(server.home)


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        return True
    except httpx.ConnectError:
        return False


def test_maintenance_is_allowed_only_to_the_environments_deployers(world: World) -> None:
    for user in ("eve", "ada"):  # an engineer, and an admin who is no deployer
        r = world.as_(user, "POST", "/environments/production/maintenance", json={"on": True})
        assert r.status_code == 403, r.text
        assert "may not deploy to production; only release_manager may" in r.json()["message"]
        refused = [e for e in world.audit() if e["action"] == "forbidden" and e["actor"] == user]
        assert refused and refused[0]["details"]["attempted"] == "maintenance"
        assert refused[0]["subject"] == "web/production"
    assert not _listening(world.production_port)  # nothing changed: production has no router at all
    assert not [e for e in world.audit() if e["action"] == "environment.maintenance"]
    on = world.ok("rita", "POST", "/environments/production/maintenance", json={"on": True})
    assert on["maintenance"] is True
    r = httpx.get(f"http://127.0.0.1:{world.production_port}/", timeout=10)
    assert r.status_code == 503 and r.headers["retry-after"]
    assert world.ok("rita", "POST", "/environments/production/maintenance", json={"on": False})["maintenance"] is False


def test_a_disabled_user_is_cut_off_at_once_and_can_come_back(world: World) -> None:
    assert world.ok("dan", "GET", "/me")["name"] == "dan"
    signed_in = world.login("dan", "dan's old password")
    assert signed_in.status_code == 303
    browser: httpx.Client = signed_in.extensions["client"]
    assert browser.get("/tokens").status_code == 200
    r = world.as_("eve", "POST", "/users/dan/disable")
    assert r.status_code == 403 and "eve is not an admin" in r.json()["message"]
    assert world.ok("dan", "GET", "/me")["name"] == "dan"  # the refusal changed nothing
    disabled = world.ok("ada", "POST", "/users/dan/disable")
    assert disabled["disabled"] is True and disabled["change"]["sessions_ended"] == 1
    assert world.as_("dan", "GET", "/me").status_code == 401
    page = browser.get("/tokens")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert world.login("dan", "dan's old password").status_code == 401
    world.ok("ada", "POST", "/users/dan/enable")
    assert world.ok("dan", "GET", "/me")["name"] == "dan"
    actions = [(e["actor"], e["action"], e["subject"]) for e in world.audit()]
    assert ("ada", "user.disabled", "dan") in actions and ("ada", "user.enabled", "dan") in actions
    assert any(a == ("eve", "forbidden", "/api/v1/users/dan/disable") for a in actions)


def test_an_admin_revokes_a_leaked_token_of_another_user(world: World) -> None:
    assert world.ok("lea", "GET", "/me")["name"] == "lea"
    listed = world.ok("ada", "GET", "/tokens", params={"user": "lea"})
    assert len(listed) == 1 and listed[0]["prefix"] == world.tokens["lea"][:10]
    assert listed[0]["last_used_at"] is not None  # written on use (at most once a minute)
    assert world.tokens["lea"] not in str(world.ok("ada", "GET", "/tokens"))
    token_id = listed[0]["id"]
    r = world.as_("eve", "POST", f"/tokens/{token_id}/revoke")
    assert r.status_code == 403
    assert world.ok("lea", "GET", "/me")["name"] == "lea"
    revoked = world.ok("ada", "POST", f"/tokens/{token_id}/revoke")
    assert revoked["user"] == "lea" and revoked["revoked_at"]
    assert world.as_("lea", "GET", "/me").status_code == 401
    assert world.as_("ada", "POST", f"/tokens/{token_id}/revoke").status_code == 409
    entry = next(e for e in world.audit() if e["action"] == "token.revoked" and e["subject"] == "lea")
    assert entry["actor"] == "ada" and entry["details"]["id"] == token_id


def test_roles_and_passwords_change_over_the_api(world: World) -> None:
    changed = world.ok("ada", "PUT", "/users/max/roles", json={"roles": ["release_manager"]})
    assert changed["roles"] == ["release_manager"]
    assert changed["change"] == {"roles": {"before": ["engineer"], "after": ["release_manager"]}}
    assert world.ok("max", "GET", "/me")["roles"] == ["release_manager"]
    assert world.as_("ada", "PUT", "/users/max/roles", json={"roles": ["root"]}).status_code == 400
    assert world.as_("max", "PUT", "/users/max/roles", json={"roles": ["admin"]}).status_code == 403
    world.ok("ada", "PUT", "/users/max/password", json={"password": "max's new password"})
    assert world.login("max", "max's old password").status_code == 401
    assert world.login("max", "max's new password").status_code == 303
    entry = next(e for e in world.audit() if e["action"] == "user.password_changed")
    assert entry["subject"] == "max" and "new password" not in str(entry)
    users = {u["name"]: u for u in world.ok("ada", "GET", "/users")}
    assert users["max"]["roles"] == ["release_manager"] and users["ada"]["roles"] == ["admin"]


def test_sign_ins_are_throttled_with_backoff(world: World) -> None:
    codes = []
    for _ in range(12):  # before the fix: 40 wrong passwords in 24 s, all 401
        response = world.login("pat", "a wrong guess")
        codes.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert "Too many failed sign-ins" in response.text
            break
    assert codes[:5] == [401] * 5 and codes[-1] == 429, codes
    # a long lock (as after a dozen failures) refuses even the right password, without checking it
    db = Database(world.database_url)
    try:
        with db.begin() as conn:
            for _ in range(12):
                throttle.record_failure(conn, throttle.keys("tim", None), datetime.now(UTC))
    finally:
        db.dispose()
    locked = world.login("tim", "tim's old password")
    assert locked.status_code == 429 and 30 <= int(locked.headers["retry-after"]) <= 64
    failed = [e for e in world.audit() if e["action"] == "user.login_failed" and e["subject"] == "pat"]
    assert len(failed) == codes.count(401) and any("locked_until" in e["details"] for e in failed)


def test_metrics_need_a_token(world: World) -> None:
    url = world.server.url + "/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-it"}).status_code == 401
    for token in (METRICS_TOKEN, world.tokens["eve"]):
        r = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "conveyor_deployments" in r.text


def test_every_response_carries_the_security_headers(world: World) -> None:
    responses = [
        httpx.get(world.server.url + "/login"),
        httpx.get(world.server.url + "/api/v1/health"),
        httpx.get(world.server.url + "/static/style.css"),
        httpx.get(world.server.url + "/no/such/page"),
        world.as_("eve", "GET", "/users"),  # a 403
    ]
    for r in responses:
        assert r.headers["x-frame-options"] == "DENY", r.url
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp, r.url
    docs = httpx.get(world.server.url + "/docs")
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]


def test_home_database_and_key_files_are_private(world: World) -> None:
    home = world.server.home
    for name in ("audit.key", "audit.head", "workflows.db"):
        assert (home / name).stat().st_mode & 0o777 == 0o600, name
    db_file = Path(world.database_url.removeprefix("sqlite:///"))
    assert db_file.stat().st_mode & 0o777 == 0o600


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_the_users_page_lets_admins_cut_off_users_and_tokens(world: World) -> None:
    engineer: httpx.Client = world.login("eve", "eve's old password").extensions["client"]
    assert engineer.get("/users").status_code == 403
    own_csrf = _csrf(engineer.get("/tokens").text)
    refused = engineer.post("/users/kim/disable", data={"csrf_token": own_csrf})
    assert refused.status_code == 403
    assert world.ok("kim", "GET", "/me")["name"] == "kim"
    signed_in = world.login("ada", "ada's old password")
    assert signed_in.status_code == 303
    admin: httpx.Client = signed_in.extensions["client"]
    listing = admin.get("/users")
    assert listing.status_code == 200 and 'data-user="kim"' in listing.text
    assert world.tokens["kim"] not in listing.text and world.tokens["kim"][:10] in listing.text
    csrf = _csrf(listing.text)
    assert admin.post("/users/kim/disable", data={}).status_code == 403  # no CSRF token: nothing changes
    assert world.ok("kim", "GET", "/me")["name"] == "kim"
    assert admin.post("/users/kim/disable", data={"csrf_token": csrf}).status_code == 303
    assert world.as_("kim", "GET", "/me").status_code == 401
    admin.post("/users/kim/enable", data={"csrf_token": csrf})
    roles = admin.post("/users/kim/roles", data={"csrf_token": csrf, "role": ["engineer", "manager"]})
    assert roles.status_code == 303 and world.ok("kim", "GET", "/me")["roles"] == ["engineer", "manager"]
    [token] = world.ok("ada", "GET", "/tokens", params={"user": "kim"})
    assert admin.post(f"/users/tokens/{token['id']}/revoke", data={"csrf_token": csrf}).status_code == 303
    assert world.as_("kim", "GET", "/me").status_code == 401
    entries = [(e["actor"], e["action"], e["subject"]) for e in world.audit()]
    for expected in [
        ("eve", "forbidden", "/users/kim/disable"),
        ("ada", "user.disabled", "kim"),
        ("ada", "user.enabled", "kim"),
        ("ada", "user.roles_changed", "kim"),
        ("ada", "token.revoked", "kim"),
    ]:
        assert expected in entries, expected


def test_an_admin_is_no_manager_for_freezes(world: World) -> None:
    body = {"environment": "production", "reason": "year-end freeze"}
    r = world.as_("ada", "POST", "/freezes", json=body)  # before the fix `admin` passed the manager check
    assert r.status_code == 403 and "ada may not freeze production" in r.json()["message"]
    freeze = world.ok("rita", "POST", "/freezes", json=body)
    r = world.as_("ada", "DELETE", f"/freezes/{freeze['id']}")
    assert r.status_code == 403 and "may not lift freezes" in r.json()["message"]
    assert world.ok("rita", "DELETE", f"/freezes/{freeze['id']}")["id"] == freeze["id"]

"""The REST API's typed contract: every /api/v1 route declares its response in the OpenAPI
document, and what a real server answers on each route validates against that model, with no key
the model leaves out and no value the model would write differently.

One server, one service with a command target (staging, gated production, a scheduled
environment) and a local one, and one walk through every route; the routes walked are checked
against the document, so a new route without a walk (or without a model) fails here."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import pkgutil
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter
from tests.conftest import wait_until
from tests.e2e.harness import SCRIPTS, Server, commit, free_port, git

import conveyor.api
from conveyor.app import create_app
from conveyor.runtime import Runtime
from conveyor.settings import Settings
from conveyor.store.db import Database

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-app"
SECRET = "contract-webhook-secret"
FINISHED = {"succeeded", "failed", "rolled_back", "cancelled"}
COMMAND = "{kind: command, deploy: ./scripts/deploy.sh, rollback: ./scripts/rollback.sh}"
MODELS: dict[str, type[BaseModel]] = {  # every model the API's modules use, by its name in the OpenAPI document
    value.__name__: value
    for info in pkgutil.iter_modules(conveyor.api.__path__, "conveyor.api.")
    for value in vars(importlib.import_module(info.name)).values()
    if isinstance(value, type) and issubclass(value, BaseModel)
}


def config(effects: Path, edge_port: int) -> str:
    return textwrap.dedent(
        f"""\
        service: shop
        run: python3 app.py --port $PORT
        health: {{path: /healthz, interval: 100ms, successes: 1, timeout: 20s}}
        env: {{EFFECTS: '{effects}'}}
        environments:
          staging:
            branch: main
            auto_deploy: true
            target: {COMMAND}
          production:
            target: {COMMAND}
            gates:
              approval: {{count: 1, from: [release_manager]}}
              checklist: [tests_passing, rollback_plan]
          quiet:
            target: {COMMAND}
            gates:
              schedule: {{timezone: UTC, allow: ["Mon-Fri 09:00-17:00"]}}
          edge:
            target: {{kind: local, port: {edge_port}, replicas: 1}}
          watched:
            target: {COMMAND}
            monitor: {{for: 1m, interval: 1s, min_requests: 10, rollback_if: {{error_rate: "> 2%"}}}}
          linted:
            target: {COMMAND}
            migrate: {{run: ./scripts/step.sh migrate, sql: "echo 'CREATE INDEX users_email ON users (email);'"}}
        """
    )


def schema_operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every /api/v1 operation of an OpenAPI document: (METHOD, path) -> its success response."""
    out = {}
    for path, operations in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            codes = sorted(code for code in op["responses"] if code.startswith("2"))
            out[(method.upper(), path)] = op["responses"][codes[0]] if codes else {}
    return out


def declared(response: dict[str, Any]) -> Any:
    """The model (or list of models) a success response declares; None for a non-JSON answer."""
    content = response.get("content", {})
    if "application/json" not in content:
        return None
    schema = content["application/json"].get("schema", {})
    if schema.get("type") == "array":
        item = MODELS[schema["items"]["$ref"].rsplit("/", 1)[1]]
        return list.__class_getitem__(item)
    return MODELS[schema["$ref"].rsplit("/", 1)[1]]


def undeclared(value: Any, where: str = "") -> list[str]:
    """Keys that passed through a model without being declared by it (``extra="allow"``)."""
    if isinstance(value, BaseModel):
        found = [f"{where}.{key}" for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += undeclared(getattr(value, name), f"{where}.{name}")
        return found
    if isinstance(value, list):
        return [problem for i, item in enumerate(value) for problem in undeclared(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [problem for key, item in value.items() for problem in undeclared(item, f"{where}.{key}")]
    return []


@dataclass
class Walk:
    server: Server
    tokens: dict[str, str]
    database_url: str = ""
    answers: list[tuple[str, str, Any]] = field(default_factory=list)  # method, route, JSON body

    def call(
        self, user: str, method: str, route: str, *, status: int = 200, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        """Call ``route`` (a path template of the OpenAPI document) filled in with ``kw['path']``."""
        path = route.format(**kw.pop("path", {}))
        sent = {"Authorization": f"Bearer {self.tokens[user]}", **(headers or {})}
        response = httpx.request(method, self.server.url + path, headers=sent, timeout=60, **kw)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        body = response.json()
        self.answers.append((method, route, body))
        return body

    def finished(self, deployment_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            d = self.call("ada", "GET", "/api/v1/deployments/{deployment_id}", path={"deployment_id": deployment_id})
            return d if d["state"] in FINISHED else None

        result: dict[str, Any] = wait_until(done, timeout=90, what=f"deployment {deployment_id} to finish")
        return result

    def hook(self, route: str, event: str, payload: dict[str, Any], **path: str) -> None:
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"x-github-event": event, "x-hub-signature-256": signature, "content-type": "application/json"}
        headers["x-github-delivery"] = f"delivery-{event}-{len(self.answers)}"
        self.call("ada", "POST", route, status=202, headers=headers, content=body, path=path)


def _repo(root: Path, effects: Path, edge_port: int) -> Path:
    repo = root / "shop"
    shutil.copytree(DEMO_APP, repo, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    effects.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {**SCRIPTS, "conveyor.yml": config(effects, edge_port)}, "v1")
    return repo


def stop_agent(home: Path) -> None:
    import os
    import signal

    info = home / "agent" / "agent.json"
    if info.exists():
        pid = json.loads(info.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait_until(lambda: not info.exists(), timeout=30, what="the agent to stop")


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    root = tmp_path_factory.mktemp("contract")
    repo = _repo(root, root / "effects", free_port())
    server = Server(home=root / "home", database_url=f"sqlite:///{root / 'conveyor.db'}", poll_interval=0)
    server.webhook_secret = SECRET
    server.start()
    try:
        w = Walk(server, {"ada": server.token}, server.database_url)
        _walk(w, repo)
        yield w
    finally:
        server.stop()
        stop_agent(root / "home")


def _walk(w: Walk, repo: Path) -> None:  # one scenario, route by route
    v1 = "/api/v1"
    w.call("ada", "GET", v1 + "/health")
    w.call("ada", "GET", v1 + "/me")
    w.call("ada", "POST", v1 + "/users", status=201, json={"name": "rita", "roles": ["release_manager"]})
    w.call("ada", "POST", v1 + "/users", status=201, json={"name": "ci-bot", "roles": ["reporter"]})
    w.tokens["rita"] = w.call("ada", "POST", v1 + "/tokens", status=201, json={"user": "rita"})["token"]
    w.tokens["ci"] = w.call("ada", "POST", v1 + "/tokens", status=201, json={"user": "ci-bot"})["token"]
    w.call("ada", "GET", v1 + "/users")

    # services, and the deployment registering starts for the followed branch
    w.call("ada", "POST", v1 + "/services", status=201, json={"source": str(repo), "dry_run": True})
    added = w.call("ada", "POST", v1 + "/services", status=201, json={"source": str(repo)})
    assert added["deployments"], "staging follows main: registering deploys its head"
    first = w.finished(added["deployments"][0]["id"])
    assert first["state"] == "succeeded", first
    w.call("ada", "GET", v1 + "/services")

    # a second release to staging, then a rollback to the first
    commit(repo, {"app.txt": "version two\n"}, "v2")
    second = w.call("ada", "POST", v1 + "/deployments", status=201, json={"environment": "staging", "ref": "main"})
    assert w.finished(second["id"])["state"] == "succeeded"
    back = w.call("ada", "POST", v1 + "/rollbacks", status=201, json={"environment": "staging"})
    w.finished(back["id"])
    w.call("ada", "GET", v1 + "/deployments")
    w.call("ada", "GET", v1 + "/deployments/{deployment_id}/logs", path={"deployment_id": second["id"]})
    w.call("ada", "GET", v1 + "/status")

    # monitoring after a deploy (docs/monitoring.md): the first release accepted now, the second
    # (a descendant) rolled back now, each while it is watched
    route = v1 + "/deployments/{deployment_id}/monitoring"
    for ref, end in ((first["sha"], "accept"), ("main", "rollback")):
        body = {"environment": "watched", "ref": ref}
        ids = {"deployment_id": w.call("ada", "POST", v1 + "/deployments", status=201, json=body)["id"]}
        wait_until(lambda ids=ids: w.call("ada", "GET", route, path=ids)["samples"], timeout=90, what="a sample")
        w.call("rita", "POST", route + "/" + end, path=ids, json={"reason": "contract walk"})

    # evidence and gates
    sha = second["sha"]
    w.call("ada", "GET", v1 + "/why", params={"environment": "production", "ref": "main"})
    w.call("ada", "POST", v1 + "/verifications", status=201, json={"environment": "staging", "ref": "main"})
    w.call("ci", "POST", v1 + "/checks", status=201, json={"sha": sha, "name": "tests", "state": "success"})
    w.call("ci", "POST", v1 + "/reviews", status=201, json={"sha": sha, "reviewer": "rita"})
    firing = {"alertname": "HighErrorRate", "service": "shop", "environment": "production"}
    alert = {
        "status": "firing",
        "labels": firing,
        "startsAt": "2026-11-27T12:00:00Z",
        "fingerprint": "0123456789abcdef",
    }
    notification = {"version": "4", "receiver": "conveyor", "status": "firing", "alerts": [alert]}
    w.call("ci", "POST", v1 + "/alerts/alertmanager", json=notification)
    waiting = w.call("ada", "POST", v1 + "/deployments", status=201, json={"environment": "production", "ref": "main"})
    assert waiting["state"] not in FINISHED, waiting
    route = v1 + "/deployments/{deployment_id}/approvals"
    w.call("rita", "POST", route, status=201, path={"deployment_id": waiting["id"]}, json={"comment": "ok"})
    route = v1 + "/deployments/{deployment_id}/checklist"
    w.call("ada", "POST", route, status=201, path={"deployment_id": waiting["id"]}, json={"item": "tests_passing"})
    w.call("ada", "POST", v1 + "/deployments/{deployment_id}/cancel", path={"deployment_id": waiting["id"]})

    # migrations (docs/database.md): the lint's finding holds the deployment until acknowledged
    body = {"environment": "linted", "ref": "main"}
    ids = {"deployment_id": w.call("ada", "POST", v1 + "/deployments", status=201, json=body)["id"]}
    route = v1 + "/deployments/{deployment_id}/migrations"
    wait_until(lambda: w.call("ada", "GET", route, path=ids)["report"], timeout=90, what="the lint's report")
    w.call("ada", "POST", route + "/acknowledge", status=201, path=ids, json={"reason": "contract walk"})
    assert w.finished(ids["deployment_id"])["state"] == "succeeded"
    w.call("ada", "GET", route, path=ids)
    # the migration alone (conveyor migrate): the serving release's, which stays
    route = v1 + "/environments/{environment}/migrate"
    alone = w.call("ada", "POST", route, status=201, path={"environment": "linted"}, json={})
    assert alone["kind"] == "migrate" and w.finished(alone["id"])["state"] == "succeeded"

    # the deploy calendar: a scheduled environment, and one without a schedule
    freeze = w.call("ada", "POST", v1 + "/freezes", status=201, json={"environment": "quiet", "reason": "audit week"})
    w.call("ada", "GET", v1 + "/freezes", params={"environment": "quiet"})
    w.call("ada", "GET", v1 + "/calendar", params={"environment": "quiet", "days": 2})
    w.call("ada", "GET", v1 + "/calendar", params={"environment": "staging"})
    w.call("ada", "DELETE", v1 + "/freezes/{freeze_id}", path={"freeze_id": freeze["id"]})

    # GitHub webhooks: a ping, an event Conveyor does not handle, a ping for one service
    w.hook(v1 + "/hooks/github", "ping", {"zen": "Keep it logically awesome."})
    w.hook(v1 + "/hooks/github", "issues", {"action": "opened"})
    w.hook(v1 + "/hooks/github/{service}", "ping", {"zen": "Design for failure."}, service="shop")

    # flags, their environments, SDK keys, the ruleset and its stream
    flags = v1 + "/flags"
    w.call("ada", "POST", flags, status=201, json={"key": "banner", "variants": [{"name": "blue", "value": True}]})
    w.call("ada", "GET", flags)
    w.call("ada", "GET", flags + "/{key}", path={"key": "banner"})
    w.call("ada", "PATCH", flags + "/{key}", path={"key": "banner"}, json={"description": "the top banner"})
    state = flags + "/{key}/environments/{environment}"
    rule = {"constraints": [{"attribute": "country", "operator": "IN", "values": ["SE"]}], "rollout": 50}
    w.call("ada", "PUT", state, path={"key": "banner", "environment": "staging"}, json={"strategies": [rule]})
    for action in ("on", "off"):
        w.call("ada", "POST", state + "/" + action, path={"key": "banner", "environment": "staging"})
    w.call("ada", "POST", state + "/kill", path={"key": "banner", "environment": "staging"}, json={"reason": "oops"})
    w.call("ada", "POST", state + "/rollout", path={"key": "banner", "environment": "staging"}, json={"percent": 25})
    key = w.call("ada", "POST", flags + "/sdk-keys", status=201, json={"environment": "staging", "name": "web"})
    w.call("ada", "GET", flags + "/sdk-keys")
    w.tokens["sdk"] = key["key"]
    w.call("sdk", "GET", flags + "/ruleset")
    with httpx.stream("GET", w.server.url + flags + "/stream", headers={"X-API-Key": key["key"]}, timeout=30) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
    w.answers.append(("GET", flags + "/stream", None))
    w.call("ada", "DELETE", flags + "/sdk-keys/{key_id}", path={"key_id": key["id"]})
    w.call("ada", "DELETE", flags + "/{key}", path={"key": "banner"})
    segment = flags + "/segments/{name}"
    w.call(
        "ada", "POST", flags + "/segments", status=201, json={"name": "beta", "constraints": [rule["constraints"][0]]}
    )
    w.call("ada", "GET", flags + "/segments")
    w.call("ada", "GET", segment, path={"name": "beta"})
    w.call("ada", "PATCH", segment, path={"name": "beta"}, json={"description": "beta testers"})
    w.call("ada", "DELETE", segment, path={"name": "beta"})
    export = {"version": 2, "features": [{"name": "imported", "enabled": True, "strategies": [{"name": "default"}]}]}
    body = {"environment": "staging", "export": export, "dry_run": True}
    w.call("ada", "POST", flags + "/import/unleash", json=body)

    # the local target: a deploy on the agent, its instances' output, maintenance mode
    edge = w.call("ada", "POST", v1 + "/deployments", status=201, json={"environment": "edge", "ref": "main"})
    assert w.finished(edge["id"])["state"] == "succeeded"
    output = w.call("ada", "GET", v1 + "/environments/{environment}/logs", path={"environment": "edge"})
    assert output["agent"] and output["instances"], output
    for on in (True, False):
        w.call(
            "ada", "POST", v1 + "/environments/{environment}/maintenance", path={"environment": "edge"}, json={"on": on}
        )

    # accounts, tokens and the audit log
    user = v1 + "/users/{name}"
    w.call("ada", "POST", user + "/disable", path={"name": "rita"})
    w.call("ada", "POST", user + "/enable", path={"name": "rita"})
    w.call("ada", "PUT", user + "/roles", path={"name": "rita"}, json={"roles": ["release_manager", "manager"]})
    w.call("ada", "PUT", user + "/password", path={"name": "rita"}, json={"password": "correct horse battery"})
    tokens = w.call("ada", "GET", v1 + "/tokens")
    rita = next(t for t in tokens if t["user"] == "rita")
    w.call("ada", "POST", v1 + "/tokens/{token_id}/revoke", path={"token_id": rita["id"]})
    w.call("ada", "GET", v1 + "/audit", params={"limit": 500})

    # hotfixes and reverts (docs/hotfix.md): a branch from staging's release, an override, a revert on main
    w.call("ada", "POST", v1 + "/hotfixes", status=201, json={"environment": "staging", "name": "contract"})
    body = {"environment": "production", "ref": "main", "reason": "contract walk"}
    w.call("ada", "POST", v1 + "/missing-commits/overrides", status=201, json=body)
    commit(repo, {"app.txt": "version three\n"}, "v3")
    third = w.call("ada", "POST", v1 + "/deployments", status=201, json={"environment": "staging", "ref": "main"})
    assert w.finished(third["id"])["state"] == "succeeded"
    w.call("ada", "POST", v1 + "/reverts", status=201, json={"environment": "staging"})
    w.call("ada", "GET", v1 + "/merge-backs", params={"all": True})

    # notifications: a sample through staging's notifiers (it has none: an empty answer)
    w.call("ada", "POST", v1 + "/environments/{environment}/notify/test", path={"environment": "staging"}, json={})


def test_every_api_route_declares_its_response() -> None:
    """Straight from the app: no server needed."""
    settings = Settings(home=Path("/nonexistent/conveyor-contract"))
    app = create_app(Runtime(settings=settings, db=Database("sqlite://")))
    operations = schema_operations(app.openapi())
    assert len(operations) > 40
    missing = [f"{m} {p}" for (m, p), response in operations.items() if not response.get("content")]
    assert not missing, f"routes without a response schema: {missing}"
    for (method, path), response in operations.items():
        content = response["content"]
        if "application/json" in content:
            assert declared(response) is not None, f"{method} {path}"
            ref = json.dumps(content["application/json"]["schema"])
            assert "$ref" in ref, f"{method} {path} declares a JSON answer without a model: {ref}"


def test_the_walk_calls_every_route(walk: Walk) -> None:
    """A new route needs its step in ``_walk``: its answer is checked only there."""
    operations = schema_operations(httpx.get(walk.server.url + "/openapi.json", timeout=30).json())
    walked = {(method, route) for method, route, _ in walk.answers}
    assert walked == set(operations), (
        f"routes not walked: {sorted(set(operations) - walked)}; unknown: {sorted(walked - set(operations))}"
    )


def test_every_answer_validates_against_its_declared_model(walk: Walk) -> None:
    operations = schema_operations(httpx.get(walk.server.url + "/openapi.json", timeout=30).json())
    problems = []
    for method, route, body in walk.answers:
        model = declared(operations[(method, route)])
        if model is None:
            continue
        adapter: TypeAdapter[Any] = TypeAdapter(model)
        try:
            value = adapter.validate_python(body)
        except ValueError as exc:
            problems.append(f"{method} {route}: does not validate: {exc}")
            continue
        problems += [f"{method} {route}: undeclared key {where}" for where in undeclared(value)]
        again = adapter.dump_python(value, mode="json", by_alias=True, exclude_unset=True)
        raw = route.endswith("/ruleset")  # served as the SDKs' document (sorted keys), not through the model
        if json.dumps(again, sort_keys=raw) != json.dumps(body, sort_keys=raw):  # same keys, order and values
            problems.append(f"{method} {route}: the model writes it differently:\n{again}\n!=\n{body}")
    assert not problems, "\n".join(problems)


def test_answers_carry_the_values_the_records_write(walk: Walk) -> None:
    """The models change nothing: a deployment and the accounts read through the API are what
    the records' own ``as_json`` made of them before there were response models."""
    from conveyor.auth import accounts
    from conveyor.store import deployments as store

    db = Database(walk.database_url)
    try:
        with db.read() as conn:
            for d in store.list_deployments(conn, limit=100):
                if d.state.value not in FINISHED:
                    continue
                steps = [s.as_json() for s in store.get_steps(conn, d.id)]
                answer = walk.call("ada", "GET", "/api/v1/deployments/{deployment_id}", path={"deployment_id": d.id})
                assert answer == {**d.as_json(), "steps": steps}
            users = [a.as_json() for a in accounts.list_accounts(conn)]
    finally:
        db.dispose()
    assert walk.call("ada", "GET", "/api/v1/users") == users

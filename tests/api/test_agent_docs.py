"""The agent's API has no open door (issue 11): /docs, /redoc and /openapi.json were served
without the agent token, describing every route; now they do not exist, while the token still
opens the real API. A real agent process, started as the server starts it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from tests.conftest import wait_until

from conveyor.agent.client import ensure_agent


def test_the_agent_serves_no_docs_and_needs_its_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    client = ensure_agent(home)
    try:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            r = httpx.get(client.url + path, timeout=10)
            assert r.status_code in (401, 404), (path, r.status_code)
            assert "swagger" not in r.text.lower() and "/v1/environments" not in r.text
        assert httpx.get(client.url + "/v1/health", timeout=10).status_code == 401
        assert client.http.get("/v1/health").status_code == 200
    finally:
        pid = json.loads((home / "agent" / "agent.json").read_text())["pid"]
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not (home / "agent" / "agent.json").exists(), what="the agent to stop")

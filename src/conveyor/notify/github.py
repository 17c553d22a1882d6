"""github: the GitHub Deployments API. A deployment's first event creates a GitHub deployment of
its commit for its environment (``POST /repos/OWNER/NAME/deployments``); each event then adds a
status (``POST .../deployments/ID/statuses``): queued, in_progress, then success, failure or
inactive. Pull requests whose commits are deployed then show it ("deployed to production")."""

from __future__ import annotations

from typing import Any

import httpx

from conveyor import __version__, httpclient
from conveyor.notify.base import NOTIFIERS, Delivery, Refused, Retry, resolve

EVENTS = frozenset({"requested", "started", "succeeded", "failed", "rolled_back", "cancelled"})
API_VERSION = "2022-11-28"


def status_of(event: str, kind: str) -> str:
    if event == "rolled_back":  # a rollback deployment that worked serves its commit
        return "success" if kind == "rollback" else "failure"
    return {
        "requested": "queued",
        "started": "in_progress",
        "succeeded": "success",
        "failed": "failure",
        "cancelled": "inactive",
    }[event]


class GithubNotifier:
    style = "plain"

    def events(self, config: dict[str, Any]) -> frozenset[str]:
        return EVENTS

    def send(self, delivery: Delivery) -> str:
        v = delivery.message.values
        repository = delivery.config.get("repository") or v.get("github_repository")
        if not repository:
            raise Refused("no repository: set github.repository, or register the service with its GitHub repository")
        token = resolve(delivery.config.get("token"), "github.token")
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"Conveyor/{__version__}",
        }
        base = delivery.settings.github_api_url.rstrip("/") + f"/repos/{repository}"
        with httpclient.client(headers=headers, timeout=delivery.timeout) as client:
            if delivery.deployment_id is None:  # a sample: can the token see the repository?
                _check(client.get(base), "reading the repository")
                return f"{repository} is reachable with the token"
            thread = delivery.thread
            done = []
            if thread is None:
                created = _check(
                    client.post(
                        base + "/deployments",
                        json={
                            "ref": v["sha"],
                            "task": "deploy",
                            "auto_merge": False,
                            "required_contexts": [],
                            "environment": v["environment"],
                            "description": f"{v['service']} {v['release']} by {v['actor']} (Conveyor)"[:140],
                            "payload": {"conveyor_deployment": v["id"], "service": v["service"]},
                            "production_environment": v["environment"] == "production",
                            "transient_environment": False,
                        },
                    ),
                    "creating the deployment",
                )
                thread = {"id": created["id"]}
                delivery.keep_thread(thread)
                done.append(f"created deployment {created['id']}")
            state = status_of(delivery.message.event, str(v.get("kind")))
            status: dict[str, Any] = {
                "state": state,
                "description": delivery.message.text.partition("\n")[0][:140],
                "environment": v["environment"],
                "log_url": v["dashboard_url"],
                "auto_inactive": True,
            }
            if v.get("environment_url"):
                status["environment_url"] = v["environment_url"]
            _check(client.post(base + f"/deployments/{thread['id']}/statuses", json=status), "adding a status")
            done.append(f"status {state}")
        return ", ".join(done)


def _check(response: httpx.Response, doing: str) -> dict[str, Any]:
    if response.is_success:
        body = response.json()
        return body if isinstance(body, dict) else {}
    detail = f"GitHub answered {response.status_code} {doing}: {response.text[:200]}"
    limited = response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"
    if response.status_code in (408, 429) or response.status_code >= 500 or limited:
        after = response.headers.get("retry-after")
        raise Retry(detail, float(after) if after and after.isdigit() else None)
    raise Refused(detail)


NOTIFIERS.register("github", GithubNotifier())

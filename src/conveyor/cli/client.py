"""The CLI's HTTP client for the REST API (CONVEYOR_URL, CONVEYOR_TOKEN)."""

from __future__ import annotations

from typing import Any

import httpx

from conveyor.errors import Conflict, ConveyorError, Forbidden, InvalidInput, NotFound, Unauthorized
from conveyor.settings import Settings

_KINDS: dict[str, type[ConveyorError]] = {
    "invalid": InvalidInput,
    "not_found": NotFound,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "conflict": Conflict,
}


class SpecProblems(InvalidInput):
    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class Client:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        headers = {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}
        self.http = httpx.Client(base_url=self.settings.url.rstrip("/"), headers=headers, timeout=60)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, "/api/v1" + path, **kwargs)
        except httpx.TransportError as exc:
            raise ConveyorError(
                f"cannot reach the Conveyor server at {self.settings.url}: {exc}",
                fix="start it with `conveyor server`, or set CONVEYOR_URL",
            ) from exc
        if response.status_code == 401 and not self.settings.token:
            raise Unauthorized(
                "no API token is set for the CLI",
                fix="set CONVEYOR_TOKEN (create one with `conveyor tokens create USER`)",
            )
        if response.status_code >= 400:
            raise self._error(response)
        return response.json() if response.content else None

    def _error(self, response: httpx.Response) -> ConveyorError:
        try:
            body = response.json()
        except ValueError:
            return ConveyorError(f"the server answered {response.status_code}: {response.text[:500]}")
        if isinstance(body, dict) and "problems" in body:
            return SpecProblems(body.get("message", "invalid conveyor.yml"), body["problems"])
        if isinstance(body, dict) and "message" in body:
            cls = _KINDS.get(str(body.get("error")), ConveyorError)
            return cls(body["message"], body.get("fix"))
        if isinstance(body, dict) and "detail" in body:  # FastAPI's own validation errors
            return InvalidInput(f"the server refused the request: {body['detail']}")
        return ConveyorError(f"the server answered {response.status_code}: {body}")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})

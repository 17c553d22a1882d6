"""The CLI's HTTP client for the REST API (CONVEYOR_URL, CONVEYOR_TOKEN). Answers parse into the
API's own response models (api/models*.py): ``client.get_as(DeploymentDetail, ...)``."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from conveyor import httpclient
from conveyor.errors import Conflict, ConveyorError, Forbidden, InvalidInput, NotFound, Unauthorized
from conveyor.settings import Settings

_KINDS: dict[str, type[ConveyorError]] = {
    "invalid": InvalidInput,
    "not_found": NotFound,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "conflict": Conflict,
}


T = TypeVar("T")


def parse(shape: type[T], data: Any) -> T:
    """``data`` (an answer's JSON) as ``shape``: a response model, or e.g. ``list[Model]``."""
    return TypeAdapter(shape).validate_python(data)


def wire(value: Any) -> Any:
    """A parsed answer as the server sent it, for ``--json`` (the models change no key or value)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, list):
        return [wire(item) for item in value]
    return value


class SpecProblems(InvalidInput):
    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class Client:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        headers = {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}
        self.http = httpclient.client(self.settings.url.rstrip("/"), headers=headers, timeout=60)

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

    def get_as(self, shape: type[T], path: str, **params: Any) -> T:
        return parse(shape, self.get(path, **params))

    def send_as(self, shape: type[T], method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> T:
        """POST, PUT, PATCH or DELETE ``body`` (JSON) with query ``params``; the answer as ``shape``."""
        kwargs: dict[str, Any] = {"params": {k: v for k, v in params.items() if v is not None}}
        if body is not None or method == "POST":
            kwargs["json"] = body or {}
        return parse(shape, self.request(method, path, **kwargs))

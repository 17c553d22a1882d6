"""Local receivers for the outside systems notifications talk to, each a real HTTP (or SMTP)
server speaking the documented format and checking what it is sent against it:

- Slack: the Web API methods chat.postMessage and chat.update (JSON bodies, bearer token, answers
  with ``ok``, ``channel`` as an ID and ``ts``; chat.update accepts only a channel ID and a ts it
  gave out) and incoming webhooks (JSON with ``text``, answered ``ok``);
- GitHub: POST /repos/OWNER/NAME/deployments and .../deployments/ID/statuses (the REST API's
  request fields, states and the 140-character description limit), GET /repos/OWNER/NAME;
- signed webhooks: the body and headers, with the signature checked;
- SMTP: aiosmtpd.

Each can be stopped and started again on the same port (a receiver that is down refuses
connections), and the Slack one can answer late."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conveyor.devserver import free_port

SLACK_TOKEN = "xoxb-test-token"
CHANNEL_ID = "C0DEPLOYS"
TS = re.compile(r"^\d{10}\.\d{6}$")
POST_MESSAGE_ARGS = {
    "channel", "text", "thread_ts", "reply_broadcast", "unfurl_links", "unfurl_media", "blocks", "attachments",
    "mrkdwn", "parse", "link_names", "icon_emoji", "icon_url", "username", "metadata",
}  # fmt: skip
UPDATE_ARGS = {"channel", "ts", "text", "blocks", "attachments", "parse", "link_names", "reply_broadcast", "metadata"}
WEBHOOK_ARGS = {"text", "blocks", "attachments", "unfurl_links", "unfurl_media", "mrkdwn", "thread_ts", "response_type"}
STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
DEPLOYMENT_ARGS = {
    "ref", "task", "auto_merge", "required_contexts", "payload", "environment", "description",
    "transient_environment", "production_environment",
}  # fmt: skip
STATUS_ARGS = {"state", "target_url", "log_url", "description", "environment", "environment_url", "auto_inactive"}


@dataclass
class Call:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    answered_at: float = 0.0


class HttpReceiver:
    """A threaded HTTP server on a fixed port; ``handle`` answers (status, JSON or text)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[Call] = []
        self.problems: list[str] = []
        self.delay = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                call = Call(time.monotonic(), self.command, self.path, dict(self.headers.items()), body, parsed)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    status, answer = receiver.handle(call)
                    receiver.calls.append(call)
                call.answered_at = time.monotonic()
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                kind = "text/plain" if isinstance(answer, str) else "application/json; charset=utf-8"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _any

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def handle(self, call: Call) -> tuple[int, Any]:
        raise NotImplementedError


class SlackReceiver(HttpReceiver):
    """Slack's Web API (under /api/) and incoming webhooks (under /services/)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: dict[str, dict[str, Any]] = {}  # ts -> the message as it stands
        self._ts = 1_700_000_000_000_100

    def webhook_url(self, name: str = "T0/B0/XXXX") -> str:
        return f"{self.url}/services/{name}"

    def handle(self, call: Call) -> tuple[int, Any]:
        if call.path.startswith("/services/"):
            body = call.json
            if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
                self.problem(f"incoming webhook without text: {call.body!r}")
                return 400, "invalid_payload"
            if set(body) - WEBHOOK_ARGS:
                self.problem(f"incoming webhook with unknown fields {set(body) - WEBHOOK_ARGS}")
            return 200, "ok"
        method = call.path.removeprefix("/api/")
        if call.headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            return 200, {"ok": False, "error": "invalid_auth"}
        body = call.json
        if not isinstance(body, dict):
            self.problem(f"{method}: not a JSON body: {call.body!r}")
            return 200, {"ok": False, "error": "invalid_arguments"}
        if method == "chat.postMessage":
            return self._post(body)
        if method == "chat.update":
            return self._update(body)
        self.problem(f"unknown method {method}")
        return 200, {"ok": False, "error": "unknown_method"}

    def _next_ts(self) -> str:
        self._ts += 100
        text = str(self._ts)
        return f"{text[:10]}.{text[10:]}"

    def _post(self, body: dict[str, Any]) -> tuple[int, Any]:
        if set(body) - POST_MESSAGE_ARGS:
            self.problem(f"chat.postMessage: unknown arguments {set(body) - POST_MESSAGE_ARGS}")
        if body.get("channel") not in ("#deployments", CHANNEL_ID):
            return 200, {"ok": False, "error": "channel_not_found"}
        if not isinstance(body.get("text"), str) or not body["text"]:
            return 200, {"ok": False, "error": "no_text"}
        thread = body.get("thread_ts")
        if thread is not None and thread not in self.messages:
            self.problem(f"chat.postMessage: thread_ts {thread!r} is no message of this channel")
            return 200, {"ok": False, "error": "thread_not_found"}
        if "reply_broadcast" in body and (thread is None or not isinstance(body["reply_broadcast"], bool)):
            self.problem("chat.postMessage: reply_broadcast without thread_ts, or not a boolean")
        ts = self._next_ts()
        message = {"type": "message", "text": body["text"], "ts": ts, "bot_id": "B0CONVEYOR"}
        if thread:
            message["thread_ts"] = thread
        self.messages[ts] = message
        return 200, {"ok": True, "channel": CHANNEL_ID, "ts": ts, "message": message}

    def _update(self, body: dict[str, Any]) -> tuple[int, Any]:
        if set(body) - UPDATE_ARGS:
            self.problem(f"chat.update: unknown arguments {set(body) - UPDATE_ARGS}")
        if body.get("channel") != CHANNEL_ID:  # chat.update takes the channel's ID, not its name
            self.problem(f"chat.update: channel must be the ID the post answered, got {body.get('channel')!r}")
            return 200, {"ok": False, "error": "channel_not_found"}
        ts = body.get("ts")
        if not isinstance(ts, str) or not TS.match(ts) or ts not in self.messages:
            return 200, {"ok": False, "error": "message_not_found"}
        if not isinstance(body.get("text"), str) or not body["text"]:
            return 200, {"ok": False, "error": "no_text"}
        self.messages[ts]["text"] = body["text"]
        return 200, {"ok": True, "channel": CHANNEL_ID, "ts": ts, "text": body["text"]}

    def log(self) -> list[tuple[str, str | None, str]]:
        """(method, thread_ts or ts, text) of each accepted call, in order."""
        out = []
        for c in self.calls:
            if c.path.startswith("/services/"):
                out.append(("webhook", None, c.json["text"]))
            elif c.json and c.path.endswith("chat.postMessage"):
                out.append(("post", c.json.get("thread_ts"), c.json["text"]))
            elif c.json and c.path.endswith("chat.update"):
                out.append(("update", c.json.get("ts"), c.json["text"]))
        return out


class GithubReceiver(HttpReceiver):
    TOKEN = "ghp_test"

    def __init__(self) -> None:
        super().__init__()
        self.deployments: dict[int, dict[str, Any]] = {}
        self.statuses: list[tuple[int, dict[str, Any]]] = []

    def handle(self, call: Call) -> tuple[int, Any]:
        h = {k.lower(): v for k, v in call.headers.items()}
        if h.get("authorization") != f"Bearer {self.TOKEN}":
            return 401, {"message": "Bad credentials"}
        if h.get("accept") != "application/vnd.github+json" or not h.get("x-github-api-version"):
            self.problem(f"headers: {h}")
        if call.method == "GET" and re.fullmatch(r"/repos/[^/]+/[^/]+", call.path):
            return 200, {"full_name": call.path.removeprefix("/repos/")}
        body = call.json if isinstance(call.json, dict) else {}
        if match := re.fullmatch(r"/repos/([^/]+)/([^/]+)/deployments", call.path):
            if set(body) - DEPLOYMENT_ARGS or not isinstance(body.get("ref"), str):
                self.problem(f"create deployment: {body}")
                return 422, {"message": "Validation Failed"}
            if len(body.get("description") or "") > 140 or not isinstance(body.get("required_contexts", []), list):
                self.problem(f"create deployment: {body}")
            deployment_id = 1000 + len(self.deployments)
            self.deployments[deployment_id] = {"repo": f"{match[1]}/{match[2]}", **body}
            answer = {"id": deployment_id, "sha": body["ref"], "ref": body["ref"], "environment": body["environment"]}
            return 201, answer
        if match := re.fullmatch(r"/repos/[^/]+/[^/]+/deployments/(\d+)/statuses", call.path):
            if int(match[1]) not in self.deployments:
                return 404, {"message": "Not Found"}
            if set(body) - STATUS_ARGS or body.get("state") not in STATES or len(body.get("description", "")) > 140:
                self.problem(f"create status: {body}")
                return 422, {"message": "Validation Failed"}
            self.statuses.append((int(match[1]), body))
            return 201, {"id": len(self.statuses), "state": body["state"]}
        self.problem(f"unknown route {call.method} {call.path}")
        return 404, {"message": "Not Found"}


class WebhookReceiver(HttpReceiver):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def handle(self, call: Call) -> tuple[int, Any]:
        expected = "sha256=" + hmac.new(self.secret.encode(), call.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(call.headers.get("X-Conveyor-Signature-256", ""), expected):
            self.problem(f"bad signature on {call.body!r}")
            return 401, {"error": "bad signature"}
        return 204, ""


@dataclass
class Mailbox:
    """aiosmtpd on a free port; ``mails`` are (recipients, parsed message)."""

    port: int = field(default_factory=free_port)
    mails: list[tuple[list[str], Any]] = field(default_factory=list)
    controller: Any = None

    def start(self) -> Mailbox:
        from aiosmtpd.controller import Controller

        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.mails.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

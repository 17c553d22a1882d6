"""slack: through the official ``slack_sdk``.

- ``webhook``: an incoming webhook, one message per event.
- ``token`` + ``channel``: the Web API. The first message about a deployment is posted
  (``chat.postMessage``) and becomes its message: every later event updates it in place
  (``chat.update``) with the deployment's state and steps; approval requests, failures, rollbacks,
  the completion message and a hotfix's merge-back due are replies in its thread (the outcomes and
  the merge-back also sent to the channel).
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from conveyor.notify.base import NOTIFIERS, Delivery, Refused, Retry, resolve

REPLIES = frozenset(
    {"approval", "succeeded", "failed", "rolled_back", "cancelled", "merge_back_due", "monitoring_breach"}
)
BROADCAST = frozenset({"succeeded", "failed", "rolled_back", "merge_back_due", "monitoring_breach"})
# Web API errors that trying again will not mend
_FINAL = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "missing_scope",
        "msg_too_long",
        "invalid_arguments",
        "no_text",
    }
)


class SlackNotifier:
    style = "slack"

    def events(self, config: dict[str, Any]) -> frozenset[str]:
        return frozenset(config.get("events") or ())

    def send(self, delivery: Delivery) -> str:
        config = delivery.config
        if config.get("webhook"):
            return self._webhook(delivery, str(resolve(config["webhook"], "slack.webhook")))
        token = resolve(config.get("token"), "slack.token")
        client = WebClient(
            token=token, base_url=delivery.settings.slack_api_url, timeout=int(delivery.timeout), retry_handlers=[]
        )
        try:
            return self._bot(delivery, client, str(config["channel"]))
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if (exc.response is not None and exc.response.status_code == 429) or error == "ratelimited":
                after = exc.response.headers.get("Retry-After") if exc.response is not None else None
                raise Retry("Slack: rate limited", float(after) if after else None) from exc
            if error in _FINAL:
                raise Refused(f"Slack refused it: {error}") from exc
            raise Retry(f"Slack: {error or exc}") from exc

    def _webhook(self, delivery: Delivery, url: str) -> str:
        client = WebhookClient(url, timeout=int(delivery.timeout), retry_handlers=[])
        response = client.send(text=delivery.message.text, unfurl_links=False, unfurl_media=False)
        if response.status_code == 200:
            return "posted to the incoming webhook"
        detail = f"Slack webhook answered {response.status_code} {response.body[:200]!r}"
        if response.status_code == 429:
            after = response.headers.get("Retry-After") or response.headers.get("retry-after")
            raise Retry(detail, float(after) if after else None)
        if 400 <= response.status_code < 500 and response.status_code != 408:
            raise Refused(detail)
        raise Retry(detail)

    def _bot(self, delivery: Delivery, client: WebClient, channel: str) -> str:
        message = delivery.message
        if delivery.deployment_id is None:  # a sample (`conveyor notify test`): one plain message
            client.chat_postMessage(channel=channel, text=message.text, unfurl_links=False, unfurl_media=False)
            return f"posted to {channel}"
        thread = delivery.thread
        done = []
        if thread is None:
            posted = client.chat_postMessage(channel=channel, text=message.summary, unfurl_links=False)
            thread = {"channel": posted["channel"], "ts": posted["ts"]}
            delivery.keep_thread(thread)  # kept at once: a retry updates this message, never posts another
            done.append("posted the deployment's message")
        else:
            client.chat_update(channel=thread["channel"], ts=thread["ts"], text=message.summary)
            done.append("updated the deployment's message")
        if message.event in REPLIES:
            client.chat_postMessage(
                channel=thread["channel"],
                thread_ts=thread["ts"],
                text=message.text,
                reply_broadcast=message.event in BROADCAST,
                unfurl_links=False,
            )
            done.append("replied in its thread")
        return " and ".join(done)


NOTIFIERS.register("slack", SlackNotifier())

"""email: mail through the server's mail server (``CONVEYOR_SMTP_URL``), by default only for
approval requests, to the approvers (their addresses from ``CONVEYOR_NOTIFY_PEOPLE``) and to
whoever ``to`` lists."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from conveyor.notify.base import NOTIFIERS, Delivery, Refused, Retry

_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class EmailNotifier:
    style = "plain"

    def events(self, config: dict[str, Any]) -> frozenset[str]:
        return frozenset(config.get("events") or ())

    def send(self, delivery: Delivery) -> str:
        settings = delivery.settings
        if not settings.smtp_url:
            raise Refused("no mail server: set CONVEYOR_SMTP_URL (e.g. smtp+starttls://mail.example.com:587)")
        to = list(dict.fromkeys([*delivery.config.get("to", []), *delivery.message.recipients]))
        if not to:
            raise Refused("nobody to mail: no `to` addresses, and no approver has an email in CONVEYOR_NOTIFY_PEOPLE")
        url = urlsplit(settings.smtp_url)
        if url.scheme not in _PORTS or not url.hostname:
            raise Refused(f"CONVEYOR_SMTP_URL {settings.smtp_url!r} is not smtp://, smtp+starttls:// or smtps://HOST")
        mail = EmailMessage()
        subject, _, _ = delivery.message.text.partition("\n")
        mail["Subject"] = subject[:200]
        mail["From"] = settings.smtp_from
        mail["To"] = ", ".join(to)
        mail.set_content(delivery.message.text + "\n")
        port = url.port or _PORTS[url.scheme]
        smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        try:
            with smtp_class(url.hostname, port, timeout=delivery.timeout) as smtp:
                if url.scheme == "smtp+starttls":
                    smtp.starttls()
                if settings.smtp_user:
                    smtp.login(settings.smtp_user, settings.smtp_password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise Refused(f"the mail server refused every recipient: {', '.join(exc.recipients)}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise Refused(f"the mail server refused the login: {exc.smtp_error!r}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise Retry(f"mail server: {exc}") from exc
        sent = [a for a in to if a not in refused]
        return f"mailed {', '.join(sent)}"


NOTIFIERS.register("email", EmailNotifier())

"""Sending alert emails over SMTP: stdlib smtplib, one message per recipient, in a thread.

One message per recipient keeps customers' addresses apart (operators and contacts of an
account never see each other) and lets one refused mailbox fail alone.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from linkcert.config import Settings
from linkcert.notify.jobs import Attempt, DeliveryJob
from linkcert.notify.messages import EmailText, render_email
from linkcert.store.models import utcnow

IMPLICIT_TLS_PORT = 465


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    # Kept out of repr() so that it never reaches a log line or a traceback.
    password: str | None = None
    starttls: bool = True
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"SmtpSettings(host={self.host!r}, port={self.port}, sender={self.sender!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings | None:
        if not settings.smtp_host or not settings.smtp_from:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
        )


def build_message(
    smtp: SmtpSettings, recipient: str, text: EmailText, reference: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = recipient
    message["Subject"] = text.subject
    message["Date"] = format_datetime(utcnow())
    sender_domain = smtp.sender.rpartition("@")[2].strip(">") or "localhost"
    message["Message-ID"] = make_msgid(idstring=reference, domain=sender_domain)
    # RFC 3834: tells auto-responders (vacation replies) not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Linkcert-Event"] = reference
    message.set_content(text.body)
    return message


def send_message(smtp: SmtpSettings, message: EmailMessage) -> None:
    """Hand one message to the SMTP server (blocking)."""
    client: smtplib.SMTP
    if smtp.port == IMPLICIT_TLS_PORT:
        client = smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        if smtp.starttls and smtp.port != IMPLICIT_TLS_PORT:
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
        client.send_message(message)


class EmailSender:
    """Sends the email deliveries of the delivery loop."""

    channel = "email"

    def __init__(self, smtp: SmtpSettings) -> None:
        self.smtp = smtp

    async def send(self, job: DeliveryJob, now: datetime) -> Attempt:
        text = render_email(job.notification, now)
        message = build_message(self.smtp, job.target, text, job.notification.public_id)
        try:
            await asyncio.to_thread(send_message, self.smtp, message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(code >= 500 for code in codes)
            return Attempt.failed(
                f"the server refused the recipient: {_codes(exc)}", permanent=permanent
            )
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return Attempt.failed(f"SMTP {exc.smtp_code}: {reply}"[:500])
        except (OSError, smtplib.SMTPException) as exc:
            return Attempt.failed(_describe(exc))
        return Attempt.ok()

    async def aclose(self) -> None:
        return None


def _codes(exc: smtplib.SMTPRecipientsRefused) -> str:
    parts = []
    for address, (code, reply) in exc.recipients.items():
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        parts.append(f"{address}: {code} {text}")
    return "; ".join(parts)[:500]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the SMTP server did not answer in time"
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}"[:500] if detail else type(exc).__name__

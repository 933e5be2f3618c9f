"""Sending email: over SMTP (one URL configures it), or into a local Maildir when none is set.

    smtp://host[:25]                 plain (for a relay on the same host or network)
    smtp+starttls://user:pass@host[:587]
    smtps://user:pass@host[:465]     implicit TLS
    ...?timeout=30                   seconds per SMTP command

The SMTP connection is kept and reused across messages. A 4xx reply is temporary, a 5xx reply
permanent, per recipient when the server refuses only some of them; connection and login
failures are temporary (a wrong password is fixed by the operator, and no mail is lost meanwhile).
"""

from __future__ import annotations

import email.generator
import io
import logging
import mailbox
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
# A kept connection idle for longer than this is checked with NOOP before it is used: servers
# drop idle clients, and finding out in the middle of a message costs a retry.
IDLE_CHECK_SECONDS = 10.0


@dataclass
class Outcome:
    """What happened to each envelope recipient of one message."""

    delivered: list[str] = field(default_factory=list)
    temporary: dict[str, str] = field(default_factory=dict)
    permanent: dict[str, str] = field(default_factory=dict)


class Mailer(Protocol):
    def prepare(self, message: Message, sender: str, recipients: Sequence[str]) -> Message | bytes:
        """What `send` is given for this message: the work that can be done ahead of it
        (the delivery loop does it in another thread while the previous message is sent)."""
        ...

    def send(self, message: Message | bytes, sender: str, recipients: Sequence[str]) -> Outcome: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    security: str  # "plain", "starttls" or "tls"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:  # never print the password
        return f"SmtpTarget({self.security}://{self.host}:{self.port})"


def parse_url(url: str) -> SmtpTarget:
    """An SMTP URL (see the module doc); ValueError says what is wrong, without the password."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError("must start with smtp://, smtp+starttls:// or smtps://")
    if not parts.hostname:
        raise ValueError("has no host")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        timeout = float(parse_qs(parts.query).get("timeout", ["30"])[0])
    except ValueError:
        raise ValueError("has a bad port or timeout") from None
    security = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}[parts.scheme]
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


class SmtpMailer:
    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if t.security == "tls":
            smtp = smtplib.SMTP_SSL(t.host, t.port, timeout=t.timeout, context=context)
        else:
            smtp = smtplib.SMTP(t.host, t.port, timeout=t.timeout)
        try:
            smtp.ehlo()
            if t.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if t.username:
                smtp.login(t.username, t.password or "")
        except BaseException:
            smtp.close()
            raise
        log.info("SMTP connected", extra={"smtp": repr(t)})
        return smtp

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None and time.monotonic() - self._last_used > IDLE_CHECK_SECONDS:
            try:
                self._smtp.noop()
            except (OSError, smtplib.SMTPException):
                self.close()
        if self._smtp is None:
            self._smtp = self._connect()
        return self._smtp

    def prepare(self, message: Message, sender: str, recipients: Sequence[str]) -> Message | bytes:
        """The message as SMTP carries it (CRLF line ends), as `smtplib.send_message` makes it:
        flattening took a sixth of each delivery. Left to `send_message` when an address is
        not ASCII (SMTPUTF8 then depends on what the server says it supports)."""
        if not "".join([sender, *recipients]).isascii():
            return message
        with io.BytesIO() as buffer:
            email.generator.BytesGenerator(buffer).flatten(message, linesep="\r\n")
            return buffer.getvalue()

    def send(self, message: Message | bytes, sender: str, recipients: Sequence[str]) -> Outcome:
        outcome = Outcome()
        recipients = list(recipients)
        try:
            smtp = self._connection()
        except (OSError, smtplib.SMTPException) as exc:
            # Whatever the reply (even a 5xx greeting or login refusal), it is about the server
            # or our configuration, not the message: retried.
            self.close()
            reason = f"cannot connect to {self.target.host}:{self.target.port}: {exc}"
            outcome.temporary.update(dict.fromkeys(recipients, reason))
            return outcome
        refused: dict[str, tuple[int, bytes]] = {}
        try:
            if isinstance(message, bytes):
                refused = smtp.sendmail(sender, recipients, message)
            else:
                refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients  # every recipient refused; the connection is still good
        except smtplib.SMTPResponseException as exc:
            # Refused as a whole (MAIL FROM or DATA); 421 means the server is hanging up.
            if exc.smtp_code == 421:
                self.close()
            permanent = 500 <= exc.smtp_code < 600
            target = outcome.permanent if permanent else outcome.temporary
            target.update(dict.fromkeys(recipients, _reply(exc.smtp_code, exc.smtp_error)))
            return outcome
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            reason = f"connection to {self.target.host}:{self.target.port} failed: {exc}"
            outcome.temporary.update(dict.fromkeys(recipients, reason))
            return outcome
        finally:
            self._last_used = time.monotonic()
        for address in recipients:
            if address in refused:
                code, text = refused[address]
                target = outcome.permanent if 500 <= code < 600 else outcome.temporary
                target[address] = _reply(code, text)
            else:
                outcome.delivered.append(address)
        return outcome

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None


class MailSink:
    """Keeps every message in a Maildir (`new/` holds one file per message), so that with no
    SMTP server configured nothing is lost and any mail client can open it (mutt -f DIR)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for sub in ("tmp", "new", "cur"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(directory, create=False)

    def prepare(self, message: Message, sender: str, recipients: Sequence[str]) -> Message | bytes:
        return message

    def send(self, message: Message | bytes, sender: str, recipients: Sequence[str]) -> Outcome:
        # The envelope, which the headers alone do not tell (as a local delivery agent writes it).
        envelope = f"Return-Path: <{sender}>\nDelivered-To: {', '.join(recipients)}\n"
        if isinstance(message, bytes):
            data = message.replace(b"\r\n", b"\n")  # a mail file has the local line ends
        else:
            data = message.as_bytes()
        self._box.add(envelope.encode() + data)
        return Outcome(delivered=list(recipients))

    def close(self) -> None:
        pass


def from_settings(smtp_url: str | None, sink_dir: Path) -> Mailer:
    """SMTP if a URL is configured, else the local mail sink."""
    if smtp_url:
        return SmtpMailer(parse_url(smtp_url))
    return MailSink(sink_dir)

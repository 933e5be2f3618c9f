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
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
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


class Sending(Protocol):
    """A message handed over all but its last step: nothing is delivered until `finish`."""

    def finish(self) -> Outcome: ...

    def abandon(self) -> None:
        """Drop the message: it is not delivered."""
        ...


class Mailer(Protocol):
    def prepare(self, message: Message, sender: str, recipients: Sequence[str]) -> Message | bytes:
        """What `send` is given for this message: the work that can be done ahead of it
        (the delivery loop does it while the previous message's record commits)."""
        ...

    def begin(
        self, message: Message | bytes, sender: str, recipients: Sequence[str]
    ) -> Sending: ...

    def send(self, message: Message | bytes, sender: str, recipients: Sequence[str]) -> Outcome:
        """`begin`, then `finish`."""
        ...

    def close(self) -> None: ...


@dataclass
class _Known:
    """A message whose outcome was settled before its last step (refused, or not sent)."""

    outcome: Outcome

    def finish(self) -> Outcome:
        return self.outcome

    def abandon(self) -> None:
        pass


class _Later:
    """A message sent whole by `finish` (what cannot be split, such as a Maildir write)."""

    def __init__(self, send: Callable[[], Outcome]) -> None:
        self._send = send

    def finish(self) -> Outcome:
        return self._send()

    def abandon(self) -> None:
        pass


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
        # The message held before its final dot, if any (see `begin`).
        self._open: _OpenData | None = None

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if t.security == "tls":
            smtp = smtplib.SMTP_SSL(t.host, t.port, timeout=t.timeout, context=context)
        else:
            smtp = smtplib.SMTP(t.host, t.port, timeout=t.timeout)
        try:
            # The end of a message's data (see `begin`) is a small write after a large one:
            # with Nagle's algorithm it would wait for the server's delayed ACK (~40 ms).
            if smtp.sock is not None:
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
        return self.begin(message, sender, recipients).finish()

    def begin(self, message: Message | bytes, sender: str, recipients: Sequence[str]) -> Sending:
        """The SMTP transaction up to, not including, the end of its data (the final dot):
        the server delivers nothing before `finish` sends it, and drops the message if the
        connection closes first (`abandon`). The delivery loop does this while the record of
        the previous message commits, and still has at most one message delivered but not
        recorded at any time. A message that is not flattened yet (see `prepare`) is sent
        whole by `finish`."""
        recipients = list(recipients)
        if self._open is not None:
            self._open.abandon()  # never left half-sent by a failed pass
        if not isinstance(message, bytes):
            return _Later(lambda: self._send_message(message, sender, recipients))
        try:
            smtp = self._connection()
        except (OSError, smtplib.SMTPException) as exc:
            return _Known(self._cannot_connect(exc, recipients))
        try:
            refused = _open_data(smtp, sender, recipients, message)
        except Exception as exc:
            return _Known(self._failed(exc, recipients))
        finally:
            self._last_used = time.monotonic()
        self._open = _OpenData(self, smtp, recipients, refused)
        return self._open

    def _send_message(self, message: Message, sender: str, recipients: list[str]) -> Outcome:
        try:
            smtp = self._connection()
        except (OSError, smtplib.SMTPException) as exc:
            return self._cannot_connect(exc, recipients)
        try:
            refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
        except Exception as exc:
            return self._failed(exc, recipients)
        finally:
            self._last_used = time.monotonic()
        return _delivered(recipients, refused)

    def _cannot_connect(self, exc: Exception, recipients: list[str]) -> Outcome:
        # Whatever the reply (even a 5xx greeting or login refusal), it is about the server
        # or our configuration, not the message: retried.
        self.close()
        reason = f"cannot connect to {self.target.host}:{self.target.port}: {exc}"
        return Outcome(temporary=dict.fromkeys(recipients, reason))

    def _failed(self, exc: Exception, recipients: list[str]) -> Outcome:
        """The outcome of an SMTP exchange that raised (as smtplib.sendmail raises)."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            # Every recipient refused; the connection is still good.
            return _delivered(recipients, exc.recipients)
        if isinstance(exc, smtplib.SMTPResponseException):
            # Refused as a whole (MAIL FROM or DATA); 421 means the server is hanging up.
            if exc.smtp_code == 421:
                self.close()
            outcome = Outcome()
            target = outcome.permanent if 500 <= exc.smtp_code < 600 else outcome.temporary
            target.update(dict.fromkeys(recipients, _reply(exc.smtp_code, exc.smtp_error)))
            return outcome
        if isinstance(exc, (OSError, smtplib.SMTPException)):
            self.close()
            reason = f"connection to {self.target.host}:{self.target.port} failed: {exc}"
            return Outcome(temporary=dict.fromkeys(recipients, reason))
        raise exc

    def close(self) -> None:
        if self._open is not None:
            self._drop()  # in the middle of a message's data, QUIT would be data too
            return
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None

    def _drop(self) -> None:
        """Close without QUIT: in the middle of a message's data, QUIT would be data too."""
        self._open = None
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None


def _open_data(
    smtp: smtplib.SMTP, sender: str, recipients: list[str], message: bytes
) -> dict[str, tuple[int, bytes]]:
    """MAIL, RCPT and DATA, then the message without its final dot, as smtplib.sendmail does
    them (same options, same exceptions); returns the refused recipients."""
    smtp.ehlo_or_helo_if_needed()
    options = [f"size={len(message)}"] if smtp.does_esmtp and smtp.has_extn("size") else []
    code, reply = smtp.mail(sender, options)
    if code != 250:
        _end_transaction(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for address in recipients:
        code, reply = smtp.rcpt(address)
        if code not in (250, 251):
            refused[address] = (code, reply)
        if code == 421:
            smtp.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        _end_transaction(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    data = _LEADING_DOT.sub(b"..", message)
    smtp.send(data if data.endswith(b"\r\n") else data + b"\r\n")
    return refused


def _end_transaction(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal: RSET, unless the server is closing the connection (421)."""
    if code == 421:
        smtp.close()
    else:
        smtp.rset()


# A line of the message that starts with a dot gets another (RFC 5321 4.5.2).
_LEADING_DOT = re.compile(rb"(?m)^\.")


class _OpenData:
    """An SMTP transaction waiting for the end of its data."""

    def __init__(
        self,
        mailer: SmtpMailer,
        smtp: smtplib.SMTP,
        recipients: list[str],
        refused: dict[str, tuple[int, bytes]],
    ) -> None:
        self._mailer = mailer
        self._smtp = smtp
        self._recipients = recipients
        self._refused = refused

    def finish(self) -> Outcome:
        if self._mailer._open is not self:
            raise RuntimeError("this message was abandoned")
        self._mailer._open = None
        try:
            self._smtp.send(b".\r\n")
            code, reply = self._smtp.getreply()
            if code != 250:
                _end_transaction(self._smtp, code)
                raise smtplib.SMTPDataError(code, reply)
        except Exception as exc:
            return self._mailer._failed(exc, self._recipients)
        finally:
            self._mailer._last_used = time.monotonic()
        return _delivered(self._recipients, self._refused)

    def abandon(self) -> None:
        if self._mailer._open is self:
            self._mailer._drop()


def _delivered(recipients: list[str], refused: dict[str, tuple[int, bytes]]) -> Outcome:
    """The outcome of an accepted message: everyone delivered but the refused recipients."""
    outcome = Outcome()
    for address in recipients:
        if address in refused:
            code, text = refused[address]
            target = outcome.permanent if 500 <= code < 600 else outcome.temporary
            target[address] = _reply(code, text)
        else:
            outcome.delivered.append(address)
    return outcome


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

    def begin(self, message: Message | bytes, sender: str, recipients: Sequence[str]) -> Sending:
        return _Later(lambda: self.send(message, sender, recipients))

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

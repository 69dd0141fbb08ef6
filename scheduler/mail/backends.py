"""Where emails go: the console (development) or an SMTP server, behind one small interface.

A backend returns the Message-ID's id part for an accepted email, or raises
``SendFailure`` (the texts' own) saying whether trying again can help:

- an SMTP answer 4xx (421 busy, 451 try later, 452 full) is transient: the
  outbox retries it with the texts' backoff;
- an answer 5xx (550 no such mailbox, 554 refused) is permanent: the email
  fails with the code recorded. Authentication answers (530, 534, 535) are
  the exception: a fixed password must not have failed every email due
  meanwhile, so they are retried (and logged as errors);
- a refused connection or a timeout before the message was handed over is
  transient (the outage heals by itself); a connection lost while the server
  was answering the message itself is *ambiguous*: it may have taken it.

SMTP has no list of what a server accepted, so ``find_sent`` always raises
``LookupFailure``: an email in doubt is sent once more, flagged as a possible
duplicate, with the same Message-ID (mail clients drop a second copy).
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import smtplib
import ssl
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, Protocol, TextIO

from scheduler.sms.backends import (
    Accepted,
    ConfigurationError,
    FailureKind,
    Found,
    LookupFailure,
    SendFailure,
)

log = logging.getLogger(__name__)
MAIL_BACKENDS = ("console", "smtp")
SECURITY_MODES = ("none", "starttls", "ssl")
# Answers about the sender's credentials: the clinic's to fix, never the patient's email's fault.
AUTHENTICATION_CODES = frozenset({530, 534, 535})


class MailBackend(Protocol):
    def send(self, to: str, payload: str) -> Accepted:
        """Hand the email (MIME text, as queued) to ``to``; the id is its Message-ID's."""
        ...

    def find_sent(self, to: str, body: str, since: datetime, until: datetime) -> Found | None: ...

    def close(self) -> None: ...


MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998, cte_type="7bit")


def parse_payload(payload: str) -> EmailMessage:
    """The queued email, dated now: a reminder queued at booking says when it was sent."""
    message = email.message_from_string(payload, policy=MAIL_POLICY)
    assert isinstance(message, EmailMessage)
    del message["Date"]
    message["Date"] = format_datetime(datetime.now(UTC))
    return message


def message_sid(message: EmailMessage) -> str:
    """The outbox's provider id of an email: its Message-ID without brackets or domain."""
    message_id = str(message.get("Message-ID", "")).strip().strip("<>")
    return message_id.partition("@")[0][:64]


MESSAGE_ID = re.compile(r"^Message-ID:\s*<([^@>\s]+)@", re.IGNORECASE | re.MULTILINE)
DATE_LINE = re.compile(r"^Date:[^\r\n]*", re.IGNORECASE | re.MULTILINE)


def wire_form(payload: str) -> tuple[bytes, str]:
    """The queued email as it goes to the server, dated now, and its Message-ID's id part.

    The payload is already MIME (7-bit, lines within SMTP's limit): only its Date
    line changes, so sending needs no parsing (the email package is slow).
    """
    if "\r\n" not in payload:
        payload = payload.replace("\n", "\r\n")
    head, separator, body = payload.partition("\r\n\r\n")
    found = MESSAGE_ID.search(head)
    date = f"Date: {format_datetime(datetime.now(UTC))}"
    head, dated = DATE_LINE.subn(date, head, count=1)
    if not dated:
        head = f"{head}\r\n{date}"
    return f"{head}{separator}{body}".encode("ascii", "replace"), (
        found.group(1)[:64] if found else ""
    )


class ConsoleMailBackend:
    """Prints each email's headers and plain text instead of sending it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, to: str, payload: str) -> Accepted:
        message = parse_payload(payload)
        plain = message.get_body(preferencelist=("plain",))
        text = plain.get_content() if plain is not None else ""
        attachments = [part.get_filename() or "" for part in message.iter_attachments()]
        sid = message_sid(message)
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(
                f"--- Email to {to} ({sid})\nSubject: {message['Subject']}\n\n{text.strip()}\n"
                + (f"[attached: {', '.join(attachments)}]\n" if attachments else "")
                + "---\n"
            )
            stream.flush()
        return Accepted(sid=sid, status="sent")

    def find_sent(self, to: str, body: str, since: datetime, until: datetime) -> Found | None:
        raise LookupFailure("the console keeps no record of what it printed")

    def close(self) -> None:
        return None


def _answer_failure(code: int, answer: bytes | str, step: str) -> SendFailure:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)
    detail = f"SMTP {code} at {step}: {text}"
    if 400 <= code < 500:
        return SendFailure(FailureKind.TRANSIENT, detail, error_code=code)
    if code in AUTHENTICATION_CODES:
        log.error("the SMTP server refused the credentials (%s); emails wait and retry", detail)
        return SendFailure(FailureKind.TRANSIENT, detail, error_code=code)
    return SendFailure(FailureKind.PERMANENT, detail, error_code=code)


class SmtpBackend:
    """``smtplib``, one connection per sending thread, kept open between emails.

    A kept connection the server has closed meanwhile (or answers 421, closing) is
    noticed before the message is taken and opened again once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        security: str,
        username: str | None,
        password: str | None,
        mail_from: str,
        timeout: float,
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.envelope_from = parseaddr(mail_from)[1]
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[smtplib.SMTP] = set()

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP | None = None
        try:
            if self.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            self._greet(smtp)
        except (OSError, smtplib.SMTPException) as exc:
            if smtp is not None:
                smtp.close()
            if isinstance(exc, smtplib.SMTPResponseException):
                raise _answer_failure(exc.smtp_code, exc.smtp_error, "connect") from exc
            # Refused, unreachable, timed out, no STARTTLS: nothing was handed over.
            raise SendFailure(
                FailureKind.TRANSIENT, f"SMTP connection failed: {type(exc).__name__}: {exc}"
            ) from exc
        with self._lock:
            self._open.add(smtp)
        return smtp

    def _greet(self, smtp: smtplib.SMTP) -> None:
        """EHLO, STARTTLS when asked (never a fallback to plain text), and the login."""
        smtp.ehlo_or_helo_if_needed()
        if self.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if self.username:
            smtp.login(self.username, self.password or "")

    def _drop(self, smtp: smtplib.SMTP | None) -> None:
        self._local.smtp = None
        if smtp is None:
            return
        with self._lock:
            self._open.discard(smtp)
        try:
            smtp.close()
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            connections, self._open = list(self._open), set()
        for smtp in connections:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    # -- sending -----------------------------------------------------------------------------

    def send(self, to: str, payload: str) -> Accepted:
        data, sid = wire_form(payload)
        kept: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if kept is not None:
            try:
                return self._transaction(kept, to, data, sid)
            except _StaleConnection:
                self._drop(kept)
            except SendFailure as failure:
                # 421 on a kept connection is mostly "idle too long, closing": the email
                # was not taken, so a new connection tries at once (once).
                if failure.error_code != 421:
                    raise
                self._drop(kept)
        smtp = self._connect()
        self._local.smtp = smtp
        try:
            return self._transaction(smtp, to, data, sid)
        except _StaleConnection as exc:
            self._drop(smtp)
            raise SendFailure(FailureKind.TRANSIENT, f"SMTP connection lost: {exc}") from exc

    def _transaction(self, smtp: smtplib.SMTP, to: str, data: bytes, sid: str) -> Accepted:
        """MAIL, RCPT, DATA on an open connection. Before DATA nothing can have been
        taken, so a lost connection there is ``_StaleConnection`` (try a new one)."""
        try:
            code, answer = smtp.mail(self.envelope_from)
            if code != 250:
                raise _answer_failure(code, answer, "MAIL FROM")
            code, answer = smtp.rcpt(to)
            if code not in (250, 251):
                raise _answer_failure(code, answer, "RCPT TO")
        except SendFailure:
            self._reset(smtp)
            raise
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise _StaleConnection(f"{type(exc).__name__}: {exc}") from exc
        try:
            code, answer = smtp.data(data)
        except smtplib.SMTPDataError as exc:
            self._reset(smtp)
            # 354 never came (refused before the message) or the message was refused.
            raise _answer_failure(exc.smtp_code, exc.smtp_error, "DATA") from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._drop(smtp)
            raise SendFailure(
                FailureKind.AMBIGUOUS,
                f"SMTP connection lost during DATA: {type(exc).__name__}: {exc}",
            ) from exc
        if code != 250:  # smtplib returns the answer to the message itself, good or bad
            self._reset(smtp)
            raise _answer_failure(code, answer, "DATA")
        return Accepted(sid=sid, status="sent")

    def _reset(self, smtp: smtplib.SMTP) -> None:
        """After a refusal the connection is reused: the server forgets the transaction."""
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop(smtp)

    def find_sent(self, to: str, body: str, since: datetime, until: datetime) -> Found | None:
        raise LookupFailure("an SMTP server keeps no list of the emails it accepted")


class _StaleConnection(Exception):
    """A connection that failed before the message was handed over."""


def check_mail_settings(config: Mapping[str, Any]) -> None:
    """Refuse settings that cannot send, with a message that says what to set."""
    backend = config["MAIL_BACKEND"]
    if backend not in MAIL_BACKENDS:
        raise ConfigurationError(
            f"MAIL_BACKEND must be one of {', '.join(MAIL_BACKENDS)}, not {backend!r}"
        )
    if not parseaddr(config["MAIL_FROM"] or "")[1].count("@") == 1:
        raise ConfigurationError(
            f"MAIL_FROM must be an email address, e.g. Clinic <appointments@example.org>, "
            f"not {config['MAIL_FROM']!r}"
        )
    if backend != "smtp":
        return
    if config["SMTP_SECURITY"] not in SECURITY_MODES:
        raise ConfigurationError(
            f"SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}, "
            f"not {config['SMTP_SECURITY']!r}"
        )
    if not config.get("SMTP_HOST"):
        raise ConfigurationError("MAIL_BACKEND=smtp needs SMTP_HOST")
    if config.get("SMTP_USERNAME") and config["SMTP_SECURITY"] == "none":
        log.warning("SMTP_USERNAME is set with SMTP_SECURITY=none: the password goes in clear")


def mail_backend_from_config(config: Mapping[str, Any]) -> MailBackend:
    check_mail_settings(config)
    if config["MAIL_BACKEND"] == "console":
        return ConsoleMailBackend()
    return SmtpBackend(
        host=config["SMTP_HOST"],
        port=int(config["SMTP_PORT"]),
        security=config["SMTP_SECURITY"],
        username=config.get("SMTP_USERNAME"),
        password=config.get("SMTP_PASSWORD"),
        mail_from=config["MAIL_FROM"],
        timeout=float(config["SMTP_TIMEOUT_SECONDS"]),
    )

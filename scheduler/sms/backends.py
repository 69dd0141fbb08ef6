"""Where texts go: the console (development) or Twilio, behind one small interface.

A backend either returns the provider's id for the accepted text or raises
SendFailure saying whether trying again can help. It can also say whether it
already took a text (``find_sent``), so that a text whose last attempt ended
without an answer is looked up before it is sent again.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TextIO

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

log = logging.getLogger(__name__)
BACKENDS = ("console", "twilio")

# Twilio error codes with a meaning of their own.
OPTED_OUT_CODES = frozenset({21610})  # the recipient replied STOP to this sender
UNREACHABLE_CODES = frozenset({21211, 21614, 30006})  # invalid, not mobile, landline/carrier
RATE_LIMITED_CODES = frozenset({20429})
# Looking a text up: messages per page, and how many of the newest to a number are read
# for one still queued at the provider (no date_sent yet, so no DateSent filter finds it).
LOOKUP_PAGE_SIZE = 50
LOOKUP_QUEUED_LIMIT = 50


class FailureKind(enum.StrEnum):
    TRANSIENT = "transient"  # not accepted; trying again later may work
    AMBIGUOUS = "ambiguous"  # the provider may have accepted it (read timeout)
    PERMANENT = "permanent"  # trying again will not help


class SendFailure(Exception):
    def __init__(
        self,
        kind: FailureKind,
        detail: str,
        http_status: int | None = None,
        error_code: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail[:255]
        self.http_status = http_status
        self.error_code = error_code


@dataclass(frozen=True)
class Accepted:
    sid: str
    status: str  # queued, sent, ...


@dataclass(frozen=True)
class Found:
    """A text the provider already has: its id, its status there, when it went out."""

    sid: str
    status: str  # the provider's: queued, sent, delivered, undelivered, failed, ...
    sent_at: datetime | None
    error_code: int | None = None


class LookupFailure(Exception):
    """The provider could not be asked whether it has a text."""

    def __init__(self, detail: str, http_status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail[:200]
        self.http_status = http_status


class SmsBackend(Protocol):
    def send(self, to: str, body: str, status_callback: str | None) -> Accepted: ...

    def find_sent(self, to: str, body: str, since: datetime, until: datetime) -> Found | None:
        """The provider's record of this exact text to ``to`` sent between the two
        instants (or still queued), None if it has none; raises LookupFailure."""
        ...


class ConfigurationError(RuntimeError):
    """The SMS settings cannot work; the service refuses to start."""


class ConsoleBackend:
    """Prints each text instead of sending it; the outbox row is the record."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, to: str, body: str, status_callback: str | None) -> Accepted:
        sid = "CONSOLE" + uuid.uuid4().hex
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(f"--- SMS to {to} ({sid})\n{body}\n---\n")
            stream.flush()
        return Accepted(sid=sid, status="sent")

    def find_sent(self, to: str, body: str, since: datetime, until: datetime) -> Found | None:
        raise LookupFailure("the console backend keeps no record of what it printed")


class PooledTwilioHttpClient(TwilioHttpClient):
    """Twilio's HTTP client with a connection pool as large as the send pool, on http and https.

    TwilioHttpClient mounts its pooled adapter for ``https://`` only, so a
    plain-http base URL (a local Twilio-compatible server) would get a pool of
    10 and warnings. No transport retries: a POST retried blindly after a
    read timeout could send a text twice; the outbox decides about retries.
    Timeouts are (connect, read): a connect timeout is safe to retry, a read
    timeout is not.
    """

    def __init__(self, pool_size: int, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(pool_connections=True, max_retries=0)
        self.timeout = (connect_timeout, read_timeout)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        assert self.session is not None
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)


def never_reached(exc: requests.exceptions.RequestException) -> bool:
    """Whether the request surely never got to the provider (so a retry cannot duplicate).

    A read timeout or a connection dropped after sending may come after the
    provider accepted the text; a refused or timed-out connection cannot.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError | ConnectTimeoutError)
    return not isinstance(
        exc, requests.exceptions.Timeout | requests.exceptions.ChunkedEncodingError
    )


def classify_twilio_error(exc: TwilioRestException | TwilioServiceException) -> SendFailure:
    """Twilio answered with an error, so it did not take the text: never a duplicate.

    Rate limits and server errors are worth retrying; so are authentication
    errors (a rotated token fixed by operations must not fail every due text
    at once); other client errors are final.
    """
    code = exc.code
    status = int(exc.status or 0)
    message = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
    detail = f"HTTP {status}, code {code}: {message}"
    if status in (401, 403, 429) or code in RATE_LIMITED_CODES or status >= 500:
        if status in (401, 403):
            log.error("Twilio refused the credentials (%s); texts wait and retry", detail)
        return SendFailure(FailureKind.TRANSIENT, detail, status, code)
    return SendFailure(FailureKind.PERMANENT, detail, status, code)


class TwilioBackend:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        messaging_service_sid: str | None,
        pool_size: int,
        connect_timeout: float,
        read_timeout: float,
        api_base_url: str | None = None,
    ) -> None:
        self.http = PooledTwilioHttpClient(pool_size, connect_timeout, read_timeout)
        self.client = Client(account_sid, auth_token, http_client=self.http)
        if api_base_url:
            self.client.api.base_url = api_base_url.rstrip("/")
        self.sender: dict[str, str] = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid
            else {"from_": from_number or ""}
        )

    def send(self, to: str, body: str, status_callback: str | None) -> Accepted:
        extra: dict[str, Any] = {"status_callback": status_callback} if status_callback else {}
        try:
            message = self.client.messages.create(to=to, body=body, **self.sender, **extra)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise classify_twilio_error(exc) from exc
        except requests.exceptions.RequestException as exc:
            kind = FailureKind.TRANSIENT if never_reached(exc) else FailureKind.AMBIGUOUS
            raise SendFailure(kind, f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            # After the request went out (an unreadable 2xx answer, say): Twilio may
            # have taken the text.
            raise SendFailure(FailureKind.AMBIGUOUS, f"{type(exc).__name__}: {exc}") from exc
        return Accepted(sid=str(message.sid), status=str(message.status or "queued"))

    def find_sent(self, to: str, body: str, since: datetime, until: datetime) -> Found | None:
        """Twilio's Messages list to ``to``, sent in the window, matched on the exact body.

        A text still queued at Twilio has no date_sent yet and no DateSent filter
        finds it, so when the window has nothing, the newest messages to the number
        are read for one not sent yet. A message Twilio canceled never went out.
        """
        try:
            in_window = self.client.messages.stream(
                to=to,
                date_sent_after=since,
                date_sent_before=until,
                page_size=LOOKUP_PAGE_SIZE,
            )
            for message in in_window:
                if _same_text(message, body):
                    return _found(message)
            newest = self.client.messages.stream(
                to=to, limit=LOOKUP_QUEUED_LIMIT, page_size=LOOKUP_QUEUED_LIMIT
            )
            for message in newest:
                if message.date_sent is None and _same_text(message, body):
                    return _found(message)
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            if status is None and len(exc.args) > 1:  # "Unable to fetch page", response
                status = getattr(exc.args[1], "status_code", None)
            detail = f"HTTP {status}" if status else str(exc)
            raise LookupFailure(f"Twilio's message list failed: {detail}", status) from exc
        except requests.exceptions.RequestException as exc:
            raise LookupFailure(f"Twilio's message list failed: {type(exc).__name__}") from exc
        return None


def _same_text(message: Any, body: str) -> bool:
    direction = str(message.direction or "")
    return (
        message.body == body
        and not direction.startswith("inbound")
        and message.status != "canceled"
    )


def _found(message: Any) -> Found:
    code = message.error_code
    return Found(
        sid=str(message.sid),
        status=str(message.status or "queued"),
        sent_at=message.date_sent,
        error_code=int(code) if code else None,
    )


def check_sms_settings(config: Mapping[str, Any]) -> None:
    """Refuse settings that cannot send, with a message that says what to set."""
    check_lease_settings(config)
    backend = config["SMS_BACKEND"]
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"SMS_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}"
        )
    if backend != "twilio":
        return
    missing = [key for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not config.get(key)]
    if not (config.get("TWILIO_FROM_NUMBER") or config.get("TWILIO_MESSAGING_SERVICE_SID")):
        missing.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    if missing:
        raise ConfigurationError(
            "SMS_BACKEND=twilio needs "
            + ", ".join(missing)
            + " (environment or instance/config.py)"
        )


def check_lease_settings(config: Mapping[str, Any]) -> None:
    """A lease must outlive at least two heartbeats, or live dispatchers would lose texts."""
    lease, beat = config["SMS_CLAIM_LEASE_SECONDS"], config["SMS_HEARTBEAT_SECONDS"]
    if beat <= 0 or lease < 2 * beat:
        raise ConfigurationError(
            f"SMS_CLAIM_LEASE_SECONDS ({lease}) must be at least twice "
            f"SMS_HEARTBEAT_SECONDS ({beat}), which must be above 0"
        )


def backend_from_config(config: Mapping[str, Any]) -> SmsBackend:
    check_sms_settings(config)
    if config["SMS_BACKEND"] == "console":
        return ConsoleBackend()
    return TwilioBackend(
        account_sid=config["TWILIO_ACCOUNT_SID"],
        auth_token=config["TWILIO_AUTH_TOKEN"],
        from_number=config.get("TWILIO_FROM_NUMBER"),
        messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID"),
        pool_size=config["SMS_SEND_CONCURRENCY"],
        connect_timeout=config["SMS_CONNECT_TIMEOUT_SECONDS"],
        read_timeout=config["SMS_READ_TIMEOUT_SECONDS"],
        api_base_url=config.get("TWILIO_API_BASE_URL"),
    )

"""Where texts go: the console (development) or Twilio, behind one small interface.

A backend either returns the provider's id for the accepted text or raises
SendFailure saying whether trying again can help.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

log = logging.getLogger(__name__)
BACKENDS = ("console", "twilio")

# Twilio error codes with a meaning of their own.
OPTED_OUT_CODES = frozenset({21610})  # the recipient replied STOP to this sender
UNREACHABLE_CODES = frozenset({21211, 21614, 30006})  # invalid, not mobile, landline/carrier
RATE_LIMITED_CODES = frozenset({20429})


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


class SmsBackend(Protocol):
    def send(self, to: str, body: str, status_callback: str | None) -> Accepted: ...


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
        self.timeout = (connect_timeout, read_timeout)  # type: ignore[assignment]
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


def check_sms_settings(config: Mapping[str, Any]) -> None:
    """Refuse settings that cannot send, with a message that says what to set."""
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

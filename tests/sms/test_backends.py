"""Backend settings, error classification and the HTTP pool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from flask import Flask
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from urllib3.exceptions import NewConnectionError

from scheduler import create_app
from scheduler.sms.backends import (
    ConfigurationError,
    FailureKind,
    PooledTwilioHttpClient,
    SendFailure,
    TwilioBackend,
    classify_twilio_error,
    never_reached,
)
from tests.twilio_server import FakeTwilio

ROOT = Path(__file__).resolve().parents[2]
SENDER_NUMBER = "+12105550100"


def test_twilio_backend_without_credentials_refuses_to_start(tmp_path: Path) -> None:
    base = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "SECRET_KEY": "k"}
    with pytest.raises(ConfigurationError) as refused:
        create_app({**base, "SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": "AC1"})
    message = str(refused.value)
    assert "TWILIO_AUTH_TOKEN" in message
    assert "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID" in message
    assert "TWILIO_ACCOUNT_SID" not in message
    with pytest.raises(ConfigurationError, match="one of console, twilio"):
        create_app({**base, "SMS_BACKEND": "pigeon"})
    create_app(
        {
            **base,
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": "AC1",
            "TWILIO_AUTH_TOKEN": "t",
            "TWILIO_MESSAGING_SERVICE_SID": "MG1",
        }
    )


@pytest.mark.parametrize(("lease", "beat"), [(20, 11), (20, 0), (1, 1)])
def test_a_lease_shorter_than_two_heartbeats_refuses_to_start(
    tmp_path: Path, lease: float, beat: float
) -> None:
    base = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "SECRET_KEY": "k"}
    with pytest.raises(ConfigurationError, match="at least twice SMS_HEARTBEAT_SECONDS"):
        create_app({**base, "SMS_CLAIM_LEASE_SECONDS": lease, "SMS_HEARTBEAT_SECONDS": beat})
    create_app({**base, "SMS_CLAIM_LEASE_SECONDS": 20, "SMS_HEARTBEAT_SECONDS": 10})


def test_the_command_line_refuses_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "SECRET_KEY": "k",
        "SMS_BACKEND": "twilio",
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "sms", "dispatch"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN" in done.stderr


def test_dispatch_refuses_a_time_without_zone(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["sms", "dispatch", "--now", "2026-12-01T10:00"])
    assert result.exit_code != 0
    assert "give a time zone" in result.output
    result = app.test_cli_runner().invoke(args=["sms", "dispatch", "--now", "tomorrow"])
    assert "not an ISO-8601" in result.output
    result = app.test_cli_runner().invoke(args=["sms", "dispatch", "--now", "2026-12-01T10:00Z"])
    assert result.exit_code == 0, result.output
    assert "claimed 0" in result.output


def test_http_pool_covers_http_and_https_with_no_transport_retries() -> None:
    client = PooledTwilioHttpClient(pool_size=24, connect_timeout=2, read_timeout=9)
    assert client.timeout == (2, 9)
    for scheme in ("http://", "https://"):
        adapter = client.session.get_adapter(scheme + "api.twilio.com")
        assert adapter._pool_maxsize == 24
        assert adapter.max_retries.total == 0


def test_messaging_service_is_used_as_sender_when_given() -> None:
    with FakeTwilio() as server:
        backend = TwilioBackend(
            server.account_sid, server.auth_token, None, "MG" + "1" * 32, 2, 1, 1, server.base_url
        )
        accepted = backend.send("+18302574811", "hello", None)
        [request] = server.requests
    assert accepted.sid == request.sid
    assert request.messaging_service_sid == "MG" + "1" * 32
    assert request.from_ is None


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 20429, FailureKind.TRANSIENT),
        (500, 20500, FailureKind.TRANSIENT),
        (503, None, FailureKind.TRANSIENT),
        (401, 20003, FailureKind.TRANSIENT),  # fix the token; the texts wait
        (400, 21211, FailureKind.PERMANENT),
        (400, 21610, FailureKind.PERMANENT),
        (400, 21614, FailureKind.PERMANENT),
    ],
)
def test_twilio_errors_are_classified(status: int, code: int | None, kind: FailureKind) -> None:
    failure = classify_twilio_error(TwilioRestException(status, "/Messages.json", "x", code))
    assert (failure.kind, failure.http_status, failure.error_code) == (kind, status, code)
    problem = TwilioServiceException(
        type_uri="https://www.twilio.com/docs/errors/x",
        title="x",
        status=status,
        code=code or 0,
        detail="x",
        instance="/",
        method="POST",
        uri="/Messages.json",
    )
    assert classify_twilio_error(problem).kind == kind


def test_rfc9457_error_bodies_are_understood() -> None:
    """twilio 9 raises TwilioServiceException for application/problem+json answers."""

    def problem(index: int, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        return 400, {
            "type": "https://www.twilio.com/docs/errors/21610",
            "title": "Attempt to send to unsubscribed recipient",
            "status": 400,
            "code": 21610,
            "detail": "The recipient replied STOP.",
            "instance": "/2010-04-01/Messages",
        }

    with FakeTwilio() as server:
        server.responder = problem
        backend = TwilioBackend(
            server.account_sid, server.auth_token, SENDER_NUMBER, None, 2, 1, 1, server.base_url
        )
        with pytest.raises(SendFailure) as failed:
            backend.send("+18302574811", "hello", None)
    assert (failed.value.kind, failed.value.error_code) == (FailureKind.PERMANENT, 21610)


def test_only_requests_that_never_reached_twilio_count_as_safe_to_retry() -> None:
    refused = requests.exceptions.ConnectionError(
        requests.packages.urllib3.exceptions.MaxRetryError(  # type: ignore[attr-defined]
            None, "/", NewConnectionError(None, "refused")
        )
    )
    assert never_reached(refused)
    assert never_reached(requests.exceptions.ConnectTimeout())
    assert not never_reached(requests.exceptions.ReadTimeout())
    dropped = requests.exceptions.ConnectionError("Connection aborted.", "RemoteDisconnected")
    assert not never_reached(dropped)
    assert not never_reached(requests.exceptions.ChunkedEncodingError())

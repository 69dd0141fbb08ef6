from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.twilio_server import FakeTwilio

SENDER = "+12105550100"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """The suite's own Twilio-compatible server on 127.0.0.1."""
    with FakeTwilio() as server:
        yield server


def twilio_settings(server: FakeTwilio, **overrides: Any) -> dict[str, Any]:
    """App settings that send through the real twilio client to ``server``."""
    return {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": server.account_sid,
        "TWILIO_AUTH_TOKEN": server.auth_token,
        "TWILIO_FROM_NUMBER": SENDER,
        "TWILIO_API_BASE_URL": server.base_url,
        # Generous: on a busy 2-core machine the suite's server can take over a second to
        # answer, and a timeout is a retry. Tests of read timeouts set their own.
        "SMS_READ_TIMEOUT_SECONDS": 5.0,
        "SMS_SEND_CONCURRENCY": 8,
        **overrides,
    }

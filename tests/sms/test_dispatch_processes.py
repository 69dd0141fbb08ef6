"""Real dispatcher processes (`flask sms dispatch`): racing each other, and killed mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import MessageAttempt, MessageStatus, OutboundMessage
from tests.factories import CHICAGO, book, booking_request, make_slot
from tests.sms.conftest import twilio_settings
from tests.twilio_server import FakeTwilio

ROOT = Path(__file__).resolve().parents[2]
BOOKED = datetime(2026, 12, 1, 10, 0, tzinfo=CHICAGO).astimezone(UTC)


@pytest.fixture
def app_config(twilio: FakeTwilio) -> dict[str, Any]:
    return twilio_settings(twilio)


def queue_confirmations(count: int) -> None:
    """``count`` bookings with consent, so ``count`` confirmations due at BOOKED."""
    slot = make_slot(starts_at=BOOKED + timedelta(days=8), capacity=count)
    for n in range(count):
        book(booking_request(slot, phone=f"+1830257{n:04d}"), now=BOOKED)


def dispatcher_process(app: Flask, now: datetime, **settings: Any) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": app.config["DATABASE_URL"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "PUBLIC_BASE_URL": app.config["PUBLIC_BASE_URL"],
        **{
            key: str(value)
            for key, value in app.config.items()
            if key.startswith(("SMS_", "TWILIO_")) and value is not None
        },
        **{key: str(value) for key, value in settings.items()},
    }
    env.pop("FLASK_APP", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "sms",
            "dispatch",
            "--now",
            now.isoformat(),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def claimed_in(output: str) -> int:
    return int(output.split("claimed ")[1].split(",")[0])


def test_two_dispatcher_processes_send_each_text_exactly_once(
    app: Flask, twilio: FakeTwilio
) -> None:
    queue_confirmations(120)
    twilio.delay = 0.02
    processes = [dispatcher_process(app, BOOKED, SMS_SEND_CONCURRENCY=4) for _ in range(2)]
    outputs = [finish(p) for p in processes]
    assert sum(claimed_in(out) for out in outputs) == 120
    assert all(claimed_in(out) > 0 for out in outputs), outputs  # both really took part
    assert twilio.accepted_count() == 120
    assert twilio.duplicates() == {}
    statuses = Counter(db.session.scalars(select(OutboundMessage.status)))
    assert statuses == {MessageStatus.SENT: 120}


def test_a_dispatcher_killed_mid_batch_loses_nothing_and_resends_at_most_in_flight(
    app: Flask, twilio: FakeTwilio
) -> None:
    queue_confirmations(60)
    twilio.delay = 0.3
    concurrency, lease = 5, 4
    victim = dispatcher_process(
        app, BOOKED, SMS_SEND_CONCURRENCY=concurrency, SMS_CLAIM_LEASE_SECONDS=lease
    )
    assert twilio.wait_for_requests(10, timeout=30)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    killed_at = time.monotonic()
    twilio.delay = 0.0

    # Before the lease runs out nobody takes the killed dispatcher's texts...
    early = finish(dispatcher_process(app, BOOKED, SMS_CLAIM_LEASE_SECONDS=lease))
    assert "taken back 0" in early
    # ...after it, every text goes out.
    time.sleep(max(0.0, lease + 0.5 - (time.monotonic() - killed_at)))
    late = finish(dispatcher_process(app, BOOKED, SMS_CLAIM_LEASE_SECONDS=lease))
    assert "taken back 0" not in late

    db.session.remove()
    rows = db.session.scalars(select(OutboundMessage)).all()
    assert {row.status for row in rows} == {MessageStatus.SENT}
    accepted = Counter(request.to for request in twilio.accepted)
    assert set(accepted) == {row.to_phone for row in rows}  # nothing lost
    assert all(n <= 2 for n in accepted.values())  # at most once more
    duplicated = {phone for phone, n in accepted.items() if n > 1}
    flagged = {row.to_phone for row in rows if row.possible_duplicate}
    # A dispatcher claims only what it can send at once, so only texts in flight at the
    # kill went twice, and each of those is recorded as a possible duplicate.
    assert duplicated <= flagged
    assert 0 < len(flagged) <= concurrency
    lost_attempts = db.session.scalars(
        select(MessageAttempt).where(MessageAttempt.outcome == "lease_expired")
    ).all()
    assert len(lost_attempts) == len(flagged)

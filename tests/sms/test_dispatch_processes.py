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
from tests.conftest import real_utcnow
from tests.factories import CHICAGO, book, booking_request, make_slot
from tests.sms.conftest import twilio_settings
from tests.twilio_server import FakeTwilio

# Subprocesses do not follow time-machine: they dispatch "as of" BOOKED (`--now`), and their
# leases run on the real clock, as in production. Whatever the clock of this process, the
# bookings are made "as of" BOOKED too.
pytestmark = pytest.mark.clock_sensitive

ROOT = Path(__file__).resolve().parents[2]
BOOKED = datetime(2026, 12, 1, 10, 0, tzinfo=CHICAGO).astimezone(UTC)


@pytest.fixture
def app_config(twilio: FakeTwilio) -> dict[str, Any]:
    # The dispatchers here are subprocesses on the wall clock; so is the provider, as the real
    # one is (it dates what it sends, and a lookup searches by those dates).
    twilio.now = real_utcnow
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


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def kill(process: subprocess.Popen[str]) -> float:
    """SIGKILL: no cleanup, no last write; returns the monotonic time of the kill."""
    process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    process.communicate(timeout=10)
    return killed_at


def outcomes() -> Counter[str]:
    db.session.remove()
    return Counter(db.session.scalars(select(MessageAttempt.outcome)))


def assert_exactly_once(twilio: FakeTwilio, count: int) -> None:
    """Counted by the provider's own log: every text once, none twice, none flagged."""
    db.session.remove()
    rows = db.session.scalars(select(OutboundMessage)).all()
    assert twilio.duplicates() == {}
    assert twilio.accepted_count() == count
    assert {request.to for request in twilio.accepted} == {row.to_phone for row in rows}
    assert {row.status for row in rows} == {MessageStatus.SENT}
    assert [row for row in rows if row.possible_duplicate] == []
    assert {row.provider_sid for row in rows} == {request.sid for request in twilio.accepted}


FAST_LEASE = {
    "SMS_CLAIM_LEASE_SECONDS": 3,
    "SMS_HEARTBEAT_SECONDS": 0.5,
    "SMS_READ_TIMEOUT_SECONDS": 5.0,
}


def wait_for_the_lease(killed_at: float) -> None:
    """Until the leases of a dispatcher killed at ``killed_at`` have run out."""
    lease = FAST_LEASE["SMS_CLAIM_LEASE_SECONDS"]
    time.sleep(max(0.0, lease + 0.5 - (time.monotonic() - killed_at)))


def test_a_dispatch_process_killed_with_texts_in_flight_is_resumed_without_a_duplicate(
    app: Flask, twilio: FakeTwilio
) -> None:
    count = 40
    queue_confirmations(count)
    twilio.delay = 1.5  # a slow provider: the kill comes while 20+ requests are out
    victim = dispatcher_process(app, BOOKED, SMS_SEND_CONCURRENCY=24, **FAST_LEASE)
    wait_until(lambda: twilio.stats()["in_flight"] >= 20, 60, "20 texts are in flight")
    in_flight = twilio.stats()["in_flight"]
    killed_at = kill(victim)
    twilio.delay = 0.05
    # The killed dispatcher's requests that reached Twilio still go out.
    wait_until(lambda: twilio.stats()["in_flight"] == 0, 10, "Twilio answered them all")
    at_twilio = twilio.accepted_count()

    time.sleep(
        max(0.0, FAST_LEASE["SMS_CLAIM_LEASE_SECONDS"] + 0.5 - (time.monotonic() - killed_at))
    )
    restarted = finish(dispatcher_process(app, BOOKED, **FAST_LEASE))

    assert_exactly_once(twilio, count)
    seen = outcomes()
    assert seen["lease_expired"] >= at_twilio >= in_flight >= 20
    assert seen["reconciled"] == at_twilio  # each found at Twilio, none sent again
    assert seen["sent"] == count - at_twilio
    assert f"reconciled {seen['reconciled']}," in restarted


def test_two_dispatcher_processes_race_and_one_is_killed_mid_batch(
    app: Flask, twilio: FakeTwilio
) -> None:
    count = 80
    queue_confirmations(count)
    twilio.delay = 0.3
    settings = {"SMS_SEND_CONCURRENCY": 8, **FAST_LEASE}
    victim, survivor = (dispatcher_process(app, BOOKED, **settings) for _ in range(2))
    wait_until(lambda: twilio.accepted_count() >= 20, 60, "20 texts are sent")
    killed_at = kill(victim)
    finish(survivor)

    time.sleep(
        max(0.0, FAST_LEASE["SMS_CLAIM_LEASE_SECONDS"] + 0.5 - (time.monotonic() - killed_at))
    )
    finish(dispatcher_process(app, BOOKED, **settings))

    assert_exactly_once(twilio, count)
    seen = outcomes()
    assert seen["lease_expired"] > 0  # the victim did hold texts when it died
    assert seen["reconciled"] + seen["sent"] == count


def test_sigterm_stops_claiming_and_records_the_texts_in_flight(
    app: Flask, twilio: FakeTwilio
) -> None:
    count = 30
    queue_confirmations(count)
    twilio.delay = 0.6  # under the 1 s read timeout
    process = dispatcher_process(app, BOOKED, SMS_SEND_CONCURRENCY=10)
    wait_until(lambda: twilio.stats()["in_flight"] >= 5, 60, "texts are in flight")
    process.send_signal(signal.SIGTERM)
    out = finish(process)

    db.session.remove()
    rows = db.session.scalars(select(OutboundMessage)).all()
    statuses = Counter(row.status for row in rows)
    # What was in flight went out and is recorded; nothing more was claimed.
    assert statuses[MessageStatus.SENT] == twilio.accepted_count() == claimed_in(out)
    assert 0 < claimed_in(out) < count
    assert statuses[MessageStatus.PENDING] == count - claimed_in(out)
    assert statuses[MessageStatus.SENDING] == 0
    assert "unrecorded 0" in out

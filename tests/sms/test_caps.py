"""At most SMS_MAX_PER_NUMBER_PER_DAY texts to one number in 24 hours, replies included."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import InboundMessage, MessageStatus, OutboundMessage
from scheduler.sms.dispatch import Dispatcher
from tests.factories import (
    book,
    booking_request,
    local_instant,
    make_location,
    make_slot,
    new_phone,
)
from tests.sms.conftest import twilio_settings
from tests.sms.test_webhooks import reply_of, text_in
from tests.staff.conftest import make_staff, sign_in
from tests.twilio_server import FakeTwilio

# Tuesday 2026-12-01, 9:00 in Central time: inside sending hours.
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


def queue_texts(count: int, phone: str) -> None:
    """``count`` pending texts to one number, due now (a pumped number's queue)."""
    location = make_location()
    for n in range(count):
        slot = make_slot(
            location, starts_at=local_instant(NOW.date() + timedelta(days=5 + n), time(10))
        )
        appt = book(booking_request(slot, phone=new_phone(), source="staff"))
        db.session.add(
            OutboundMessage(
                appointment=appt,
                kind="reminder",
                to_phone=phone,
                language="en",
                body=f"text {n}",
                status=MessageStatus.PENDING,
                due_at=NOW,
                send_before=slot.starts_at,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    db.session.commit()


def test_at_most_eight_texts_per_number_per_day(app: Flask, twilio: FakeTwilio, clock: Any) -> None:
    app.config.update(twilio_settings(twilio))
    phone = "+18302574811"
    queue_texts(11, phone)
    with Dispatcher(app) as dispatcher:
        report = dispatcher.dispatch_due()
    assert sum(1 for request in twilio.requests if request.to == phone) == 8
    statuses = db.session.execute(
        select(OutboundMessage.status, OutboundMessage.status_reason)
        .where(OutboundMessage.to_phone == phone)
        .execution_options(populate_existing=True)
    ).all()
    assert sorted(statuses) == sorted(
        [(MessageStatus.SENT, None)] * 8 + [(MessageStatus.SUPPRESSED, "number_daily_cap")] * 3
    )
    assert report.suppressed == 0 and report.outcomes == {"sent": report.sent}
    # A day later the number may get texts again.
    clock.shift(timedelta(hours=24, minutes=1))
    queue_texts(1, phone)
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due()
    assert sum(1 for request in twilio.requests if request.to == phone) == 9


def test_replies_count_toward_the_cap(
    app: Flask, client: FlaskClient, twilio: FakeTwilio, clock: Any
) -> None:
    app.config.update(twilio_settings(twilio), SMS_MAX_PER_NUMBER_PER_DAY=2)
    replies = [reply_of(text_in(client, app, "HELP", sid=f"SM{n:032d}")) for n in range(4)]
    assert ["<Message>" in reply for reply in replies] == [True, True, False, False]
    assert db.session.scalar(select(func.count(InboundMessage.id))) == 4


def test_a_text_from_a_number_we_may_not_text_gets_no_reply(
    app: Flask, client: FlaskClient, twilio: FakeTwilio, clock: Any
) -> None:
    app.config.update(twilio_settings(twilio))
    for sender in ("+18765550188", "+15005550006", "+18005550188"):
        assert "<Message>" not in reply_of(text_in(client, app, "HELP", sender=sender))
    assert db.session.scalar(select(func.count(InboundMessage.id))) == 3


def test_staff_see_a_capped_text_on_the_appointment(
    app: Flask, twilio: FakeTwilio, clock: Any
) -> None:
    app.config.update(twilio_settings(twilio), SMS_MAX_PER_NUMBER_PER_DAY=1)
    phone = "+18302574811"
    queue_texts(2, phone)
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due()
    capped = db.session.scalar(
        select(OutboundMessage).where(OutboundMessage.status_reason == "number_daily_cap")
    )
    client = app.test_client()
    sign_in(client, make_staff())
    html = client.get(f"/staff/appointments/{capped.appointment_id}").get_data(as_text=True)
    assert "not sent: this number had its 1 texts for the last 24 hours" in html

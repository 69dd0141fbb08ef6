"""A staff reply goes out through the dispatcher like any text: to Twilio inside sending
hours, held until the morning outside them, and never to a number that said STOP since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import MessageStatus, OutboundMessage
from scheduler.sms.dispatch import Dispatcher
from scheduler.sms.replies import Inbound, handle_inbound
from scheduler.staff.inbox import answer_patient
from tests.factories import CHICAGO, cancel, make_appointment, make_slot, new_phone
from tests.sms.conftest import twilio_settings
from tests.staff.conftest import make_staff
from tests.twilio_server import FakeTwilio

NIGHT = datetime(2027, 4, 13, 22, 30, tzinfo=CHICAGO).astimezone(UTC)
MORNING = datetime(2027, 4, 14, 8, 0, tzinfo=CHICAGO).astimezone(UTC)


@pytest.fixture
def app_config(twilio: FakeTwilio) -> dict[str, Any]:
    return twilio_settings(twilio)


def reply_text() -> OutboundMessage:
    row = db.session.scalar(
        select(OutboundMessage)
        .where(OutboundMessage.kind == "staff_reply#1")
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


@pytest.mark.clock(NIGHT)
def test_a_reply_written_at_night_reaches_twilio_in_the_morning(
    app: Flask, twilio: FakeTwilio
) -> None:
    phone = new_phone()
    appt = make_appointment(make_slot(days_ahead=3), phone=phone)
    handle_inbound(Inbound("SMnight", phone, "+12105550100", "Can I eat before?"), NIGHT)
    user = make_staff()
    with unit_of_work():
        queued = answer_patient(appt, "Yes, a light breakfast is fine.", user, NIGHT)
    assert queued.due_at == MORNING
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due(NIGHT + timedelta(minutes=5))
        assert reply_text().status == MessageStatus.PENDING
        assert not any(r.body == "Yes, a light breakfast is fine." for r in twilio.requests)
        dispatcher.dispatch_due(MORNING + timedelta(seconds=1))
    assert reply_text().status == MessageStatus.SENT
    sent = [r for r in twilio.requests if r.body == "Yes, a light breakfast is fine."]
    assert [r.to for r in sent] == [phone]


@pytest.mark.clock(NIGHT)
def test_a_stop_before_the_morning_suppresses_the_waiting_reply(
    app: Flask, twilio: FakeTwilio
) -> None:
    phone = new_phone()
    appt = make_appointment(make_slot(days_ahead=3), phone=phone)
    with unit_of_work():
        answer_patient(appt, "See you Friday.", make_staff(), NIGHT)
    handle_inbound(Inbound("SMstop", phone, "+12105550100", "STOP"), NIGHT + timedelta(hours=1))
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due(MORNING + timedelta(seconds=1))
    text = reply_text()
    assert text.status in (MessageStatus.CANCELLED, MessageStatus.SUPPRESSED)
    assert text.status_reason == "opted_out"
    assert not any(r.body == "See you Friday." for r in twilio.requests)


@pytest.mark.clock(NIGHT)
def test_a_reply_waiting_for_the_morning_still_goes_when_the_visit_is_cancelled(
    app: Flask, twilio: FakeTwilio
) -> None:
    appt = make_appointment(make_slot(days_ahead=3))
    with unit_of_work():
        answer_patient(appt, "Sorry to hear. Call us to book again.", make_staff(), NIGHT)
    cancel(appt)
    assert reply_text().status == MessageStatus.PENDING
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due(MORNING + timedelta(seconds=1))
    assert reply_text().status == MessageStatus.SENT

"""Closure notices: who a closure affects, each channel asked once per booking, audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from scheduler.availability import notices
from scheduler.availability.changes import change_availability
from scheduler.availability.closures import AffectedBooking, bookings_of_closure
from scheduler.availability.operations import sync_slots
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import AuditEntry, Location, ScheduleException, Slot, utcnow
from scheduler.sms.dispatch import Dispatcher
from tests.factories import (
    add_weekly_hours,
    cancel,
    days_from_today,
    local_instant,
    make_appointment,
    make_location,
    move,
    texts_of,
)
from tests.sms.conftest import twilio_settings
from tests.twilio_server import FakeTwilio

pytestmark = pytest.mark.clock  # Tuesday 13 April 2027, 10:07 Central


@pytest.fixture
def location(app: Flask) -> Location:
    location = make_location()
    add_weekly_hours(location)
    with unit_of_work():
        sync_slots(location, days_from_today(0), days_from_today(14))
    return location


def slot_at(location: Location, day: date, at: time) -> Slot:
    slot = db.session.scalar(
        select(Slot).where(
            Slot.location_id == location.id, Slot.starts_at == local_instant(day, at)
        )
    )
    assert slot is not None
    return slot


def close(
    location: Location, day: date, start: time, end: time, keep: list[int]
) -> ScheduleException:
    closure = ScheduleException(
        day=day, kind="closed", start_time=start, end_time=end, reason="Roof repair"
    )
    with unit_of_work():
        change_availability(
            location,
            lambda: location.exceptions.append(closure),
            frozenset(keep),
            "availability.closure_added",
        )
    return closure


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """The suite's own Twilio-compatible server."""
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def email_channel() -> Iterator[list[str]]:
    """A second channel, as email will register itself."""
    reached: list[str] = []

    def email(booking: AffectedBooking, now: datetime) -> str:
        if not booking.appointment.patient.email:
            return notices.NO_CONSENT
        reached.append(booking.appointment.reference)
        return notices.SENT

    notices.register_channel("email", email)
    yield reached
    del notices.CHANNELS["email"]


def test_a_closure_affects_the_bookings_in_its_hours_and_those_moved_since(
    location: Location,
) -> None:
    day = days_from_today(2)
    early_cancelled = make_appointment(slot_at(location, day, time(15)))
    cancel(early_cancelled)  # before the closure: not its doing
    inside = make_appointment(slot_at(location, day, time(14)))
    moving = make_appointment(slot_at(location, day, time(16, 30)))
    outside = make_appointment(slot_at(location, day, time(11)))
    closure = close(location, day, time(14), time(17), [inside.id, moving.id])
    move(moving, slot_at(location, day + timedelta(days=1), time(9)).id)
    found = bookings_of_closure(closure)
    states = {b.appointment.reference: b.state for b in found.bookings}
    assert states == {inside.reference: "waiting", moving.reference: "moved"}
    assert outside.reference not in states and early_cancelled.reference not in states
    moved = next(b for b in found.bookings if b.state == "moved")
    assert moved.moved_to is not None and moved.moved_to.rescheduled_from_id == moving.id


def test_every_channel_is_asked_once_per_booking_and_it_is_audited(
    location: Location, email_channel: list[str]
) -> None:
    day = days_from_today(2)
    texted = make_appointment(slot_at(location, day, time(14)), email="rosa@example.com")
    no_texts = make_appointment(slot_at(location, day, time(15)), sms_consent=False, email=None)
    closure = close(location, day, time(14), time(17), [texted.id, no_texts.id])
    with unit_of_work():
        outcome = notices.notify_closure(closure, utcnow())
    assert outcome.references("sms", notices.SENT) == [texted.reference]
    assert outcome.references("sms", notices.NO_CONSENT) == [no_texts.reference]
    assert outcome.references("email", notices.SENT) == [texted.reference]
    assert outcome.references("email", notices.NO_CONSENT) == [no_texts.reference]
    assert email_channel == [texted.reference]
    message = texts_of(texted)["closure_notice"]
    assert (
        message.status == "pending"
        and message.send_before == slot_at(location, day, time(14)).starts_at
    )
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "closure.notified"))
    assert entry is not None and entry.details["sms_sent"] == [texted.reference]
    assert entry.details["reason"] == "Roof repair"
    # Again: the text is not queued twice.
    with unit_of_work():
        again = notices.notify_closure(closure, utcnow())
    assert again.references("sms", notices.ALREADY) == [texted.reference]
    assert again.sent_count == 1  # only the test's email channel, which keeps no record


def test_texts_asked_for_after_sending_hours_wait_for_the_morning(location: Location) -> None:
    """Asked at 21:30 Central, after sending hours: the text is due at 8:00 the next day."""
    day = days_from_today(1)
    appt = make_appointment(slot_at(location, day, time(14)))
    closure = close(location, day, time(14), time(17), [appt.id])
    late = local_instant(days_from_today(0), time(21, 30))
    with unit_of_work():
        notices.notify_closure(closure, late)
    message = texts_of(appt)["closure_notice"]
    assert message.due_at == local_instant(day, time(8))


def test_closure_texts_go_out_through_twilio_within_the_per_number_cap(
    app: Flask, location: Location, fake_twilio: FakeTwilio
) -> None:
    """Dispatched like any text: sent through the provider, or held back by the cap."""
    day = days_from_today(2)
    rosa = make_appointment(slot_at(location, day, time(14)), first_name="Rosa")
    luz = make_appointment(slot_at(location, day, time(15)), first_name="Luz")
    # Luz booked a second visit from the same phone: her number got more texts today.
    make_appointment(
        slot_at(location, day + timedelta(days=1), time(9)),
        first_name="Luz",
        phone=luz.patient.phone,
    )
    closure = close(location, day, time(14), time(17), [rosa.id, luz.id])
    app.config.update(twilio_settings(fake_twilio))
    with Dispatcher(app) as dispatcher:  # the booking texts go out first
        dispatcher.dispatch_due()
    rosas = sum(1 for r in fake_twilio.requests if r.to == rosa.patient.phone)
    luzs = sum(1 for r in fake_twilio.requests if r.to == luz.patient.phone)
    assert rosas >= 1 and luzs > rosas
    app.config["SMS_MAX_PER_NUMBER_PER_DAY"] = rosas + 1
    with unit_of_work():
        notices.notify_closure(closure, utcnow())
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due()
    db.session.expire_all()
    assert texts_of(rosa)["closure_notice"].status == "sent"
    to_rosa = [r for r in fake_twilio.requests if r.to == rosa.patient.phone][-1]
    assert f"/manage/{rosa.reference}/" in to_rosa.body
    luz_text = texts_of(luz)["closure_notice"]
    assert luz_text.status == "suppressed" and luz_text.status_reason == "number_daily_cap"


def test_two_clicks_at_once_queue_one_text(location: Location) -> None:
    """The second click read no text yet, but the first one's is there when it writes."""
    day = days_from_today(2)
    appt = make_appointment(slot_at(location, day, time(14)))
    closure = close(location, day, time(14), time(17), [appt.id])
    [stale] = bookings_of_closure(closure).bookings  # read before the first click wrote
    with unit_of_work():
        notices.notify_closure(closure, utcnow())
    with unit_of_work():
        assert notices.text_reschedule_link(stale, utcnow()) == notices.ALREADY
    assert texts_of(appt)["closure_notice"].status == "pending"

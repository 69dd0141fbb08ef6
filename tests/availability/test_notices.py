"""Closure notices: who a closure affects, each channel asked once per booking, audited."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, time, timedelta
from email.message import EmailMessage

import pytest
from flask import Flask
from sqlalchemy import select

from scheduler.availability import notices
from scheduler.availability.changes import change_availability
from scheduler.availability.closures import bookings_of_closure
from scheduler.availability.operations import sync_slots
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.mail.outbox import UNSUBSCRIBED, unsubscribe
from scheduler.models import (
    AuditEntry,
    Location,
    OutboundMessage,
    ScheduleException,
    Slot,
    utcnow,
)
from scheduler.sms.backends import ConsoleBackend
from scheduler.sms.dispatch import Dispatcher
from scheduler.staff.words import describe
from tests.factories import (
    add_weekly_hours,
    cancel,
    days_from_today,
    emails_of,
    local_instant,
    make_appointment,
    make_location,
    move,
    texts_of,
)
from tests.mail.conftest import smtp_settings
from tests.sms.conftest import twilio_settings
from tests.smtp_server import SmtpServer
from tests.twilio_server import FakeTwilio

pytestmark = pytest.mark.clock  # Tuesday 13 April 2027, 10:07 Central


@pytest.fixture
def location(app: Flask) -> Location:
    location = make_location()
    add_weekly_hours(location)
    with unit_of_work():
        sync_slots(location, days_from_today(0), days_from_today(14))
    return location


def plain(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


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


def test_every_channel_is_asked_once_per_booking_and_it_is_audited(location: Location) -> None:
    day = days_from_today(2)
    texted = make_appointment(slot_at(location, day, time(14)), email="Rosa@Example.com")
    no_texts = make_appointment(slot_at(location, day, time(15)), sms_consent=False, email=None)
    closure = close(location, day, time(14), time(17), [texted.id, no_texts.id])
    with unit_of_work():
        outcome = notices.notify_closure(closure, utcnow())
    assert outcome.references("sms", notices.SENT) == [texted.reference]
    assert outcome.references("sms", notices.NO_CONSENT) == [no_texts.reference]
    assert outcome.references("email", notices.SENT) == [texted.reference]
    assert outcome.references("email", notices.NO_ADDRESS) == [no_texts.reference]
    assert outcome.unreached == [no_texts.reference]
    message = texts_of(texted)["closure_notice"]
    assert (
        message.status == "pending"
        and message.send_before == slot_at(location, day, time(14)).starts_at
    )
    email = emails_of(texted)["closure_notice"]
    assert (email.status, email.to_email) == ("pending", "rosa@example.com")
    assert email.send_before == slot_at(location, day, time(14)).starts_at
    assert f"/manage/{texted.reference}/" in email.body
    assert emails_of(no_texts) == {}
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "closure.notified"))
    assert entry is not None and entry.details["sms_sent"] == [texted.reference]
    assert entry.details["email_sent"] == [texted.reference]
    assert entry.details["email_no_address"] == [no_texts.reference]
    assert entry.details["reason"] == "Roof repair"
    # Again: neither the text nor the email is queued twice.
    with unit_of_work():
        again = notices.notify_closure(closure, utcnow())
    assert again.references("sms", notices.ALREADY) == [texted.reference]
    assert again.references("email", notices.ALREADY) == [texted.reference]
    assert again.sent_count == 0
    rows = db.session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.appointment_id == texted.id, OutboundMessage.kind == "closure_notice"
        )
    ).all()
    assert sorted(row.channel for row in rows) == ["email", "sms"]


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


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def test_closure_emails_go_to_those_with_an_address_once_even_on_a_second_click(
    app: Flask, location: Location, smtp: SmtpServer
) -> None:
    """Through the suite's SMTP server: one email each, with the manage link, in the
    patient's language; a second click sends nobody anything."""
    app.config.update(smtp_settings(smtp))
    day = days_from_today(2)
    both = make_appointment(slot_at(location, day, time(14)), email="both@example.com")
    spanish = make_appointment(
        slot_at(location, day, time(15)),
        language="es",
        sms_consent=False,
        email="solo@example.com",
    )
    text_only = make_appointment(slot_at(location, day, time(16)))
    closure = close(location, day, time(14), time(17), [both.id, spanish.id, text_only.id])
    with Dispatcher(app, backend=ConsoleBackend(io.StringIO())) as dispatcher:
        dispatcher.dispatch_due()  # the bookings' own emails go out first
        before = len(smtp.messages)
        for _ in range(2):
            with unit_of_work():
                notices.notify_closure(closure, utcnow())
            dispatcher.dispatch_due()
    sent = smtp.messages[before:]
    assert sorted(str(m["To"]) for m in sent) == ["both@example.com", "solo@example.com"]
    by_address = {str(m["To"]): m for m in sent}
    english = by_address["both@example.com"]
    assert str(english["Subject"]).startswith("Please choose a new time:")
    body = plain(english)
    assert f"/manage/{both.reference}/" in body and location.name in body
    assert "Roof" not in body  # the reason staff typed stays with staff
    assert english["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert list(english.iter_attachments()) == []
    solo = by_address["solo@example.com"]
    assert str(solo["Subject"]).startswith("Elija otra hora:")
    assert f"/manage/{spanish.reference}/" in plain(solo) and "Sentimos la molestia" in plain(solo)
    assert emails_of(both)["closure_notice"].status == "sent"
    assert emails_of(text_only) == {}
    assert "closure_notice" not in texts_of(spanish)


def test_an_unsubscribed_address_gets_no_closure_email_and_staff_are_told_to_call(
    location: Location,
) -> None:
    day = days_from_today(2)
    appt = make_appointment(
        slot_at(location, day, time(14)), sms_consent=False, email="gone@example.com"
    )
    closure = close(location, day, time(14), time(17), [appt.id])
    with unit_of_work():
        unsubscribe("gone@example.com", utcnow())
    assert [b.appointment.id for b in bookings_of_closure(closure).to_email] == [appt.id]
    with unit_of_work():
        outcome = notices.notify_closure(closure, utcnow())
    assert outcome.references("email", UNSUBSCRIBED) == [appt.reference]
    assert outcome.unreached == [appt.reference]
    row = emails_of(appt)["closure_notice"]
    assert (row.status, row.status_reason) == ("suppressed", "unsubscribed")
    # Tried once: the board offers no second try, and a second click says the same.
    assert bookings_of_closure(closure).to_email == []
    with unit_of_work():
        again = notices.notify_closure(closure, utcnow())
    assert again.references("email", UNSUBSCRIBED) == [appt.reference]


def test_two_clicks_at_once_queue_one_email(location: Location) -> None:
    day = days_from_today(2)
    appt = make_appointment(slot_at(location, day, time(14)), email="ana@example.com")
    closure = close(location, day, time(14), time(17), [appt.id])
    [stale] = bookings_of_closure(closure).bookings
    with unit_of_work():
        notices.notify_closure(closure, utcnow())
    with unit_of_work():
        assert notices.email_reschedule_link(stale, utcnow()) == notices.ALREADY
    assert emails_of(appt)["closure_notice"].status == "pending"


def test_the_audit_sentence_says_who_was_texted_emailed_and_whom_to_call(
    location: Location,
) -> None:
    day = days_from_today(2)
    both = make_appointment(slot_at(location, day, time(14)), email="both@example.com")
    email_only = make_appointment(
        slot_at(location, day, time(15)), sms_consent=False, email="e@example.com"
    )
    nothing = make_appointment(slot_at(location, day, time(16)), sms_consent=False, email=None)
    closure = close(location, day, time(14), time(17), [both.id, email_only.id, nothing.id])
    with unit_of_work():
        notices.notify_closure(closure, utcnow())
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "closure.notified"))
    assert entry is not None
    sentence = describe(entry)
    assert sentence.text == (
        f"The system told the patients of {location.name}'s closure on "
        f"{day:%a %b} {day.day} (Roof repair) to choose a new time"
    )
    emailed = f"{both.reference}, {email_only.reference}"  # in the order of their visits
    no_consent = f"{email_only.reference}, {nothing.reference}"
    assert sentence.changes == [
        f"told (text): {both.reference}",
        f"no consent (text): {no_consent}",
        f"told (email): {emailed}",
        f"no email address (email): {nothing.reference}",
        f"to call: {nothing.reference}",
    ]

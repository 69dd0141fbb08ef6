"""Texts are queued with the booking change that causes them, at the right times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from scheduler.appointments import operations
from scheduler.appointments.lifecycle import PATIENT_WEB
from scheduler.appointments.operations import (
    BookingError,
    SlotFull,
    book_appointment,
)
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import Appointment, ContentBlock, MessageStatus, OutboundMessage, Slot
from tests.factories import (
    CHICAGO,
    add_message_schedules,
    book,
    booking_request,
    cancel,
    make_location,
    make_slot,
    move,
    texts_of,
)


def local(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=CHICAGO, fold=fold).astimezone(UTC)


@pytest.fixture(autouse=True)
def cadence(app: Flask) -> None:
    add_message_schedules()


def test_booking_with_consent_queues_confirmation_instructions_and_reminder() -> None:
    visit = local(2026, 12, 9, 10, 0)
    booked = local(2026, 12, 1, 14, 0)
    appt = book(booking_request(make_slot(starts_at=visit)), now=booked)
    texts = texts_of(appt)
    assert set(texts) == {"confirmation", "instructions", "reminder"}
    assert texts["confirmation"].due_at == booked
    assert texts["instructions"].due_at == visit - timedelta(hours=72)
    assert texts["reminder"].due_at == visit - timedelta(hours=24)
    for text in texts.values():
        assert text.status == MessageStatus.PENDING
        assert text.to_phone == appt.patient.phone
        assert text.send_before == visit
    confirmation = texts["confirmation"].body
    assert "Maria" in confirmation
    assert appt.reference in confirmation
    assert f"/manage/{appt.reference}/" in confirmation
    assert "Wed, Dec 9 at 10:00 AM" in confirmation
    assert "Reply C to confirm, STOP to opt out" in confirmation
    assert "Reply C to confirm, R to reschedule" in texts["reminder"].body
    location_slug = appt.slot.location.slug
    assert f"https://book.example.test/prepare/{location_slug}" in texts["instructions"].body


def test_no_text_without_consent() -> None:
    appt = book(booking_request(make_slot(), sms_consent=False))
    assert texts_of(appt) == {}
    cancel(appt)
    assert db.session.scalar(select(func.count(OutboundMessage.id))) == 0


def test_texts_carry_no_more_than_the_minimum() -> None:
    appt = book(
        booking_request(
            make_slot(days_ahead=10), first_name="Rosa", last_name="Zamarripa", language="es"
        )
    )
    cancel(appt)
    bodies = [text.body for text in texts_of(appt).values()]
    assert len(bodies) == 4
    for body in bodies:
        lowered = body.lower()
        assert "zamarripa" not in lowered
        assert "1956" not in body and "04/02" not in body and "abr" not in lowered
        assert "maria@example.com" not in body
        for word in ("mild", "stenosis", "estenosis", "lumbar", "descompresión"):
            assert word not in lowered
        assert "yes" not in lowered.split()  # the screening answer
        assert "8302574811" not in body  # not even their own number


def test_texts_are_in_the_patients_language() -> None:
    visit = local(2026, 12, 9, 10, 0)
    appt = book(
        booking_request(make_slot(starts_at=visit), language="es"),
        now=local(2026, 12, 1, 12, 0),
    )
    texts = texts_of(appt)
    assert "su cita" in texts["confirmation"].body
    assert "mié, 9 dic a las 10:00" in texts["confirmation"].body
    assert texts["instructions"].body.endswith("?lang=es")
    assert all(text.language == "es" for text in texts.values())


def test_a_late_booking_gets_instructions_after_the_confirmation_and_no_reminder() -> None:
    visit = local(2026, 12, 9, 15, 0)
    booked = local(2026, 12, 8, 19, 0)  # 20 hours before
    appt = book(booking_request(make_slot(starts_at=visit)), now=booked)
    texts = texts_of(appt)
    assert set(texts) == {"confirmation", "instructions"}
    assert texts["confirmation"].due_at == booked
    assert texts["instructions"].due_at == booked + timedelta(seconds=60)


def test_a_booking_at_night_is_confirmed_at_eight() -> None:
    visit = local(2026, 12, 14, 9, 0)
    appt = book(booking_request(make_slot(starts_at=visit)), now=local(2026, 12, 3, 22, 40))
    assert texts_of(appt)["confirmation"].due_at == local(2026, 12, 4, 8, 0)


def test_reminders_due_in_quiet_hours_wait_for_eight() -> None:
    visit = local(2026, 12, 9, 8, 30)  # 72 h before is 8:30, 24 h before 8:30: fine
    early = local(2026, 12, 9, 7, 0)  # an early extra session: reminders due at 7:00
    booked = local(2026, 12, 1, 12, 0)
    location = make_location()
    fine = book(booking_request(make_slot(location, starts_at=visit)), now=booked)
    moved = book(booking_request(make_slot(location, starts_at=early)), now=booked)
    assert texts_of(fine)["reminder"].due_at == local(2026, 12, 8, 8, 30)
    assert texts_of(moved)["reminder"].due_at == local(2026, 12, 8, 8, 0)
    assert texts_of(moved)["instructions"].due_at == local(2026, 12, 6, 8, 0)


def test_a_night_booking_for_an_early_visit_drops_what_cannot_go_out_in_time() -> None:
    visit = local(2026, 12, 10, 7, 30)
    appt = book(booking_request(make_slot(starts_at=visit)), now=local(2026, 12, 9, 21, 30))
    confirmation = texts_of(appt)["confirmation"]
    assert confirmation.status == MessageStatus.SUPPRESSED
    assert confirmation.status_reason == "visit_before_sending_hours"


@pytest.mark.parametrize(
    ("visit", "reminder_due", "instructions_due"),
    [
        # Monday after spring forward: 24 h before is 8:00 CDT Sunday; 72 h before is
        # 7:00 CST Friday, before sending hours, so 8:00 CST.
        (local(2027, 3, 15, 8, 0), local(2027, 3, 14, 8, 0), local(2027, 3, 12, 8, 0)),
        # Monday after fall back: 8:00 CST Sunday; 9:00 CDT Friday.
        (local(2027, 11, 8, 8, 0), local(2027, 11, 7, 8, 0), local(2027, 11, 5, 9, 0)),
    ],
)
def test_cadence_across_dst_changes(
    visit: datetime, reminder_due: datetime, instructions_due: datetime
) -> None:
    booked = visit - timedelta(days=14)
    appt = book(booking_request(make_slot(starts_at=visit)), now=booked)
    texts = texts_of(appt)
    assert texts["reminder"].due_at == reminder_due
    assert texts["instructions"].due_at == instructions_due


def test_cancelling_stops_pending_texts_and_says_so() -> None:
    visit = local(2026, 12, 9, 10, 0)
    appt = book(booking_request(make_slot(starts_at=visit)), now=local(2026, 12, 1, 10, 0))
    cancel(appt, now=local(2026, 12, 2, 10, 0))
    texts = texts_of(appt)
    for kind in ("confirmation", "instructions", "reminder"):
        assert texts[kind].status == MessageStatus.CANCELLED
        assert texts[kind].status_reason == "appointment_cancelled"
    cancellation = texts["cancellation"]
    assert cancellation.status == MessageStatus.PENDING
    assert cancellation.due_at == local(2026, 12, 2, 10, 0)
    assert "is cancelled" in cancellation.body
    assert "https://book.example.test/" in cancellation.body


def test_rescheduling_cancels_the_old_texts_and_queues_the_new_slots_own() -> None:
    old_visit = local(2026, 12, 9, 10, 0)
    new_visit = local(2026, 12, 16, 14, 0)
    other_location = make_location(name="Kerrville")
    old = book(booking_request(make_slot(starts_at=old_visit)), now=local(2026, 12, 1, 10, 0))
    new = move(
        old, make_slot(other_location, starts_at=new_visit).id, now=local(2026, 12, 2, 10, 0)
    )
    old_texts = texts_of(old)
    assert {t.status for t in old_texts.values()} == {MessageStatus.CANCELLED}
    assert {t.status_reason for t in old_texts.values()} == {"appointment_rescheduled"}
    assert "cancellation" not in old_texts
    new_texts = texts_of(new)
    assert set(new_texts) == {"rescheduled", "instructions", "reminder"}
    moved = new_texts["rescheduled"].body
    assert "moved to Kerrville on Wed, Dec 16 at 2:00 PM" in moved
    assert new.reference in moved and old.reference not in moved
    assert new_texts["reminder"].due_at == new_visit - timedelta(hours=24)


def test_texts_and_booking_are_saved_together_or_not_at_all() -> None:
    slot = make_slot(capacity=2)

    with pytest.raises(RuntimeError), unit_of_work():
        book_appointment(booking_request(slot), PATIENT_WEB)
        raise RuntimeError("the transaction dies after the texts were queued")
    assert db.session.scalar(select(func.count(OutboundMessage.id))) == 0
    assert db.session.scalar(select(func.count(Appointment.id))) == 0
    db.session.refresh(slot)
    assert slot.booked_count == 0
    full = make_slot(capacity=1)
    book(booking_request(full))
    with pytest.raises(SlotFull):
        book(booking_request(full, first_name="Luz"))
    assert db.session.scalar(select(func.count(OutboundMessage.id))) == 3


def test_a_broken_stored_template_falls_back_to_the_default_text() -> None:
    db.session.add(
        ContentBlock(key="sms_confirmation", language="en", body="Hi {first_name} {surname}")
    )
    db.session.commit()
    appt = book(booking_request(make_slot(days_ahead=6)))
    body = texts_of(appt)["confirmation"].body
    assert "{" not in body and "Reply C to confirm" in body


def test_texts_follow_the_locations_own_template(app: Flask) -> None:
    location = make_location()
    db.session.add(
        ContentBlock(
            key="sms_reminder",
            location_id=location.id,
            language="en",
            body="{clinic} {location}: see you {date} at {time}. Reply C or R.",
        )
    )
    db.session.commit()
    appt = book(booking_request(make_slot(location, days_ahead=6)))
    assert texts_of(appt)["reminder"].body.endswith("Reply C or R.")


def test_a_reference_drawn_twice_is_drawn_again_with_the_texts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = book(booking_request(make_slot(days_ahead=6)))
    draws = iter([first.reference, first.reference, "C01-XXXX"])
    monkeypatch.setattr(operations, "new_reference", lambda code: next(draws))
    second = book(booking_request(make_slot(days_ahead=7), first_name="Luz"))
    assert second.reference == "C01-XXXX"
    assert set(texts_of(second)) == {"confirmation", "instructions", "reminder"}
    assert db.session.scalar(select(func.count(OutboundMessage.id))) == 6


def test_a_move_that_draws_a_taken_reference_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    appt = book(booking_request(make_slot(days_ahead=6)))
    appt_id, reference = appt.id, appt.reference
    target_id = make_slot(days_ahead=8).id
    monkeypatch.setattr(operations, "new_reference", lambda code: reference)
    with pytest.raises(BookingError, match="Could not move"):
        move(appt, target_id)
    db.session.remove()
    unchanged = db.session.get(Appointment, appt_id)
    assert unchanged.status == "booked"
    assert {t.status for t in texts_of(unchanged).values()} == {MessageStatus.PENDING}
    assert db.session.get(Slot, target_id).booked_count == 0

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from scheduler.appointments import operations
from scheduler.appointments.operations import (
    REFERENCE_ALPHABET,
    AppointmentNotChangeable,
    IdempotencyKeyReused,
    SlotFull,
    SlotNotBookable,
    SlotNotFound,
)
from scheduler.extensions import db
from scheduler.models import Appointment, AppointmentEvent, AuditEntry, Patient, Slot, utcnow
from tests.factories import (
    add_message_schedules,
    book,
    booking_request,
    cancel,
    emails_of,
    make_appointment,
    make_location,
    make_slot,
    move,
    texts_of,
)


def active_in(slot: Slot) -> int:
    db.session.refresh(slot)
    return slot.booked_count


def test_booking_takes_a_place_and_records_history(app: Flask) -> None:
    slot = make_slot(capacity=2)
    appt = make_appointment(slot)
    assert re.fullmatch(rf"{slot.location.code}-[{REFERENCE_ALPHABET}]{{4}}", appt.reference)
    assert appt.status == "booked"
    assert active_in(slot) == 1
    assert [(e.from_status, e.to_status) for e in appt.events] == [(None, "booked")]
    assert appt.patient.sms_consent and appt.patient.sms_consent_at is not None


def test_slot_never_holds_more_than_its_capacity(app: Flask) -> None:
    slot = make_slot(capacity=2)
    make_appointment(slot)
    make_appointment(slot, first_name="Luz")
    with pytest.raises(SlotFull):
        make_appointment(slot, first_name="Eva")
    assert active_in(slot) == 2
    assert db.session.scalar(select(func.count(Appointment.id))) == 2


@pytest.mark.parametrize(
    ("offset", "blocked"),
    [
        (timedelta(minutes=60), False),  # inside the minimum notice
        (timedelta(days=-1), False),  # past
        (timedelta(days=120), False),  # beyond the horizon
        (timedelta(days=3), True),  # blocked by staff
    ],
)
@pytest.mark.clock
def test_unbookable_slots_are_refused_without_a_trace(
    app: Flask, offset: timedelta, blocked: bool
) -> None:
    slot = make_slot(starts_at=utcnow() + offset, is_blocked=blocked)
    with pytest.raises(SlotNotBookable):
        make_appointment(slot)
    assert active_in(slot) == 0
    assert db.session.scalar(select(func.count(Appointment.id))) == 0
    assert db.session.scalar(select(func.count(Patient.id))) == 0


def test_unknown_slot(app: Flask) -> None:
    with pytest.raises(SlotNotFound):
        book(booking_request(987654))


def test_same_idempotency_key_books_once(app: Flask) -> None:
    slot = make_slot(capacity=3)
    first = make_appointment(slot, idempotency_key="form:abc", phone="+18302574811")
    second = make_appointment(slot, idempotency_key="form:abc", phone="+18302574811")
    assert first.id == second.id
    assert active_in(slot) == 1


def test_same_key_on_a_now_full_slot_still_returns_the_booking(app: Flask) -> None:
    slot = make_slot(capacity=1)
    first = make_appointment(slot, idempotency_key="k1", phone="+18302574811")
    assert make_appointment(slot, idempotency_key="k1", phone="+18302574811").id == first.id


def test_a_person_booking_again_is_one_patient_with_the_latest_contact_details(
    app: Flask,
) -> None:
    first = make_appointment(
        make_slot(), sms_consent=True, last_name="García-Ramírez", phone="+18302574811"
    )
    second = make_appointment(
        make_slot(days_ahead=4),
        phone="+18302574811",
        last_name="  garcia-RAMIREZ ",
        email="maria.new@example.com",
        language="es",
    )
    assert second.patient_id == first.patient_id
    assert db.session.scalar(select(func.count(Patient.id))) == 1
    patient = db.session.get(Patient, first.patient_id)
    assert (patient.email, patient.language) == ("maria.new@example.com", "es")
    change = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "patient.updated")
    ).one()
    assert change.details["fields"] == ["email", "language"]
    assert change.actor == "patient (online)"


def test_another_birth_date_or_none_is_another_patient(app: Flask) -> None:
    first = make_appointment(make_slot())
    other = make_appointment(make_slot(days_ahead=4), date_of_birth=date(1990, 1, 1))
    unknown = make_appointment(make_slot(days_ahead=5), date_of_birth=None)
    again_unknown = make_appointment(make_slot(days_ahead=6), date_of_birth=None)
    ids = {first.patient_id, other.patient_id, unknown.patient_id, again_unknown.patient_id}
    assert len(ids) == 4


def test_same_key_with_a_different_request_is_refused(app: Flask) -> None:
    slot = make_slot(capacity=3)
    make_appointment(slot, idempotency_key="api:order-1")
    with pytest.raises(IdempotencyKeyReused):
        make_appointment(slot, idempotency_key="api:order-1", first_name="Mallory")
    assert active_in(slot) == 1


def test_inactive_locations_cannot_be_booked(app: Flask) -> None:
    slot = make_slot()
    slot.location.is_active = False
    db.session.commit()
    with pytest.raises(SlotNotBookable):
        make_appointment(slot)
    assert active_in(slot) == 0


def test_cancel_frees_the_place_at_once(app: Flask) -> None:
    slot = make_slot(capacity=1)
    appt = make_appointment(slot)
    cancel(appt)
    assert appt.status == "cancelled"
    assert active_in(slot) == 0
    make_appointment(slot, first_name="Luz")  # someone else can take it now
    with pytest.raises(AppointmentNotChangeable):
        cancel(appt)
    assert active_in(slot) == 1


def test_reschedule_moves_the_booking_atomically(app: Flask) -> None:
    other_location = make_location()
    old_slot = make_slot(capacity=1)
    new_slot = make_slot(other_location, days_ahead=6, capacity=1)
    old = make_appointment(old_slot)
    new = move(old, new_slot.id)
    db.session.refresh(old)
    assert old.status == "rescheduled"
    assert new.status == "booked" and new.slot_id == new_slot.id
    assert new.reference.startswith(other_location.code)
    assert new.rescheduled_from_id == old.id and new.patient_id == old.patient_id
    assert (active_in(old_slot), active_in(new_slot)) == (0, 1)
    notes = [e.note for e in db.session.scalars(select(AppointmentEvent))]
    assert f"moved to {new.reference}" in notes


def test_reschedule_to_a_full_slot_changes_nothing(app: Flask) -> None:
    old_slot = make_slot(capacity=1)
    full = make_slot(days_ahead=6, capacity=1)
    make_appointment(full, first_name="Luz")
    appt = make_appointment(old_slot)
    with pytest.raises(SlotFull):
        move(appt, full.id)
    db.session.refresh(appt)
    assert appt.status == "booked" and appt.slot_id == old_slot.id
    assert (active_in(old_slot), active_in(full)) == (1, 1)
    assert db.session.scalar(select(func.count(Appointment.id))) == 2


@pytest.mark.clock
def test_past_appointments_cannot_be_changed(app: Flask) -> None:
    slot = make_slot(capacity=1)
    appt = make_appointment(slot)
    slot.starts_at = utcnow() - timedelta(hours=1)
    slot.ends_at = slot.starts_at + timedelta(minutes=30)
    db.session.commit()
    with pytest.raises(AppointmentNotChangeable):
        cancel(appt)
    assert active_in(slot) == 1


NOW = datetime(2027, 3, 8, 15, 0, tzinfo=UTC)  # a Monday, 9:00 in Chicago


def test_a_keyed_request_drawing_a_taken_reference_draws_again(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form always sends a key: a reference drawn twice must not look like the key
    sent twice (ON CONFLICT DO NOTHING answers both the same way)."""
    first = book(booking_request(make_slot(starts_at=NOW + timedelta(days=3))), now=NOW)
    draws = iter([first.reference, first.reference, "C01-XXXX"])
    monkeypatch.setattr(operations, "new_reference", lambda code: next(draws))
    slot = make_slot(starts_at=NOW + timedelta(days=4))
    second = book(booking_request(slot, idempotency_key="form:x", first_name="Luz"), now=NOW)
    assert second.reference == "C01-XXXX"
    assert active_in(slot) == 1


def test_a_booking_is_a_handful_of_statements_and_no_flush(app: Flask) -> None:
    """The per-phone caps' count (under the phone's advisory lock on PostgreSQL), the
    slot's UPDATE (returning the slot and its location), the patient, the
    appointment, its history and audit entry (one statement on PostgreSQL), and its
    three texts in one INSERT; on SQLite the write lock's BEGIN IMMEDIATE. No ORM
    flush, no savepoint, no re-read."""
    add_message_schedules()
    app.extensions["staff_edits"].max_age_s = 3600  # no re-read of texts in the middle
    slot = make_slot(starts_at=NOW + timedelta(days=5))
    book(booking_request(make_slot(starts_at=NOW + timedelta(days=4))), now=NOW)  # warm
    statements: list[str] = []
    flushes: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine, "before_cursor_execute", count)
    event.listen(db.session, "after_flush", lambda *args: flushes.append(1))
    try:
        appt = book(booking_request(slot, first_name="Luz", date_of_birth=None), now=NOW)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(texts_of(appt)) == 3
    if db.engine.dialect.name == "sqlite":
        expected = ["BEGIN", "SELECT", "UPDATE", "INSERT", "INSERT", "INSERT", "INSERT", "INSERT"]
    else:  # the history row and the audit entry in one WITH ... INSERT
        expected = ["SELECT", "SELECT", "UPDATE", "INSERT", "INSERT", "WITH", "INSERT"]
    assert statements == expected
    assert flushes == []


def test_a_booking_with_an_email_address_adds_one_statement(app: Flask) -> None:
    """Its emails (built whole: text, HTML, .ics) are one more INSERT; nothing is read."""
    add_message_schedules()
    app.extensions["staff_edits"].max_age_s = 3600
    slot = make_slot(starts_at=NOW + timedelta(days=5))
    warm = booking_request(make_slot(starts_at=NOW + timedelta(days=4)), email="a@example.com")
    book(warm, now=NOW)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        appt = book(booking_request(slot, date_of_birth=None, email="luz@example.com"), now=NOW)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(texts_of(appt)) == len(emails_of(appt)) == 3
    if db.engine.dialect.name == "sqlite":
        expected = ["BEGIN", "SELECT", "UPDATE", "INSERT", "INSERT", "INSERT", "INSERT", "INSERT"]
    else:
        expected = ["SELECT", "SELECT", "UPDATE", "INSERT", "INSERT", "WITH", "INSERT"]
    assert statements == [*expected, "INSERT"]

"""Booking, cancelling and rescheduling. Each operation owns its transaction.

Room in a slot is taken with one conditional UPDATE on the slot row
(``booked_count < capacity``), so the database decides races: PostgreSQL
row-locks the slot and re-checks the condition, SQLite serialises writers.
Slot rows are always updated in ascending id order so two reschedules
crossing each other cannot deadlock.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from scheduler.appointments.caps import booking_cap_refusal
from scheduler.availability.operations import current_booking_window
from scheduler.database import serialized_writes
from scheduler.extensions import db
from scheduler.models import (
    CHANGEABLE,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    Location,
    Patient,
    Slot,
    utcnow,
)
from scheduler.sms.outbox import (
    cancel_pending_texts,
    queue_appointment_texts,
    queue_cancellation_text,
)

# No 0/O, 1/I/L, U/V, 2/Z or 5/S look-alikes: easy to read aloud and type.
STALE_MESSAGE = (
    "Someone else changed this appointment a moment ago. Nothing was saved; "
    "here it is as it is now."
)
REFERENCE_ALPHABET = "346789ACDEFGHJKMNPQRTWXY"
REFERENCE_LENGTH = 4


class BookingError(Exception):
    """A booking operation refused; ``code`` is stable for the API, the message for people."""

    code = "booking_error"


class SlotNotFound(BookingError):
    code = "slot_not_found"


class SlotFull(BookingError):
    code = "slot_full"


class SlotNotBookable(BookingError):
    """Too soon, too far ahead, in the past or blocked."""

    code = "slot_not_bookable"


class AppointmentNotChangeable(BookingError):
    code = "appointment_not_changeable"


class StaleAppointment(BookingError):
    """Someone else changed the appointment since the page was loaded."""

    code = "stale_appointment"


class BookingCapReached(BookingError):
    """A per-phone cap (see caps.py): too many upcoming bookings, or two places in one slot."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class IdempotencyKeyReused(BookingError):
    """The key was used before for a different booking request."""

    code = "idempotency_key_reused"


@dataclass(frozen=True)
class BookingRequest:
    slot_id: int
    first_name: str
    last_name: str
    phone: str  # E.164
    email: str | None
    date_of_birth: date | None
    language: str
    sms_consent: bool
    sms_consent_text: str | None
    conservative_treatment: str | None
    source: str  # online_form, api, staff
    idempotency_key: str | None = None


def request_fingerprint(request: BookingRequest) -> str:
    """What a repeated idempotency key must repeat: the same slot and the same person."""
    parts = [
        request.slot_id,
        request.first_name,
        request.last_name,
        request.phone,
        request.email,
        request.date_of_birth.isoformat() if request.date_of_birth else None,
        request.language,
        request.sms_consent,
        request.conservative_treatment,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def new_reference(location_code: str) -> str:
    body = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
    return f"{location_code}-{body}"


def _record(appt: Appointment, from_status: str | None, actor: str, note: str = "") -> None:
    db.session.add(
        AppointmentEvent(
            appointment=appt,
            from_status=from_status,
            to_status=appt.status,
            actor=actor,
            note=note,
        )
    )


def _appointment_for_key(request: BookingRequest) -> Appointment | None:
    """The booking an earlier try of this very request made, if any.

    A key that comes back with a different request is refused, so it can
    never hand one person's booking (and its manage link) to another.
    """
    if not request.idempotency_key:
        return None
    appt = db.session.scalar(
        select(Appointment).where(Appointment.idempotency_key == request.idempotency_key)
    )
    if appt is not None and appt.idempotency_fingerprint != request_fingerprint(request):
        db.session.rollback()
        raise IdempotencyKeyReused("This request key was already used for another booking.")
    return appt


def _take_place(slot_id: int, now: datetime) -> None:
    """Add one booking to the slot, or raise why it cannot take one."""
    window = current_booking_window(now)
    taken = db.session.execute(
        update(Slot)
        .where(
            Slot.id == slot_id,
            Slot.booked_count < Slot.capacity,
            Slot.is_blocked.is_(False),
            Slot.starts_at >= window.earliest,
            Slot.starts_at <= window.latest,
            Slot.location_id.in_(select(Location.id).where(Location.is_active)),
        )
        .values(booked_count=Slot.booked_count + 1),
        execution_options={"synchronize_session": False},
    ).rowcount
    if taken == 1:
        return
    db.session.rollback()
    slot = db.session.get(Slot, slot_id)
    if slot is None:
        raise SlotNotFound("This time slot does not exist.")
    if slot.is_blocked or not slot.location.is_active or not window.contains(slot.starts_at):
        raise SlotNotBookable("This time can no longer be booked online.")
    raise SlotFull("This time was just booked by someone else. Please choose another time.")


def _release_place(slot_id: int) -> None:
    db.session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.booked_count > 0)
        .values(booked_count=Slot.booked_count - 1),
        execution_options={"synchronize_session": False},
    )


def _patient_record(request: BookingRequest, now: datetime) -> Patient:
    """The patient as given on this booking, with its consent and when it was given.

    Each booking from a public channel gets its own record: a later booking
    by someone who knows a patient's name, phone and birth date must not be
    able to change that patient's email or withdraw their consent. Staff
    match records to the clinic's chart.
    """
    patient = Patient(
        first_name=request.first_name,
        last_name=request.last_name,
        phone=request.phone,
        email=request.email,
        date_of_birth=request.date_of_birth,
        language=request.language,
        sms_consent=request.sms_consent,
        sms_consent_at=now if request.sms_consent else None,
        sms_consent_source=request.source if request.sms_consent else None,
        sms_consent_text=request.sms_consent_text if request.sms_consent else None,
        created_at=now,
    )
    db.session.add(patient)
    return patient


def _new_appointment(slot_id: int, now: datetime, **fields: Any) -> Appointment:
    """A booked appointment in a slot whose place the caller has just taken."""
    slot = db.session.scalars(
        select(Slot)
        .options(joinedload(Slot.location))
        .where(Slot.id == slot_id)
        .execution_options(populate_existing=True)
    ).one()
    appt = Appointment(
        reference=new_reference(slot.location.code),
        slot=slot,
        status=AppointmentStatus.BOOKED,
        manage_nonce=secrets.token_urlsafe(12),
        created_at=now,
        updated_at=now,
        **fields,
    )
    db.session.add(appt)
    return appt


def _try_booking(
    request: BookingRequest,
    now: datetime,
    after_change: Callable[[Appointment], None] | None = None,
) -> Appointment | None:
    """One booking transaction; None when the drawn reference was taken (draw again)."""
    db.session.rollback()
    try:
        refusal = booking_cap_refusal(request.phone, request.slot_id, request.source, now)
        if refusal is not None:
            db.session.rollback()
            raise BookingCapReached(refusal.code, refusal.message)
        _take_place(request.slot_id, now)
    except (SlotFull, SlotNotBookable, BookingCapReached):
        # A concurrent duplicate of this very request may have taken the place.
        existing = _appointment_for_key(request)
        if existing is not None:
            return existing
        raise
    appt = _new_appointment(
        request.slot_id,
        now,
        patient=_patient_record(request, now),
        conservative_treatment=request.conservative_treatment,
        source=request.source,
        idempotency_key=request.idempotency_key,
        idempotency_fingerprint=(request_fingerprint(request) if request.idempotency_key else None),
    )
    _record(appt, None, actor=request.source)
    try:
        # A reference drawn twice (or a concurrent duplicate of this request) fails
        # here, before anything else queries and autoflushes; the caller draws again.
        db.session.flush()
        queue_appointment_texts(appt, now)
        if after_change is not None:
            after_change(appt)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _appointment_for_key(request)
    return appt


def book_appointment(
    request: BookingRequest,
    now: datetime | None = None,
    attempts: int = 5,
    after_change: Callable[[Appointment], None] | None = None,
) -> Appointment:
    """Book one place in a slot; a repeated idempotency key returns the first booking.

    ``after_change`` adds to the booking's own transaction (a staff audit entry).
    """
    now = now or utcnow()
    existing = _appointment_for_key(request)
    if existing is not None:
        return existing
    for _ in range(attempts):
        with serialized_writes():
            appt = _try_booking(request, now, after_change)
        if appt is not None:
            return appt
    raise BookingError("Could not book this time; please try again.")


def _claim_for_change(
    appt: Appointment, new_status: str, now: datetime, expected_version: int | None = None
) -> str:
    """Move a still-changeable appointment to new_status; returns its old status.

    The conditional UPDATE makes a cancel racing a reschedule (or a second
    click) lose cleanly instead of releasing the slot twice. With
    ``expected_version`` (staff pages), any change since the page was read loses too.
    """
    old_status = appt.status
    if expected_version is not None and appt.version != expected_version:
        raise StaleAppointment(STALE_MESSAGE)
    if appt.slot.starts_at <= now:
        raise AppointmentNotChangeable("This appointment has already started or passed.")
    conditions = [Appointment.id == appt.id, Appointment.status.in_(CHANGEABLE)]
    if expected_version is not None:
        conditions.append(Appointment.version == expected_version)
    changed = db.session.execute(
        update(Appointment)
        .where(*conditions)
        .values(status=new_status, updated_at=now, version=Appointment.version + 1),
        execution_options={"synchronize_session": False},
    ).rowcount
    if changed != 1:
        db.session.rollback()
        if expected_version is not None:
            raise StaleAppointment(STALE_MESSAGE)
        raise AppointmentNotChangeable("This appointment was already cancelled or changed.")
    return old_status


def cancel_appointment(
    appt: Appointment,
    actor: str,
    now: datetime | None = None,
    expected_version: int | None = None,
    note: str = "",
    after_change: Callable[[Appointment], None] | None = None,
) -> Appointment:
    """Cancel and free the place; ``after_change`` adds to the same transaction (an audit entry)."""
    now = now or utcnow()
    appt_id = appt.id
    db.session.rollback()
    appt = db.session.get(Appointment, appt_id, populate_existing=True)  # type: ignore[assignment]
    with serialized_writes():
        old_status = _claim_for_change(appt, AppointmentStatus.CANCELLED, now, expected_version)
        _release_place(appt.slot_id)
        db.session.refresh(appt)
        _record(appt, old_status, actor=actor, note=note)
        queue_cancellation_text(appt, now)
        if after_change is not None:
            after_change(appt)
        db.session.commit()
    return appt


def reschedule_appointment(
    appt: Appointment,
    new_slot_id: int,
    actor: str,
    now: datetime | None = None,
    expected_version: int | None = None,
    after_change: Callable[[Appointment, Appointment], None] | None = None,
) -> Appointment:
    """Move a booking to another slot, at any location, in one transaction.

    The old appointment becomes ``rescheduled`` and a new one (with its own
    reference and manage link) holds the new slot; if the new slot has no
    room, nothing changes.
    """
    now = now or utcnow()
    appt_id = appt.id
    db.session.rollback()
    old = db.session.get(Appointment, appt_id, populate_existing=True)
    assert old is not None
    if new_slot_id == old.slot_id:
        raise SlotNotBookable("That is the time you already have.")
    with serialized_writes():
        return _move(old, new_slot_id, actor, now, expected_version, after_change)


def _move(
    old: Appointment,
    new_slot_id: int,
    actor: str,
    now: datetime,
    expected_version: int | None = None,
    after_change: Callable[[Appointment, Appointment], None] | None = None,
) -> Appointment:
    old_status = _claim_for_change(old, AppointmentStatus.RESCHEDULED, now, expected_version)
    try:
        for slot_id in sorted((old.slot_id, new_slot_id)):
            if slot_id == new_slot_id:
                _take_place(new_slot_id, now)
            else:
                _release_place(old.slot_id)
    except BookingError:
        db.session.rollback()
        raise
    db.session.refresh(old)
    new = _new_appointment(
        new_slot_id,
        now,
        patient=old.patient,
        conservative_treatment=old.conservative_treatment,
        source=old.source,
        rescheduled_from=old,
    )
    _record(old, old_status, actor=actor, note=f"moved to {new.reference}")
    _record(new, None, actor=actor, note=f"moved from {old.reference}")
    try:
        db.session.flush()  # a reference drawn twice fails here, not in a later query
        cancel_pending_texts(old.id, "appointment_rescheduled", now)
        queue_appointment_texts(new, now)
        if after_change is not None:
            after_change(old, new)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a reference collision, one in hundreds of thousands
        raise BookingError("Could not move the appointment; please try again.") from None
    return new

"""Booking, cancelling and moving appointments, inside the caller's unit of work.

A place in a slot is taken with one conditional UPDATE (``places.take_place``),
so the database decides races. Status changes go through the lifecycle,
which records them and tells the subscribers (texts). Nothing here commits or
rolls back the caller's work, and nothing needs undoing: a reference drawn
twice is drawn again (``INSERT ... ON CONFLICT DO NOTHING`` fails no
statement), and a concurrent try of the same request is found once the place
is taken (both tries queue on the slot's row), its place given back. An
operation that raises leaves the caller's unit to roll back, as every door does.

A booking is a handful of statements built once: the slot's UPDATE (which
returns the slot), its location (unless the session holds it), the patient,
the appointment, its history and audit entry, and its texts.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select

from scheduler.appointments.caps import booking_cap_refusal
from scheduler.appointments.errors import (
    STALE_MESSAGE,
    AppointmentNotChangeable,
    BookingCapReached,
    BookingError,
    IdempotencyKeyReused,
    SlotFull,
    SlotNotBookable,
    SlotNotFound,
    StaleAppointment,
)
from scheduler.appointments.lifecycle import (
    Actor,
    change_status,
    record_booking,
    refusal,
)
from scheduler.appointments.patients import PatientDetails, patient_for_booking
from scheduler.appointments.places import release_place, take_place
from scheduler.database import as_loaded, connection, insert_unless_taken
from scheduler.extensions import db
from scheduler.models import Appointment, AppointmentStatus, Patient, Slot, utcnow

__all__ = [
    "BookingCapReached",
    "AppointmentNotChangeable",
    "BookingError",
    "BookingRequest",
    "IdempotencyKeyReused",
    "SlotFull",
    "SlotNotBookable",
    "SlotNotFound",
    "StaleAppointment",
    "book_appointment",
    "cancel_appointment",
    "reschedule_appointment",
]

# No 0/O, 1/I/L, U/V, 2/Z or 5/S look-alikes: easy to read aloud and type.
REFERENCE_ALPHABET = "346789ACDEFGHJKMNPQRTWXY"
REFERENCE_LENGTH = 4
# A reference drawn twice is drawn again; this many draws in a row never all collide.
REFERENCE_DRAWS = 5


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

    @property
    def patient_details(self) -> PatientDetails:
        return PatientDetails(
            first_name=self.first_name,
            last_name=self.last_name,
            phone=self.phone,
            email=self.email,
            date_of_birth=self.date_of_birth,
            language=self.language,
            sms_consent=self.sms_consent,
            sms_consent_text=self.sms_consent_text,
            source=self.source,
        )


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


_APPOINTMENT_WITH_KEY = select(*Appointment.__table__.columns).where(
    Appointment.idempotency_key == bindparam("key")
)


_KEY_TAKEN = select(Appointment.id).where(Appointment.idempotency_key == bindparam("key"))


def _appointment_for_key(request: BookingRequest) -> Appointment | None:
    """The booking an earlier try of this very request made, if any.

    A key that comes back with a different request is refused, so it can
    never hand one person's booking (and its manage link) to another.
    """
    if not request.idempotency_key:
        return None
    row = (
        connection()
        .execute(_APPOINTMENT_WITH_KEY, {"key": request.idempotency_key})
        .mappings()
        .first()
    )
    if row is None:
        return None
    if row["idempotency_fingerprint"] != request_fingerprint(request):
        raise IdempotencyKeyReused("This request key was already used for another booking.")
    return as_loaded(Appointment, row)


def _new_appointment(
    slot: Slot, patient: Patient, now: datetime, **fields: Any
) -> Appointment | None:
    """Insert the appointment under a reference drawn until one is free; None if the
    idempotency key in ``fields`` is taken (or every draw collided)."""
    conn = connection()
    insert = insert_unless_taken(Appointment.__table__, conn.dialect.name, Appointment.id)
    for _ in range(REFERENCE_DRAWS):
        values = {
            "reference": new_reference(slot.location.code),
            "slot_id": slot.id,
            "patient_id": patient.id,
            "status": AppointmentStatus.BOOKED,
            "manage_nonce": secrets.token_urlsafe(12),
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "conservative_treatment": None,
            "idempotency_key": None,
            "idempotency_fingerprint": None,
            "rescheduled_from_id": None,
            **fields,
        }
        appointment_id = conn.execute(insert, values).scalar()
        if appointment_id is not None:
            values["id"] = appointment_id
            return as_loaded(Appointment, values, slot=slot, patient=patient)
        key = values["idempotency_key"]
        if key is not None and connection().execute(_KEY_TAKEN, {"key": key}).first():
            return None
    return None


def book_appointment(
    request: BookingRequest, actor: Actor, now: datetime | None = None
) -> Appointment:
    """Book one place in a slot; a repeated idempotency key returns the first booking.

    The place is taken first: two tries of one request (one key, one slot) queue
    on the slot's row there, so the later one finds the earlier one's booking.
    """
    now = now or utcnow()
    refused = booking_cap_refusal(request.phone, request.slot_id, request.source, now)
    if refused is not None:
        # An earlier try of this very request may be what the cap counted.
        existing = _appointment_for_key(request)
        if existing is not None:
            return existing
        raise BookingCapReached(refused.code, refused.message)
    try:
        slot = take_place(request.slot_id, now)
    except (SlotFull, SlotNotBookable):
        # An earlier try of this very request may hold the place.
        existing = _appointment_for_key(request)
        if existing is not None:
            return existing
        raise
    existing = _appointment_for_key(request)
    if existing is not None:
        release_place(slot.id)  # this try books nothing
        return existing
    found = patient_for_booking(request.patient_details, actor, now)
    appt = _new_appointment(
        slot,
        found.patient,
        now,
        conservative_treatment=request.conservative_treatment,
        source=request.source,
        idempotency_key=request.idempotency_key,
        idempotency_fingerprint=(request_fingerprint(request) if request.idempotency_key else None),
    )
    if appt is None:
        # The key was taken meanwhile by a request for another slot (refused
        # here), or by this one's earlier try (the client asks again and gets it).
        _appointment_for_key(request)
        raise BookingError("Could not book this time; please try again.")
    record_booking(appt, actor, now, details={"consent_withdrawn": found.consent_withdrawn})
    return appt


def cancel_appointment(
    appt: Appointment,
    actor: Actor,
    now: datetime | None = None,
    expected_version: int | None = None,
    note: str = "",
) -> Appointment:
    """Cancel and free the place (the lifecycle tells the patient, with their consent)."""
    return change_status(
        appt,
        AppointmentStatus.CANCELLED,
        actor,
        now or utcnow(),
        expected_version=expected_version,
        note=note,
    )


def _lock_slots(slot_ids: list[int]) -> None:
    """Row locks on both slots of a move, in ascending id order: two moves crossing each
    other then queue instead of deadlocking (SQLite holds its one write lock already)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            select(Slot.id).where(Slot.id.in_(slot_ids)).order_by(Slot.id).with_for_update()
        ).all()


def reschedule_appointment(
    appt: Appointment,
    new_slot_id: int,
    actor: Actor,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> Appointment:
    """Move a booking to another slot, at any location.

    The old appointment becomes ``rescheduled`` and a new one (with its own
    reference and manage link) holds the new slot. If the new slot has no
    room, or the old one changed meanwhile, the caller's unit rolls back.
    """
    now = now or utcnow()
    if new_slot_id == appt.slot_id:
        raise SlotNotBookable("That is the time you already have.")
    if expected_version is not None and appt.version != expected_version:
        raise StaleAppointment(STALE_MESSAGE)
    problem = refusal(appt, AppointmentStatus.RESCHEDULED, actor, now)
    if problem:
        raise AppointmentNotChangeable(problem)
    _lock_slots(sorted((appt.slot_id, new_slot_id)))
    slot = take_place(new_slot_id, now)
    new = _new_appointment(
        slot,
        appt.patient,
        now,
        conservative_treatment=appt.conservative_treatment,
        source=appt.source,
        rescheduled_from_id=appt.id,
    )
    if new is None:
        raise BookingError("Could not move the appointment; please try again.")
    change_status(
        appt,
        AppointmentStatus.RESCHEDULED,
        actor,
        now,
        expected_version=expected_version,
        note=f"moved to {new.reference}",
        moved_to=new,
        audit_details={"new_reference": new.reference, "new_slot_id": new_slot_id},
    )
    record_booking(new, actor, now, note=f"moved from {appt.reference}", moved_from=appt)
    return new

"""Limits per phone number on bookings, so one number cannot hold the calendar or be texted
into a flood: at most ``MAX_ACTIVE_BOOKINGS_PER_PHONE`` upcoming appointments (online and
API bookings), and never two places in one slot.

Checked inside the booking's transaction under a per-phone lock, so twenty
simultaneous bookings with one phone end with exactly the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select

from scheduler.database import LOCK_BOOKINGS_OF_PHONE, lock_for_transaction
from scheduler.display import phone_display
from scheduler.extensions import db
from scheduler.models import CHANGEABLE, HOLDS_SLOT, Appointment, Patient, Slot

# Staff book callers they speak to; the count cap is for the open doors.
COUNT_CAPPED_SOURCES = frozenset({"online_form", "api", "waitlist"})
# Patient-facing messages, in one place.
TOO_MANY_MESSAGE = (
    "This phone number already has {count} upcoming appointments, the most we can book "
    "online. To change one, use the link in its confirmation, or call us at {phone}."
)
SAME_SLOT_MESSAGE = (
    "This phone number already has an appointment at this time. To book someone else "
    "with the same number, please call us at {phone}."
)


@dataclass(frozen=True)
class CapRefusal:
    code: str  # stable, for the API
    message: str  # for people, with the clinic's phone


def clinic_phone() -> str:
    return phone_display(current_app.config["CLINIC_PHONE"])


def booking_cap_refusal(phone: str, slot_id: int, source: str, now: datetime) -> CapRefusal | None:
    """Why a booking for ``phone`` in ``slot_id`` would break a per-phone cap, or None.

    Call first in the booking's transaction: it takes the phone's lock, held
    until the commit or rollback, so concurrent bookings with one phone count in turn.
    """
    lock_for_transaction(LOCK_BOOKINGS_OF_PHONE, phone)
    rows = db.session.execute(
        select(Appointment.slot_id, Appointment.status)
        .join(Appointment.patient)
        .join(Appointment.slot)
        .where(Patient.phone == phone, Appointment.status.in_(HOLDS_SLOT), Slot.starts_at > now)
    ).all()
    if any(row.slot_id == slot_id for row in rows):
        return CapRefusal("already_booked_in_slot", SAME_SLOT_MESSAGE.format(phone=clinic_phone()))
    limit = current_app.config["MAX_ACTIVE_BOOKINGS_PER_PHONE"]
    active = sum(1 for row in rows if row.status in CHANGEABLE)
    if source in COUNT_CAPPED_SOURCES and active >= limit:
        message = TOO_MANY_MESSAGE.format(count=active, phone=clinic_phone())
        return CapRefusal("too_many_bookings", message)
    return None


def active_bookings_of(phone: str, now: datetime) -> int:
    """Upcoming appointments of a phone number that still hold their place."""
    return (
        db.session.scalar(
            select(func.count(Appointment.id))
            .join(Appointment.patient)
            .join(Appointment.slot)
            .where(Patient.phone == phone, Appointment.status.in_(CHANGEABLE), Slot.starts_at > now)
        )
        or 0
    )

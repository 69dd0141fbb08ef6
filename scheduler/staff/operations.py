"""What schedulers do to appointments beyond booking, cancelling and moving them.

Every change checks the version the scheduler's page showed, so two
colleagues (or a colleague and a patient's text reply) never overwrite each
other: the later click gets StaleAppointment and the page shows what changed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from scheduler.appointments.operations import STALE_MESSAGE, BookingError, StaleAppointment
from scheduler.audit import audit
from scheduler.availability.operations import location_tz
from scheduler.availability.slots import local_day_bounds
from scheduler.database import serialized_writes
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    AppointmentEvent,
    AppointmentNote,
    AppointmentStatus,
    MessageKind,
    OutboundMessage,
    StaffUser,
    utcnow,
)
from scheduler.sms.outbox import cancel_pending_texts, queue_text_again

S = AppointmentStatus
# Front-desk marks and the statuses each may follow. None of them frees the slot.
MARKS: dict[str, frozenset[str]] = {
    S.ARRIVED: frozenset({S.BOOKED, S.CONFIRMED, S.NO_SHOW}),
    S.COMPLETED: frozenset({S.ARRIVED}),
    S.NO_SHOW: frozenset({S.BOOKED, S.CONFIRMED, S.ARRIVED}),
}


class MarkNotAllowed(BookingError):
    code = "mark_not_allowed"


def mark_too_early(appt: Appointment, status: str, now: datetime) -> str | None:
    """Why this mark cannot be made yet, if it cannot: arrived and completed from the visit's
    day on, no-show once the visit has started."""
    if status == S.NO_SHOW and now < appt.slot.starts_at:
        return "A patient can be marked no-show only once the visit time has come."
    tz = location_tz(appt.slot.location)
    visit_day_start, _ = local_day_bounds(appt.slot.starts_at.astimezone(tz).date(), tz)
    if status in (S.ARRIVED, S.COMPLETED) and now < visit_day_start:
        return "Arrived and completed can be marked from the day of the visit."
    return None


def actor_of(user: StaffUser) -> str:
    return f"staff:{user.id}"


def mark_appointment(
    appt: Appointment, status: str, expected_version: int, user: StaffUser, now: datetime
) -> Appointment:
    """Mark arrived, completed or no-show, if nobody changed the appointment meanwhile."""
    allowed = MARKS.get(status)
    if allowed is None:
        raise MarkNotAllowed("That is not something the front desk can mark.")
    problem = mark_too_early(appt, status, now)
    if problem:
        raise MarkNotAllowed(problem)
    old_status = appt.status
    with serialized_writes():
        changed = db.session.execute(
            update(Appointment)
            .where(
                Appointment.id == appt.id,
                Appointment.version == expected_version,
                Appointment.status.in_(allowed),
            )
            .values(status=status, updated_at=now, version=Appointment.version + 1),
            execution_options={"synchronize_session": False},
        ).rowcount
        if changed != 1:
            db.session.rollback()
            db.session.refresh(appt)
            if appt.version != expected_version:
                raise StaleAppointment(STALE_MESSAGE)
            shown = appt.status.replace("_", "-")
            raise MarkNotAllowed(f"A {shown} appointment cannot be marked so.")
        db.session.add(
            AppointmentEvent(
                appointment_id=appt.id,
                at=now,
                from_status=old_status,
                to_status=status,
                actor=actor_of(user),
            )
        )
        # The visit is happening or over: texts still waiting for it would only confuse.
        cancel_pending_texts(appt.id, f"marked_{status}", now)
        audit(
            f"appointment.{status}",
            "appointment",
            appt.id,
            appt.reference,
            from_status=old_status,
            to_status=status,
        )
        db.session.commit()
    db.session.refresh(appt)
    return appt


def add_note(appt: Appointment, body: str, user: StaffUser, now: datetime) -> AppointmentNote:
    note = AppointmentNote(appointment_id=appt.id, author_id=user.id, at=now, body=body.strip())
    db.session.add(note)
    audit("appointment.note", "appointment", appt.id, appt.reference, length=len(note.body))
    db.session.commit()
    return note


class NoTextConsent(BookingError):
    code = "no_text_consent"


def resend_instructions(
    appt: Appointment, expected_version: int, user: StaffUser, now: datetime | None = None
) -> None:
    """Queue the pre-consult instructions again, for a booking still ahead.

    The number of the copy is counted inside the write, and a second click that
    races the first gets a clear message instead of a duplicate-key error.
    """
    now = now or utcnow()
    if not appt.patient.sms_consent:
        raise NoTextConsent(
            "This patient did not agree to texts; read the instructions to them instead."
        )
    if appt.version != expected_version:
        raise StaleAppointment(STALE_MESSAGE)
    if not appt.is_changeable or appt.slot.starts_at <= now:
        raise MarkNotAllowed("Instructions go only to bookings that are still ahead.")
    with serialized_writes():
        sent_before = db.session.scalar(
            select(func.count(OutboundMessage.id)).where(
                OutboundMessage.appointment_id == appt.id,
                OutboundMessage.kind.like(f"{MessageKind.INSTRUCTIONS}%"),
            )
        )
        kind = f"{MessageKind.INSTRUCTIONS}#{(sent_before or 0) + 1}"
        queue_text_again(appt, MessageKind.INSTRUCTIONS, kind, now)
        audit("appointment.resend_instructions", "appointment", appt.id, appt.reference)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            raise MarkNotAllowed("The instructions are already on their way.") from None

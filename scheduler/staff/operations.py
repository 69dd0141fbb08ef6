"""What schedulers do to appointments beyond booking, cancelling and moving them.

Every change checks the version the scheduler's page showed, so two
colleagues (or a colleague and a patient's text reply) never overwrite each
other: the later click gets StaleAppointment and the page shows what changed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from scheduler.booking.operations import STALE_MESSAGE, BookingError, StaleAppointment
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
from scheduler.sms.outbox import queue_text_again
from scheduler.staff.audit import audit

S = AppointmentStatus
# Front-desk marks and the statuses each may follow. None of them frees the slot.
MARKS: dict[str, frozenset[str]] = {
    S.ARRIVED: frozenset({S.BOOKED, S.CONFIRMED, S.NO_SHOW}),
    S.COMPLETED: frozenset({S.ARRIVED}),
    S.NO_SHOW: frozenset({S.BOOKED, S.CONFIRMED, S.ARRIVED}),
}


class MarkNotAllowed(BookingError):
    code = "mark_not_allowed"


def actor_of(user: StaffUser) -> str:
    return f"staff:{user.id}"


def mark_appointment(
    appt: Appointment, status: str, expected_version: int, user: StaffUser, now: datetime
) -> Appointment:
    """Mark arrived, completed or no-show, if nobody changed the appointment meanwhile."""
    allowed = MARKS.get(status)
    if allowed is None:
        raise MarkNotAllowed("That is not something the front desk can mark.")
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


def resend_instructions(appt: Appointment, user: StaffUser, now: datetime | None = None) -> bool:
    """Queue the pre-consult instructions again; False when the patient gave no SMS consent."""
    now = now or utcnow()
    if not appt.patient.sms_consent:
        return False
    sent_before = db.session.scalar(
        select(func.count(OutboundMessage.id)).where(
            OutboundMessage.appointment_id == appt.id,
            OutboundMessage.kind.like(f"{MessageKind.INSTRUCTIONS}%"),
        )
    )
    kind = f"{MessageKind.INSTRUCTIONS}#{(sent_before or 0) + 1}"
    with serialized_writes():
        queue_text_again(appt, MessageKind.INSTRUCTIONS, kind, now)
        audit("appointment.resend_instructions", "appointment", appt.id, appt.reference)
        db.session.commit()
    return True

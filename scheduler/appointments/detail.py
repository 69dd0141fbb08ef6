"""Everything the front desk sees on one appointment's page, read in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import joinedload, selectinload

from scheduler.appointments.validation import MAX_ID
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    AppointmentNote,
    InboundMessage,
    OutboundMessage,
    PhoneNumberState,
)

ThreadItem = tuple[str, datetime, OutboundMessage | InboundMessage]


@dataclass(frozen=True)
class AppointmentDetail:
    appointment: Appointment
    # Texts sent and replies received, oldest first: ("out" | "in", when, row).
    thread: list[ThreadItem]
    notes: list[AppointmentNote]
    number: PhoneNumberState | None
    moved_to: Appointment | None


def appointment_with_patient(appointment_id: int) -> Appointment | None:
    """The appointment with its patient and slot, fresh from the database."""
    if not 1 <= appointment_id <= MAX_ID:
        return None
    return db.session.scalar(
        select(Appointment)
        .options(joinedload(Appointment.patient), joinedload(Appointment.slot))
        .where(Appointment.id == appointment_id)
        .execution_options(populate_existing=True)
    )


def appointment_detail(appt: Appointment) -> AppointmentDetail:
    texts = db.session.scalars(
        select(OutboundMessage)
        .options(selectinload(OutboundMessage.attempt_log), joinedload(OutboundMessage.author))
        .where(OutboundMessage.appointment_id == appt.id)
        .order_by(OutboundMessage.created_at, OutboundMessage.id)
    ).all()
    # This appointment's replies (C, R), and the number's own words (STOP, HELP, ...)
    # since it was booked; never replies about another appointment on the same number.
    replies = db.session.scalars(
        select(InboundMessage)
        .options(joinedload(InboundMessage.handled_by))
        .where(
            InboundMessage.from_phone == appt.patient.phone,
            or_(
                InboundMessage.appointment_id == appt.id,
                and_(
                    InboundMessage.appointment_id.is_(None),
                    InboundMessage.received_at >= appt.created_at,
                ),
            ),
        )
        .order_by(InboundMessage.received_at)
    ).all()
    notes = db.session.scalars(
        select(AppointmentNote)
        .options(joinedload(AppointmentNote.author))
        .where(AppointmentNote.appointment_id == appt.id)
        .order_by(AppointmentNote.at)
    ).all()
    thread: list[ThreadItem] = sorted(
        [("out", t.created_at, t) for t in texts] + [("in", r.received_at, r) for r in replies],
        key=lambda item: item[1],
    )
    return AppointmentDetail(
        appointment=appt,
        thread=thread,
        notes=list(notes),
        number=db.session.scalar(
            select(PhoneNumberState).where(PhoneNumberState.phone == appt.patient.phone)
        ),
        moved_to=db.session.scalar(
            select(Appointment).where(Appointment.rescheduled_from_id == appt.id)
        ),
    )

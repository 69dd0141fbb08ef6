"""What schedulers do to appointments beyond booking, cancelling and moving them.

Every change checks the version the scheduler's page showed, so two
colleagues (or a colleague and a patient's text reply) never overwrite each
other: the later click gets StaleAppointment and the page shows what changed.
Status changes go through the lifecycle; the caller's unit of work commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from scheduler.appointments.errors import (
    STALE_MESSAGE,
    MarkNotAllowed,
    NoTextConsent,
    StaleAppointment,
)
from scheduler.appointments.lifecycle import MARKS, Actor, ActorKind, change_status, transitions_for
from scheduler.audit import audit
from scheduler.extensions import db
from scheduler.mail.outbox import email_address_of, queue_email
from scheduler.models import (
    Appointment,
    AppointmentNote,
    AppointmentStatus,
    Channel,
    MessageKind,
    OutboundMessage,
    StaffUser,
)
from scheduler.sms.outbox import queue_text_again


def marks_possible(appt: Appointment, now: datetime) -> list[AppointmentStatus]:
    """The front-desk marks (arrived, completed, no-show) this appointment can take now."""
    return [t.target for t in transitions_for(appt, ActorKind.STAFF, now) if t.target in MARKS]


def mark_appointment(
    appt: Appointment, status: str, expected_version: int, user: StaffUser, now: datetime
) -> Appointment:
    """Mark arrived, completed or no-show, if nobody changed the appointment meanwhile."""
    try:
        target = AppointmentStatus(status)
    except ValueError:
        target = None
    if target not in MARKS:
        raise MarkNotAllowed("That is not something the front desk can mark.")
    return change_status(appt, target, Actor.staff(user), now, expected_version=expected_version)


def add_note(appt: Appointment, body: str, user: StaffUser, now: datetime) -> AppointmentNote:
    note = AppointmentNote(appointment_id=appt.id, author_id=user.id, at=now, body=body.strip())
    db.session.add(note)
    audit("appointment.note", "appointment", appt.id, appt.reference, length=len(note.body))
    return note


def resend_instructions(
    appt: Appointment, expected_version: int, user: StaffUser, now: datetime
) -> list[Channel]:
    """Queue the pre-consult instructions again, for a booking still ahead: by text with
    SMS consent, by email to a patient who gave an address; returns the channels used.

    The number of the copy is counted inside the write, per channel, and a second
    click that races the first gets a clear message instead of a duplicate-key error.
    """
    channels = [Channel.SMS] if appt.patient.sms_consent else []
    if email_address_of(appt) is not None:
        channels.append(Channel.EMAIL)
    if not channels:
        raise NoTextConsent(
            "This patient did not agree to texts and gave no email address; read the "
            "instructions to them instead."
        )
    if appt.version != expected_version:
        raise StaleAppointment(STALE_MESSAGE)
    if not appt.is_changeable or appt.slot.starts_at <= now:
        raise MarkNotAllowed("Instructions go only to bookings that are still ahead.")
    for channel in channels:
        sent_before = db.session.scalar(
            select(func.count(OutboundMessage.id)).where(
                OutboundMessage.appointment_id == appt.id,
                OutboundMessage.channel == channel,
                OutboundMessage.kind.like(f"{MessageKind.INSTRUCTIONS}%"),
            )
        )
        kind = f"{MessageKind.INSTRUCTIONS}#{(sent_before or 0) + 1}"
        try:
            with db.session.begin_nested():
                if channel is Channel.SMS:
                    queue_text_again(appt, MessageKind.INSTRUCTIONS, kind, now)
                else:
                    queue_email(appt, MessageKind.INSTRUCTIONS, now, stored_kind=kind)
        except IntegrityError:
            raise MarkNotAllowed("The instructions are already on their way.") from None
    audit(
        "appointment.resend_instructions",
        "appointment",
        appt.id,
        appt.reference,
        channels=[str(channel) for channel in channels],
    )
    return channels

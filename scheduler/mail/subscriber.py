"""Emails follow the appointment lifecycle as texts do, each event in its own transaction;
SMS consent plays no part (a patient without texts still gets emails)."""

from __future__ import annotations

from scheduler.appointments.lifecycle import AppointmentChanged, EventKind
from scheduler.mail.outbox import (
    cancel_pending_emails,
    queue_appointment_emails,
    queue_cancellation_email,
)
from scheduler.sms.subscriber import VISIT_MARKS


def emails_for(event: AppointmentChanged) -> None:
    appt = event.appointment
    if event.kind is EventKind.BOOKED:
        queue_appointment_emails(appt, event.at)
    elif event.kind is EventKind.MOVED:
        assert event.moved_to is not None
        cancel_pending_emails(appt.id, "appointment_rescheduled", event.at)
        queue_appointment_emails(event.moved_to, event.at, moved=True)
    elif event.kind is EventKind.CANCELLED:
        queue_cancellation_email(appt, event.at)
    elif event.kind in VISIT_MARKS:
        cancel_pending_emails(appt.id, f"marked_{appt.status}", event.at)

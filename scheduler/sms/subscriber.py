"""Texts follow the appointment lifecycle: each event queues or withdraws texts in its
own transaction (so a booking and its confirmation are saved together or not at all)."""

from __future__ import annotations

from scheduler.appointments.lifecycle import AppointmentChanged, EventKind
from scheduler.sms.outbox import (
    cancel_pending_texts,
    cancel_pending_texts_of_patient,
    queue_appointment_texts,
    queue_cancellation_text,
)

# The visit is happening or over: texts still waiting for it would only confuse.
VISIT_MARKS = frozenset({EventKind.ARRIVED, EventKind.COMPLETED, EventKind.NO_SHOW})


def texts_for(event: AppointmentChanged) -> None:
    appt = event.appointment
    if event.kind is EventKind.BOOKED:
        if event.details.get("consent_withdrawn"):
            cancel_pending_texts_of_patient(appt.patient_id, "consent_withdrawn", event.at)
        queue_appointment_texts(appt, event.at)
    elif event.kind is EventKind.MOVED:
        assert event.moved_to is not None
        cancel_pending_texts(appt.id, "appointment_rescheduled", event.at)
        queue_appointment_texts(event.moved_to, event.at, moved=True)
    elif event.kind is EventKind.CANCELLED:
        queue_cancellation_text(appt, event.at)
    elif event.kind in VISIT_MARKS:
        cancel_pending_texts(appt.id, f"marked_{appt.status}", event.at)

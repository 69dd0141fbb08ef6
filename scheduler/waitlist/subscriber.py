"""The waitlist follows the lifecycle, in the changing transaction: a freed place is
offered, and a waiting patient's booking that moves is followed to its new time."""

from __future__ import annotations

from sqlalchemy import update

from scheduler.appointments.lifecycle import AppointmentChanged, EventKind, PlaceFreed
from scheduler.extensions import db
from scheduler.models import ON_THE_LIST, WaitlistEntry
from scheduler.waitlist.offers import offer_place


def offers_for(event: PlaceFreed) -> None:
    offer_place(event.slot_id, event.at)


def follow_moves(event: AppointmentChanged) -> None:
    """A patient on a list moves their booking: an accepted offer moves the new one (so
    they never hold two places)."""
    if event.kind is not EventKind.MOVED or event.moved_to is None:
        return
    db.session.execute(
        update(WaitlistEntry)
        .where(
            WaitlistEntry.appointment_id == event.appointment.id,
            WaitlistEntry.status.in_(ON_THE_LIST),
        )
        .values(appointment_id=event.moved_to.id),
        execution_options={"synchronize_session": False},
    )

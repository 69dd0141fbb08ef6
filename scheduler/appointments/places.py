"""Places in a slot, taken and given back with one conditional UPDATE each.

The database decides races: ``booked_count < capacity`` is re-checked under
PostgreSQL's row lock, and SQLite has one writer at a time. A CHECK
constraint stands behind it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from scheduler.appointments.errors import SlotFull, SlotNotBookable, SlotNotFound
from scheduler.availability.operations import current_booking_window
from scheduler.extensions import db
from scheduler.models import Location, Slot


def take_place(slot_id: int, now: datetime) -> None:
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
        execution_options={"synchronize_session": "fetch"},
    ).rowcount
    if taken == 1:
        return
    slot = db.session.get(Slot, slot_id)
    if slot is None:
        raise SlotNotFound("This time slot does not exist.")
    if slot.is_blocked or not slot.location.is_active or not window.contains(slot.starts_at):
        raise SlotNotBookable("This time can no longer be booked online.")
    raise SlotFull("This time was just booked by someone else. Please choose another time.")


def release_place(slot_id: int) -> None:
    db.session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.booked_count > 0)
        .values(booked_count=Slot.booked_count - 1),
        execution_options={"synchronize_session": "fetch"},
    )

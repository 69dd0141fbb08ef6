"""Places in a slot, taken and given back with one conditional UPDATE each.

The database decides races: ``booked_count < capacity`` is re-checked under
PostgreSQL's row lock, and SQLite has one writer at a time. A CHECK
constraint stands behind it. The statements are built once (they run on
every booking); the UPDATE returns the slot's row, so the booking needs no
other read of it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update

from scheduler.appointments.errors import SlotFull, SlotNotBookable, SlotNotFound
from scheduler.availability.operations import current_booking_window
from scheduler.database import as_loaded, connection, update_held
from scheduler.extensions import db
from scheduler.models import Location, Slot, UTCDateTime

_TAKE_PLACE = (
    update(Slot.__table__)
    .where(
        Slot.id == bindparam("slot_id"),
        Slot.booked_count < Slot.capacity,
        Slot.is_blocked.is_(False),
        Slot.starts_at >= bindparam("earliest", type_=UTCDateTime()),
        Slot.starts_at <= bindparam("latest", type_=UTCDateTime()),
        Slot.location_id.in_(select(Location.id).where(Location.is_active)),
    )
    .values(booked_count=Slot.booked_count + 1)
    .returning(*Slot.__table__.columns)
)
_RELEASE_PLACE = (
    update(Slot.__table__)
    .where(Slot.id == bindparam("slot_id"), Slot.booked_count > 0)
    .values(booked_count=Slot.booked_count - 1)
    .returning(Slot.id, Slot.booked_count)
)
_LOCATION = select(*Location.__table__.columns).where(Location.id == bindparam("location_id"))


def take_place(slot_id: int, now: datetime) -> Slot:
    """Add one booking to the slot and return it (its location loaded), or raise why it
    cannot take one."""
    window = current_booking_window(now)
    taken = (
        connection()
        .execute(
            _TAKE_PLACE,
            {"slot_id": slot_id, "earliest": window.earliest, "latest": window.latest},
        )
        .mappings()
        .first()
    )
    if taken is not None:
        return as_loaded(Slot, taken, location=_location(taken["location_id"]))
    slot = db.session.get(Slot, slot_id)
    if slot is None:
        raise SlotNotFound("This time slot does not exist.")
    if slot.is_blocked or not slot.location.is_active or not window.contains(slot.starts_at):
        raise SlotNotBookable("This time can no longer be booked online.")
    raise SlotFull("This time was just booked by someone else. Please choose another time.")


def _location(location_id: int) -> Location:
    """The session's object of this location, or its row read with Core."""
    held = db.session.identity_map.get(db.session.identity_key(Location, location_id))
    if held is not None:
        return held  # type: ignore[no-any-return]
    row = connection().execute(_LOCATION, {"location_id": location_id}).mappings().one()
    return as_loaded(Location, row)


def release_place(slot_id: int) -> None:
    freed = connection().execute(_RELEASE_PLACE, {"slot_id": slot_id}).mappings().first()
    if freed is not None:
        update_held(Slot, freed)

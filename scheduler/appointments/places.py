"""Places in a slot, taken and given back with one conditional UPDATE each.

The database decides races: ``booked_count < capacity`` is re-checked under
PostgreSQL's row lock, and SQLite has one writer at a time. A CHECK
constraint stands behind it. The statements are built once (they run on
every booking); the UPDATE returns the slot's row and what a booking needs of
its location, so the booking reads neither again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update

from scheduler.appointments.errors import SlotFull, SlotNotBookable, SlotNotFound
from scheduler.availability.operations import current_booking_window
from scheduler.database import as_loaded, connection, table_of, update_held
from scheduler.models import Location, Slot, UTCDateTime

# What a booking needs of the slot's location (the reference's code, the texts' name,
# link and time zone, the address and phone of the emails and their calendar file):
# returned by the UPDATE itself.
LOCATION_FIELDS = (
    "code",
    "name",
    "slug",
    "timezone",
    "address",
    "address_is_placeholder",
    "phone",
)
_slot_location = Location.__table__.alias("slot_location")
_TAKE_PLACE = (
    update(table_of(Slot))
    .where(
        Slot.id == bindparam("slot_id"),
        Slot.booked_count < Slot.capacity,
        Slot.is_blocked.is_(False),
        Slot.starts_at >= bindparam("earliest", type_=UTCDateTime()),
        Slot.starts_at <= bindparam("latest", type_=UTCDateTime()),
        Slot.location_id.in_(select(Location.id).where(Location.is_active)),
    )
    .values(booked_count=Slot.booked_count + 1)
    .returning(
        *Slot.__table__.columns,
        *(
            select(_slot_location.c[name])
            .where(_slot_location.c.id == Slot.location_id)
            .scalar_subquery()
            .label(f"location_{name}")
            for name in LOCATION_FIELDS
        ),
    )
)
# Why a place could not be taken, read fresh (not from objects the session may hold).
_SLOT_STATE = (
    select(Slot.starts_at, Slot.is_blocked, Location.is_active)
    .join(Location, Location.id == Slot.location_id)
    .where(Slot.id == bindparam("slot_id"))
)
_RELEASE_PLACE = (
    update(table_of(Slot))
    .where(Slot.id == bindparam("slot_id"), Slot.booked_count > 0)
    .values(booked_count=Slot.booked_count - 1)
    .returning(Slot.id, Slot.booked_count)
)


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
        slot_row = {column.name: taken[column.name] for column in Slot.__table__.columns}
        location_row = {"id": taken["location_id"]}
        location_row.update((name, taken[f"location_{name}"]) for name in LOCATION_FIELDS)
        return as_loaded(Slot, slot_row, location=as_loaded(Location, location_row))
    why_not = connection().execute(_SLOT_STATE, {"slot_id": slot_id}).first()
    if why_not is None:
        raise SlotNotFound("This time slot does not exist.")
    if why_not.is_blocked or not why_not.is_active or not window.contains(why_not.starts_at):
        raise SlotNotBookable("This time can no longer be booked online.")
    raise SlotFull("This time was just booked by someone else. Please choose another time.")


def release_place(slot_id: int) -> None:
    freed = connection().execute(_RELEASE_PLACE, {"slot_id": slot_id}).mappings().first()
    if freed is not None:
        update_held(Slot, freed)

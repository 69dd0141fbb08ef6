"""Slots in the database.

Slots are rows rolled forward from the weekly rules, not computed on the fly.
A row gives the database something to lock and count: booking is one
conditional ``UPDATE slots SET booked_count = booked_count + 1 WHERE
booked_count < capacity``, atomic on SQLite and PostgreSQL alike, with a CHECK
constraint behind it. Rows also carry per-slot state staff need (blocked,
a reason) and give API clients stable slot ids. The cost is keeping the rows
in step with the rules: ``sync_slots`` does that, and the daily job in
``flask scheduler`` rolls the horizon forward.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Select, String, bindparam, cast, delete, exists, func, select

from scheduler.availability.slots import (
    BookingWindow,
    DatedException,
    SlotSpec,
    WeeklyRule,
    booking_window,
    federal_holidays,
    local_day_bounds,
    slots_between,
)
from scheduler.database import connection, rows_changed, unit_of_work
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    Location,
    ScheduleException,
    Slot,
    UTCDateTime,
    utcnow,
)
from scheduler.staff_edits import LocationRef, staff_edits


@dataclass
class SyncResult:
    created: int = 0
    removed: int = 0
    # Booked slots the rules no longer produce: kept, for staff to handle.
    orphaned: list[Slot] = field(default_factory=list)
    # Slots with room that was not there before, and why (new, capacity, reopened):
    # their ids are known once the session is flushed.
    opened: list[tuple[Slot, str]] = field(default_factory=list)


# Why sync_slots blocked a slot: it left the opening hours but appointments point at it
# (a closure's own reason, where one closed it and staff typed a reason).
OUTSIDE_HOURS = "Outside opening hours"
CLOSED = "Closed"
SLUG_PATTERN = re.compile(r"^[a-z0-9-]{1,40}$")


def active_locations() -> list[Location]:
    return list(
        db.session.scalars(select(Location).where(Location.is_active).order_by(Location.position))
    )


def active_location(slug: str) -> Location | None:
    if not SLUG_PATTERN.match(slug):
        return None
    return db.session.scalar(select(Location).where(Location.slug == slug, Location.is_active))


def active_location_ref(slug: str) -> LocationRef | None:
    """Just what the API's slot listing needs of an open location, from the process's
    copy (``staff_edits``: a location closed by staff stops being listed within a second;
    booking it is refused at once)."""
    return staff_edits().active_locations.get(slug)


def location_tz(location: Location | LocationRef) -> ZoneInfo:
    return ZoneInfo(location.timezone)


def slot_specs_for(location: Location, first_day: date, last_day: date) -> list[SlotSpec]:
    rules = [
        WeeklyRule(r.weekday, r.start_time, r.end_time, r.slot_minutes, r.capacity)
        for r in location.opening_rules
    ]
    exceptions = [
        DatedException(e.day, e.kind, e.start_time, e.end_time, e.slot_minutes, e.capacity)
        for e in location.exceptions
        if first_day <= e.day <= last_day
    ]
    holiday_dates = (
        federal_holidays(first_day, last_day)
        if location.closed_on_federal_holidays
        else frozenset()
    )
    return slots_between(
        first_day, last_day, rules, exceptions, location_tz(location), holiday_dates
    )


def sync_slots(location: Location, first_day: date, last_day: date) -> SyncResult:
    """Make the location's slot rows for these local days match its rules.

    Missing slots are added. A slot the rules no longer produce is deleted if
    no appointment ever pointed at it; otherwise it is kept (history refers to
    it) but blocked, so nobody new books it, and reported if people are
    still booked in it. Slots blocked this way open again when the rules
    bring them back. The caller commits.
    """
    # One sync per location at a time (staff edits, the daily roll): on PostgreSQL
    # the location row lock queues them; SQLite has one writer anyway.
    db.session.execute(select(Location.id).where(Location.id == location.id).with_for_update())
    tz = location_tz(location)
    window_start, _ = local_day_bounds(first_day, tz)
    _, window_end = local_day_bounds(last_day, tz)
    specs = {s.starts_at: s for s in slot_specs_for(location, first_day, last_day)}
    existing = db.session.scalars(
        select(Slot).where(
            Slot.location_id == location.id,
            Slot.starts_at >= window_start,
            Slot.starts_at < window_end,
        )
    ).all()
    result = SyncResult()
    gone: list[Slot] = []
    for slot in existing:
        spec = specs.pop(slot.starts_at, None)
        if spec is None:
            gone.append(slot)
            continue
        if slot.is_blocked and slot.blocked_by_schedule:
            slot.is_blocked, slot.block_reason, slot.blocked_by_schedule = False, "", False
            result.opened.append((slot, "unblocked"))
        if spec.capacity != slot.capacity and spec.capacity >= slot.booked_count:
            if spec.capacity > slot.capacity:
                result.opened.append((slot, "capacity"))
            slot.capacity = spec.capacity
    referenced = set(
        db.session.scalars(
            select(Appointment.slot_id).where(Appointment.slot_id.in_([s.id for s in gone]))
        )
    )
    referenced |= {s.id for s in gone if s.booked_count > 0}
    unused_ids = [s.id for s in gone if s.id not in referenced and not s.is_blocked]
    if unused_ids:
        never_booked = ~exists().where(Appointment.slot_id == Slot.id)
        result.removed = rows_changed(
            delete(Slot).where(Slot.id.in_(unused_ids), Slot.booked_count == 0, never_booked),
        )
    for slot in gone:
        if slot.id in referenced and (slot.blocked_by_schedule or not slot.is_blocked):
            slot.is_blocked, slot.blocked_by_schedule = True, True
            slot.block_reason = schedule_block_reason(location, slot, tz)
        if slot.booked_count > 0:
            result.orphaned.append(slot)
    new_slots = [
        Slot(
            location_id=location.id,
            starts_at=spec.starts_at,
            ends_at=spec.ends_at,
            capacity=spec.capacity,
            booked_count=0,
        )
        for spec in specs.values()
    ]
    db.session.add_all(new_slots)
    result.opened += [(slot, "new_session") for slot in new_slots]
    result.created = len(specs)
    return result


def closure_covering(
    exceptions: list[ScheduleException], starts_at: datetime, ends_at: datetime, tz: ZoneInfo
) -> ScheduleException | None:
    """The closure among ``exceptions`` that takes out a slot of these times, if one does
    (the same overlap rule as ``slots_for_day``)."""
    local_start, local_end = starts_at.astimezone(tz), ends_at.astimezone(tz)
    day = local_start.date()
    end_wall = local_end.time() if local_end.date() == day else time.max
    for exception in exceptions:
        if exception.kind != "closed" or exception.day != day:
            continue
        if exception.start_time is None or exception.end_time is None:
            return exception
        if local_start.time() < exception.end_time and exception.start_time < end_wall:
            return exception
    return None


def schedule_block_reason(location: Location, slot: Slot, tz: ZoneInfo) -> str:
    """What a slot the schedule blocked says: the closure's reason as typed, "Closed" for a
    closure without one, or "Outside opening hours" when the hours changed."""
    closure = closure_covering(list(location.exceptions), slot.starts_at, slot.ends_at, tz)
    if closure is None:
        return OUTSIDE_HOURS
    return closure.reason.strip() or CLOSED


def roll_slots_forward(now: datetime | None = None) -> dict[str, SyncResult]:
    """Materialise every active location's slots from today to past the horizon.

    Each location commits on its own, so one location's trouble never stops the others.
    """
    now = now or utcnow()
    config = current_app.config
    days_ahead = config["BOOKING_HORIZON_DAYS"] + config["SLOT_ROLL_MARGIN_DAYS"]
    results = {}
    for location in active_locations():
        today = now.astimezone(location_tz(location)).date()
        with unit_of_work():
            results[location.slug] = sync_slots(location, today, today + timedelta(days=days_ahead))
    return results


def current_booking_window(now: datetime | None = None) -> BookingWindow:
    config = current_app.config
    return booking_window(
        now or utcnow(),
        timedelta(minutes=config["MIN_NOTICE_MINUTES"]),
        timedelta(days=config["BOOKING_HORIZON_DAYS"]),
    )


# Open slots: room left, not blocked, in [start, end) clipped to the booking
# window. Built once with bound parameters; the API's listing is the hottest read.
_OPEN_SLOT_FILTER = (
    Slot.location_id == bindparam("location_id"),
    Slot.starts_at >= bindparam("start", type_=UTCDateTime()),
    Slot.starts_at < bindparam("end", type_=UTCDateTime()),
    Slot.booked_count < Slot.capacity,
    Slot.is_blocked.is_(False),
)
_OPEN_SLOTS = select(Slot).where(*_OPEN_SLOT_FILTER).order_by(Slot.starts_at)
# The API's listing reads all its slots as one text, "start|end|id|remaining" per slot
# with the times as stored, comma-separated: one row, not one per slot. Row by row,
# SQLite hands Python's GIL to another thread for every row, so that threads
# serving other requests took turns with each slot of a listing.
_SLOT_ENTRY = (
    cast(Slot.starts_at, String)
    + "|"
    + cast(Slot.ends_at, String)
    + "|"
    + cast(Slot.id, String)
    + "|"
    + cast(Slot.capacity - Slot.booked_count, String)
)


def _open_slot_text(dialect: str) -> Select[str]:
    if dialect == "postgresql":
        ordered = func.aggregate_strings(_SLOT_ENTRY, ",").aggregate_order_by(Slot.starts_at)
        return select(ordered).where(*_OPEN_SLOT_FILTER)
    # No ORDER BY inside group_concat before SQLite 3.44: open_slot_entries sorts.
    entries = select(_SLOT_ENTRY.label("entry")).where(*_OPEN_SLOT_FILTER).subquery()
    return select(func.aggregate_strings(entries.c.entry, ","))


_OPEN_SLOT_TEXT = {dialect: _open_slot_text(dialect) for dialect in ("postgresql", "sqlite")}


def _open_slot_params(
    location_id: int, start: datetime, end: datetime, now: datetime | None
) -> dict[str, object]:
    window = current_booking_window(now)
    return {
        "location_id": location_id,
        "start": max(start, window.earliest),
        "end": min(end, window.latest + timedelta(microseconds=1)),
    }


def open_slots(
    location: Location, start: datetime, end: datetime, now: datetime | None = None
) -> list[Slot]:
    """Slots with room left, starting in [start, end) and inside the booking window."""
    params = _open_slot_params(location.id, start, end, now)
    return list(db.session.scalars(_OPEN_SLOTS, params))


def next_open_slot(location: Location, after: datetime, now: datetime | None = None) -> Slot | None:
    """The first slot with room left from ``after`` to the end of the booking window."""
    window = current_booking_window(now)
    params = _open_slot_params(location.id, after, window.latest + timedelta(days=1), now)
    return db.session.scalars(_OPEN_SLOTS.limit(1), params).first()


def open_slot_entries(
    location_id: int, start: datetime, end: datetime, now: datetime | None = None
) -> list[str]:
    """Like open_slots, as "start|end|id|remaining" texts in time order, no ORM objects.

    Everything before the last "|" never changes for a slot (ids are never
    reused), so callers may cache what they make of it; read it with
    ``slot_entry_fields``.
    """
    conn = connection()
    params = _open_slot_params(location_id, start, end, now)
    text = conn.execute(_OPEN_SLOT_TEXT[conn.dialect.name], params).scalar()
    entries = text.split(",") if text else []
    if conn.dialect.name != "postgresql":
        entries.sort()  # SQLite stores times as fixed-width UTC text: they sort as text
    return entries


def slot_entry_fields(entry: str) -> tuple[int, datetime, datetime, int]:
    """(id, starts_at, ends_at, remaining) of an ``open_slot_entries`` text; times in UTC."""
    starts_at, ends_at, slot_id, remaining = entry.split("|")
    return int(slot_id), _utc(starts_at), _utc(ends_at), int(remaining)


def _utc(stored: str) -> datetime:
    """A time as the database gives it as text: naive UTC (SQLite) or with its offset."""
    instant = datetime.fromisoformat(stored)
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)

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

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import ColumnElement, delete, select

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
from scheduler.extensions import db
from scheduler.models import Location, Slot, utcnow


@dataclass
class SyncResult:
    created: int = 0
    removed: int = 0
    # Booked slots the rules no longer produce: kept, for staff to handle.
    orphaned: list[Slot] = field(default_factory=list)


def location_tz(location: Location) -> ZoneInfo:
    return ZoneInfo(location.timezone)


def slot_specs_for(location: Location, first_day: date, last_day: date) -> list[SlotSpec]:
    rules = [
        WeeklyRule(r.weekday, r.start_time, r.end_time, r.slot_minutes, r.capacity)
        for r in location.opening_rules
    ]
    exceptions = [
        DatedException(e.day, e.kind, e.start_time, e.end_time, e.slot_minutes, e.capacity)  # type: ignore[arg-type]
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

    Missing slots are added; slots the rules no longer produce are deleted when
    nobody is booked in them and they are not blocked; booked ones are kept and
    reported. The caller commits.
    """
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
    stale_ids = []
    for slot in existing:
        spec = specs.pop(slot.starts_at, None)
        if spec is None:
            if slot.booked_count == 0 and not slot.is_blocked:
                stale_ids.append(slot.id)
            else:
                result.orphaned.append(slot)
        elif spec.capacity != slot.capacity and spec.capacity >= slot.booked_count:
            slot.capacity = spec.capacity
    if stale_ids:
        db.session.execute(
            delete(Slot).where(Slot.id.in_(stale_ids), Slot.booked_count == 0),
            execution_options={"synchronize_session": False},
        )
        result.removed = len(stale_ids)
    db.session.add_all(
        Slot(
            location_id=location.id,
            starts_at=spec.starts_at,
            ends_at=spec.ends_at,
            capacity=spec.capacity,
            booked_count=0,
        )
        for spec in specs.values()
    )
    result.created = len(specs)
    return result


def roll_slots_forward(now: datetime | None = None) -> dict[str, SyncResult]:
    """Materialise every active location's slots from today to past the horizon."""
    now = now or utcnow()
    config = current_app.config
    days_ahead = config["BOOKING_HORIZON_DAYS"] + config["SLOT_ROLL_MARGIN_DAYS"]
    results = {}
    for location in db.session.scalars(select(Location).where(Location.is_active)).all():
        today = now.astimezone(location_tz(location)).date()
        results[location.slug] = sync_slots(location, today, today + timedelta(days=days_ahead))
    db.session.commit()
    return results


def current_booking_window(now: datetime | None = None) -> BookingWindow:
    config = current_app.config
    return booking_window(
        now or utcnow(),
        timedelta(minutes=config["MIN_NOTICE_MINUTES"]),
        timedelta(days=config["BOOKING_HORIZON_DAYS"]),
    )


def _open_slot_conditions(
    location_id: int, start: datetime, end: datetime, window: BookingWindow
) -> list[ColumnElement[bool]]:
    return [
        Slot.location_id == location_id,
        Slot.starts_at >= max(start, window.earliest),
        Slot.starts_at < end,
        Slot.starts_at <= window.latest,
        Slot.booked_count < Slot.capacity,
        Slot.is_blocked.is_(False),
    ]


def open_slots(
    location: Location, start: datetime, end: datetime, now: datetime | None = None
) -> list[Slot]:
    """Slots with room left, starting in [start, end) and inside the booking window."""
    conditions = _open_slot_conditions(location.id, start, end, current_booking_window(now))
    return list(db.session.scalars(select(Slot).where(*conditions).order_by(Slot.starts_at)))


def open_slot_rows(
    location_id: int, start: datetime, end: datetime, now: datetime | None = None
) -> list[tuple[int, datetime, datetime, int]]:
    """Like open_slots, as plain (id, starts_at, ends_at, remaining) rows: no ORM objects."""
    conditions = _open_slot_conditions(location_id, start, end, current_booking_window(now))
    rows = db.session.execute(
        select(Slot.id, Slot.starts_at, Slot.ends_at, Slot.capacity - Slot.booked_count)
        .where(*conditions)
        .order_by(Slot.starts_at)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]

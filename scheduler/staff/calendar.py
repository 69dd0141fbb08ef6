"""The calendar's data: slots and who is in them, for locations and days, in two queries."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import contains_eager

from scheduler.availability.operations import location_tz
from scheduler.availability.slots import local_day_bounds
from scheduler.extensions import db
from scheduler.models import Appointment, Location, Slot


@dataclass
class SlotCell:
    slot: Slot
    appointments: list[Appointment] = field(default_factory=list)

    @property
    def free(self) -> int:
        return max(self.slot.capacity - self.slot.booked_count, 0)


@dataclass
class LocationDays:
    location: Location
    days: dict[date, list[SlotCell]]


def calendar_for(locations: list[Location], first_day: date, day_count: int) -> list[LocationDays]:
    """Every slot of these locations on these local days, with its appointments.

    Two queries whatever the number of slots: one for the slots, one for the
    appointments with their patients (cancelled and moved ones included, so
    the calendar shows them struck through).
    """
    days = [first_day + timedelta(days=n) for n in range(day_count)]
    if not locations:
        return []
    tz = location_tz(locations[0])
    start, _ = local_day_bounds(days[0], tz)
    _, end = local_day_bounds(days[-1], tz)
    location_ids = [loc.id for loc in locations]
    slots = db.session.scalars(
        select(Slot)
        .where(Slot.location_id.in_(location_ids), Slot.starts_at >= start, Slot.starts_at < end)
        .order_by(Slot.starts_at)
    ).all()
    appointments = db.session.scalars(
        select(Appointment)
        .join(Appointment.patient)
        .join(Appointment.slot)
        .options(contains_eager(Appointment.patient), contains_eager(Appointment.slot))
        .where(Slot.location_id.in_(location_ids), Slot.starts_at >= start, Slot.starts_at < end)
        .order_by(Appointment.id)
    ).all()
    by_slot: dict[int, list[Appointment]] = defaultdict(list)
    for appt in appointments:
        by_slot[appt.slot_id].append(appt)
    grid: dict[int, dict[date, list[SlotCell]]] = {
        loc.id: {day: [] for day in days} for loc in locations
    }
    for slot in slots:
        local_day = slot.starts_at.astimezone(tz).date()
        grid[slot.location_id][local_day].append(SlotCell(slot, by_slot.get(slot.id, [])))
    return [LocationDays(loc, grid[loc.id]) for loc in locations]

"""The front desk's boards: a day as time rows by location columns, a week as counts.

Both are read in a fixed number of statements whatever the number of slots and
appointments (``calendar_for`` reads slots and appointments in two; closures and
their bookings add at most three). ``board_version`` is the small fingerprint the
open board polls, so that a booking made online appears without a reload.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select

from scheduler.availability.closures import (
    NOTICE_KIND,
    ClosureBookings,
    closure_bookings,
    closures_on,
)
from scheduler.availability.slots import local_day_bounds
from scheduler.display import time_of_day
from scheduler.extensions import db
from scheduler.models import (
    HOLDS_SLOT,
    Appointment,
    AppointmentStatus,
    Location,
    OutboundMessage,
    ScheduleException,
    Slot,
)
from scheduler.staff.calendar import LocationDays, SlotCell, calendar_for

# What each status of the one AppointmentStatus enum reads as on the boards.
STATUS_LABELS: dict[str, str] = {
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.CONFIRMED: "confirmed",
    AppointmentStatus.ARRIVED: "arrived",
    AppointmentStatus.COMPLETED: "completed",
    AppointmentStatus.NO_SHOW: "no-show",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.RESCHEDULED: "moved",
}


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


@dataclass
class BoardCell:
    """One location at one time: its slot (or None: no slot then) and who is in it."""

    slot: Slot | None
    people: list[Appointment] = field(default_factory=list)  # holding a place first
    gone: list[Appointment] = field(default_factory=list)  # cancelled or moved away

    @property
    def free(self) -> int:
        if self.slot is None or self.slot.is_blocked:
            return 0
        return max(self.slot.capacity - self.slot.booked_count, 0)


@dataclass
class BoardRow:
    starts_at: datetime  # the row's start, in local time
    label: str  # local wall time, "9:30"
    is_past: bool
    cells: list[BoardCell]

    @property
    def people_count(self) -> int:
        return sum(len(c.people) for c in self.cells)


@dataclass
class DayBoard:
    day: date
    locations: list[Location]
    earlier: list[BoardRow]  # rows of hours already past: collapsed
    rows: list[BoardRow]
    closed: set[int]  # ids of locations with no slot that day
    closures: list[ClosureBookings]

    @property
    def patient_count(self) -> int:
        return sum(r.people_count for r in self.earlier + self.rows)


def wall_label(local: datetime) -> str:
    """A row's time as the desk reads it: "9:30 AM"."""
    return time_of_day(local.time())


def day_board(locations: list[Location], day: date, now: datetime, tz: ZoneInfo) -> DayBoard:
    """The day's slots of these locations as rows of times; hours before now's hour collapse."""
    columns = calendar_for(locations, day, 1)
    by_time: dict[datetime, dict[int, SlotCell]] = defaultdict(dict)
    for column in columns:
        for cell in column.days[day]:
            local = cell.slot.starts_at.astimezone(tz)
            by_time[local][column.location.id] = cell
    current_hour = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    earlier: list[BoardRow] = []
    rows: list[BoardRow] = []
    for local in sorted(by_time):
        cells = [_board_cell(by_time[local].get(loc.id)) for loc in locations]
        past = local < current_hour
        row = BoardRow(local.astimezone(tz), wall_label(local), past, cells)
        (earlier if past else rows).append(row)
    closed = {c.location.id for c in columns if not c.days[day]}
    return DayBoard(
        day=day,
        locations=locations,
        earlier=earlier,
        rows=rows,
        closed=closed,
        closures=closure_bookings(closures_on([loc.id for loc in locations], day), columns),
    )


def _board_cell(cell: SlotCell | None) -> BoardCell:
    if cell is None:
        return BoardCell(None)
    holding = [a for a in cell.appointments if a.status in HOLDS_SLOT]
    gone = [a for a in cell.appointments if a.status not in HOLDS_SLOT]
    return BoardCell(cell.slot, holding, gone)


@dataclass
class WeekRow:
    label: str  # local wall time
    minutes: int  # minutes after midnight, to sort
    # cells[location index][day index]: the slot at that time, or None
    cells: list[list[Slot | None]]


@dataclass
class WeekBoard:
    first_day: date
    days: list[date]  # the days any shown location is open
    locations: list[Location]
    rows: list[WeekRow]


def week_board(locations: list[Location], first_day: date, tz: ZoneInfo) -> WeekBoard:
    """A week of these locations side by side: one row per start time, a count per day."""
    columns: list[LocationDays] = calendar_for(locations, first_day, 7)
    open_days = sorted({d for c in columns for d, cells in c.days.items() if cells})
    index_of_day = {d: n for n, d in enumerate(open_days)}
    rows: dict[tuple[int, int], WeekRow] = {}
    for n, column in enumerate(columns):
        for d, cells in column.days.items():
            for cell in cells:
                local = cell.slot.starts_at.astimezone(tz)
                key = (local.hour, local.minute)
                row = rows.get(key)
                if row is None:
                    row = WeekRow(
                        wall_label(local),
                        local.hour * 60 + local.minute,
                        [[None] * len(open_days) for _ in columns],
                    )
                    rows[key] = row
                row.cells[n][index_of_day[d]] = cell.slot
    return WeekBoard(
        first_day=first_day,
        days=open_days,
        locations=locations,
        rows=sorted(rows.values(), key=lambda r: r.minutes),
    )


def board_version(location_ids: list[int], day: date, tz: ZoneInfo) -> str:
    """A fingerprint of what the day board shows, in one statement.

    It changes when a slot is added, removed, blocked or opened, or an appointment
    is booked or changes status (every change bumps its ``updated_at``), or a
    closure text is queued or changes status.
    """
    start, end = local_day_bounds(day, tz)
    in_day = and_(Slot.location_id.in_(location_ids), Slot.starts_at >= start, Slot.starts_at < end)
    figures = [
        select(func.count(Slot.id)).where(in_day),
        select(func.coalesce(func.sum(Slot.booked_count), 0)).where(in_day),
        select(func.count(Slot.id)).where(in_day, Slot.is_blocked.is_(True)),
        select(func.coalesce(func.max(Slot.id), 0)).where(in_day),
        select(func.count(Appointment.id)).join(Slot, Slot.id == Appointment.slot_id).where(in_day),
        select(func.max(Appointment.updated_at))
        .join(Slot, Slot.id == Appointment.slot_id)
        .where(in_day),
        select(func.count(OutboundMessage.id))
        .join(Appointment, Appointment.id == OutboundMessage.appointment_id)
        .join(Slot, Slot.id == Appointment.slot_id)
        .where(in_day, OutboundMessage.kind == NOTICE_KIND),
        select(func.max(OutboundMessage.updated_at))  # a closure text sent, or failed
        .join(Appointment, Appointment.id == OutboundMessage.appointment_id)
        .join(Slot, Slot.id == Appointment.slot_id)
        .where(in_day, OutboundMessage.kind == NOTICE_KIND),
        select(func.count(ScheduleException.id)).where(
            ScheduleException.location_id.in_(location_ids), ScheduleException.day == day
        ),
    ]
    row = db.session.execute(select(*(f.scalar_subquery() for f in figures))).one()
    text = "|".join(str(value) for value in row)
    return hashlib.sha256(f"{sorted(location_ids)}|{day}|{text}".encode()).hexdigest()[:16]

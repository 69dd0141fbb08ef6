"""Slot arithmetic: pure functions over frozen dataclasses, no Flask, no database.

Opening rules are in local wall time; slots come out as UTC instants. Across
DST a 9:00 rule stays 9:00 local. A wall time that does not exist (the
spring-forward hour) yields no slot; a wall time that happens twice (the
fall-back hour) yields one slot, at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class WeeklyRule:
    weekday: int  # 0 = Monday
    start: time
    end: time
    slot_minutes: int
    capacity: int


@dataclass(frozen=True)
class DatedException:
    day: date
    kind: Literal["closed", "extra"]
    start: time | None = None  # None with end None: the whole day
    end: time | None = None
    slot_minutes: int | None = None
    capacity: int | None = None


@dataclass(frozen=True)
class SlotSpec:
    starts_at: datetime  # aware, UTC
    ends_at: datetime
    capacity: int


@dataclass(frozen=True)
class Session:
    """A span of bookable time on one day in wall time, cut into equal slots."""

    start: time
    end: time
    slot_minutes: int
    capacity: int


def wall_time_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall time, or None where that wall time never occurs."""
    local = datetime.combine(day, at, tzinfo=tz)  # fold=0: first occurrence
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return instant


def wall_times(session: Session, day: date) -> Iterator[time]:
    """Start times of a session's slots; the last one ends by the session end."""
    step = timedelta(minutes=session.slot_minutes)
    cursor = datetime.combine(day, session.start)
    end = datetime.combine(day, session.end)
    while cursor + step <= end:
        yield cursor.time()
        cursor += step


def sessions_for_day(
    day: date,
    rules: Iterable[WeeklyRule],
    exceptions: Iterable[DatedException],
    holiday_dates: frozenset[date] = frozenset(),
) -> tuple[list[Session], list[tuple[time, time]]]:
    """The day's sessions and its closed hours.

    Weekly rules apply unless the day is a holiday or closed all day; extra
    sessions apply even on holidays; closures (whole day or hours) win over both.
    """
    todays = [e for e in exceptions if e.day == day]
    closed_all_day = any(e.kind == "closed" and e.start is None for e in todays)
    closed_hours = [
        (e.start, e.end)
        for e in todays
        if e.kind == "closed" and e.start is not None and e.end is not None
    ]
    if closed_all_day:
        return [], [(time.min, time.max)]
    sessions: list[Session] = []
    if day not in holiday_dates:
        sessions += [
            Session(r.start, r.end, r.slot_minutes, r.capacity)
            for r in rules
            if r.weekday == day.weekday()
        ]
    sessions += [
        Session(e.start, e.end, e.slot_minutes, e.capacity)
        for e in todays
        if e.kind == "extra"
        and e.start is not None
        and e.end is not None
        and e.slot_minutes
        and e.capacity
    ]
    return sessions, closed_hours


def _overlaps_closure(start: time, end: time, closed: list[tuple[time, time]]) -> bool:
    return any(start < c_end and c_start < end for c_start, c_end in closed)


def slots_for_day(
    day: date,
    rules: Iterable[WeeklyRule],
    exceptions: Iterable[DatedException],
    tz: ZoneInfo,
    holiday_dates: frozenset[date] = frozenset(),
) -> list[SlotSpec]:
    """The slots of one local day, sorted, one per start instant.

    Where two sessions start a slot at the same instant the larger capacity wins.
    """
    sessions, closed = sessions_for_day(day, rules, exceptions, holiday_dates)
    by_start: dict[datetime, SlotSpec] = {}
    for session in sessions:
        length = timedelta(minutes=session.slot_minutes)
        for start in wall_times(session, day):
            end_wall = (datetime.combine(day, start) + length).time()
            if _overlaps_closure(start, end_wall if end_wall > start else time.max, closed):
                continue
            instant = wall_time_to_utc(day, start, tz)
            if instant is None:
                continue
            spec = SlotSpec(instant, instant + length, session.capacity)
            current = by_start.get(instant)
            if current is None or current.capacity < spec.capacity:
                by_start[instant] = spec
    return [by_start[k] for k in sorted(by_start)]


def slots_between(
    first_day: date,
    last_day: date,
    rules: Iterable[WeeklyRule],
    exceptions: Iterable[DatedException],
    tz: ZoneInfo,
    holiday_dates: frozenset[date] = frozenset(),
) -> list[SlotSpec]:
    """Slots of every local day from first_day to last_day inclusive."""
    rules = list(rules)
    exceptions = list(exceptions)
    out: list[SlotSpec] = []
    day = first_day
    while day <= last_day:
        out += slots_for_day(day, rules, exceptions, tz, holiday_dates)
        day += timedelta(days=1)
    return out


def federal_holidays(first_day: date, last_day: date) -> frozenset[date]:
    """US federal holidays (with their observed days) between two dates."""
    years = range(first_day.year, last_day.year + 1)
    calendar = holidays.country_holidays("US", years=years)
    return frozenset(d for d in calendar if first_day <= d <= last_day)


@dataclass(frozen=True)
class BookingWindow:
    """The instants a patient may book between: not too soon, not too far ahead."""

    earliest: datetime
    latest: datetime

    def contains(self, instant: datetime) -> bool:
        return self.earliest <= instant <= self.latest


def booking_window(now: datetime, min_notice: timedelta, horizon: timedelta) -> BookingWindow:
    return BookingWindow(now + min_notice, now + horizon)


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants of a local day's start and the next day's start (23 or 25 h on DST days)."""
    start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    return start, end

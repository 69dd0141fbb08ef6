"""Slot arithmetic, exhaustively: no Flask, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.availability.slots import (
    DatedException,
    WeeklyRule,
    booking_window,
    federal_holidays,
    local_day_bounds,
    slots_between,
    slots_for_day,
    wall_time_to_utc,
)

pytestmark = pytest.mark.clock_sensitive  # DST days, holidays, the booking window

CHICAGO = ZoneInfo("America/Chicago")
MON_FRI_8_TO_5 = [WeeklyRule(d, time(8), time(17), 30, 2) for d in range(5)]
SPRING_FORWARD = date(2026, 3, 8)  # a Sunday: 2:00 -> 3:00
FALL_BACK = date(2026, 11, 1)  # a Sunday: 2:00 -> 1:00
ALL_NIGHT_SUNDAY = [WeeklyRule(6, time(0), time(5), 30, 1)]


def local_times(specs: list) -> list[str]:
    return [s.starts_at.astimezone(CHICAGO).strftime("%H:%M %Z") for s in specs]


def test_weekday_rule_gives_eighteen_half_hour_slots() -> None:
    specs = slots_for_day(date(2026, 12, 1), MON_FRI_8_TO_5, [], CHICAGO)
    assert len(specs) == 18
    assert local_times(specs)[0] == "08:00 CST"
    assert local_times(specs)[-1] == "16:30 CST"
    assert all(s.capacity == 2 for s in specs)
    assert all(s.ends_at - s.starts_at == timedelta(minutes=30) for s in specs)
    assert specs[0].starts_at == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_weekend_has_no_slots() -> None:
    assert slots_for_day(date(2026, 12, 5), MON_FRI_8_TO_5, [], CHICAGO) == []


@pytest.mark.parametrize(
    ("slot_minutes", "end", "expected"),
    [(30, time(17), 18), (45, time(17), 12), (60, time(16, 30), 8), (50, time(9), 1)],
)
def test_last_slot_ends_by_closing_time(slot_minutes: int, end: time, expected: int) -> None:
    rule = WeeklyRule(1, time(8), end, slot_minutes, 1)
    specs = slots_for_day(date(2026, 12, 1), [rule], [], CHICAGO)
    assert len(specs) == expected
    closing = datetime.combine(date(2026, 12, 1), end, tzinfo=CHICAGO)
    assert all(s.ends_at <= closing for s in specs)


def test_nine_stays_nine_across_dst() -> None:
    rules = [WeeklyRule(d, time(9), time(9, 30), 30, 1) for d in range(7)]
    before = slots_for_day(date(2026, 3, 6), rules, [], CHICAGO)[0]
    after = slots_for_day(date(2026, 3, 9), rules, [], CHICAGO)[0]
    assert before.starts_at.hour == 15  # 9:00 CST = 15:00 UTC
    assert after.starts_at.hour == 14  # 9:00 CDT = 14:00 UTC
    assert local_times([before, after]) == ["09:00 CST", "09:00 CDT"]


def test_spring_forward_has_no_slot_in_the_missing_hour() -> None:
    specs = slots_for_day(SPRING_FORWARD, ALL_NIGHT_SUNDAY, [], CHICAGO)
    assert local_times(specs) == [
        "00:00 CST",
        "00:30 CST",
        "01:00 CST",
        "01:30 CST",
        "03:00 CDT",
        "03:30 CDT",
        "04:00 CDT",
        "04:30 CDT",
    ]
    instants = [s.starts_at for s in specs]
    assert len(set(instants)) == len(instants)


def test_fall_back_does_not_double_the_repeated_hour() -> None:
    specs = slots_for_day(FALL_BACK, ALL_NIGHT_SUNDAY, [], CHICAGO)
    assert local_times(specs) == [
        "00:00 CDT",
        "00:30 CDT",
        "01:00 CDT",
        "01:30 CDT",
        "02:00 CST",
        "02:30 CST",
        "03:00 CST",
        "03:30 CST",
        "04:00 CST",
        "04:30 CST",
    ]
    # No two slots overlap in real time.
    for earlier, later in zip(specs, specs[1:], strict=False):
        assert earlier.ends_at <= later.starts_at


@pytest.mark.parametrize("day", [SPRING_FORWARD, FALL_BACK])
def test_office_hours_on_dst_sundays_are_unaffected(day: date) -> None:
    rules = [WeeklyRule(6, time(8), time(17), 30, 2)]
    specs = slots_for_day(day, rules, [], CHICAGO)
    assert len(specs) == 18
    assert local_times(specs)[0].startswith("08:00")


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        (SPRING_FORWARD, time(2, 0), None),
        (SPRING_FORWARD, time(2, 59), None),
        (SPRING_FORWARD, time(1, 59), datetime(2026, 3, 8, 7, 59, tzinfo=UTC)),
        (SPRING_FORWARD, time(3, 0), datetime(2026, 3, 8, 8, 0, tzinfo=UTC)),
        (FALL_BACK, time(1, 30), datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
        (FALL_BACK, time(2, 0), datetime(2026, 11, 1, 8, 0, tzinfo=UTC)),
    ],
)
def test_wall_time_to_utc(day: date, at: time, expected: datetime | None) -> None:
    assert wall_time_to_utc(day, at, CHICAGO) == expected


@pytest.mark.parametrize(
    ("day", "hours"), [(SPRING_FORWARD, 23), (FALL_BACK, 25), (date(2026, 12, 1), 24)]
)
def test_local_day_bounds_span_the_real_length_of_the_day(day: date, hours: int) -> None:
    start, end = local_day_bounds(day, CHICAGO)
    assert end - start == timedelta(hours=hours)


def test_whole_day_closure_removes_every_slot() -> None:
    closed = [DatedException(date(2026, 12, 1), "closed")]
    assert slots_for_day(date(2026, 12, 1), MON_FRI_8_TO_5, closed, CHICAGO) == []
    # Only that day.
    assert len(slots_for_day(date(2026, 12, 2), MON_FRI_8_TO_5, closed, CHICAGO)) == 18


def test_closed_hours_remove_overlapping_slots_only() -> None:
    lunch = [DatedException(date(2026, 12, 1), "closed", time(12), time(13, 15))]
    times = local_times(slots_for_day(date(2026, 12, 1), MON_FRI_8_TO_5, lunch, CHICAGO))
    assert "11:30 CST" in times
    assert "12:00 CST" not in times
    assert "12:30 CST" not in times
    assert "13:00 CST" not in times  # 13:00-13:30 overlaps the closure until 13:15
    assert "13:30 CST" in times
    assert len(times) == 15


def test_extra_session_on_a_saturday() -> None:
    extra = [DatedException(date(2026, 12, 5), "extra", time(9), time(12), 60, 3)]
    specs = slots_for_day(date(2026, 12, 5), MON_FRI_8_TO_5, extra, CHICAGO)
    assert local_times(specs) == ["09:00 CST", "10:00 CST", "11:00 CST"]
    assert {s.capacity for s in specs} == {3}


def test_holiday_closes_weekly_hours_but_not_an_extra_session() -> None:
    christmas = date(2026, 12, 25)
    holidays = frozenset({christmas})
    assert slots_for_day(christmas, MON_FRI_8_TO_5, [], CHICAGO, holidays) == []
    extra = [DatedException(christmas, "extra", time(9), time(10), 30, 1)]
    assert len(slots_for_day(christmas, MON_FRI_8_TO_5, extra, CHICAGO, holidays)) == 2


def test_closure_wins_over_an_extra_session() -> None:
    day = date(2026, 12, 1)
    exceptions = [
        DatedException(day, "extra", time(17), time(19), 30, 1),
        DatedException(day, "closed"),
    ]
    assert slots_for_day(day, MON_FRI_8_TO_5, exceptions, CHICAGO) == []


def test_overlapping_sessions_keep_one_slot_per_start_with_the_larger_capacity() -> None:
    rules = [WeeklyRule(1, time(8), time(10), 30, 1), WeeklyRule(1, time(9), time(11), 30, 3)]
    specs = slots_for_day(date(2026, 12, 1), rules, [], CHICAGO)
    assert local_times(specs) == [
        f"{h} CST" for h in ("08:00", "08:30", "09:00", "09:30", "10:00", "10:30")
    ]
    assert [s.capacity for s in specs] == [1, 1, 3, 3, 3, 3]


def test_slots_between_spans_days_inclusively() -> None:
    specs = slots_between(date(2026, 11, 30), date(2026, 12, 6), MON_FRI_8_TO_5, [], CHICAGO)
    assert len(specs) == 5 * 18
    assert specs == sorted(specs, key=lambda s: s.starts_at)


def test_federal_holidays_include_observed_days() -> None:
    days = federal_holidays(date(2026, 1, 1), date(2027, 12, 31))
    assert date(2026, 11, 26) in days  # Thanksgiving
    assert date(2026, 7, 3) in days  # July 4th observed on Friday
    assert date(2027, 12, 24) in days  # Christmas observed
    assert date(2026, 12, 24) not in days
    assert all(date(2026, 1, 1) <= d <= date(2027, 12, 31) for d in days)


def test_booking_window_edges() -> None:
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    window = booking_window(now, timedelta(hours=2), timedelta(days=90))
    assert not window.contains(now + timedelta(hours=1, minutes=59))
    assert window.contains(now + timedelta(hours=2))
    assert window.contains(now + timedelta(days=90))
    assert not window.contains(now + timedelta(days=90, seconds=1))
    assert not window.contains(now - timedelta(minutes=1))

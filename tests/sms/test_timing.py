"""Sending hours, cadence and backoff, including both DST days in Central time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from scheduler.sms.timing import (
    SendingHours,
    next_sending_moment,
    retry_delay,
    scheduled_due_time,
    sending_time,
)
from tests.factories import CHICAGO

pytestmark = pytest.mark.clock_sensitive  # explicit instants, DST nights included

HOURS = SendingHours(time(8), time(21))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=CHICAGO, fold=fold).astimezone(UTC)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (local(2026, 12, 1, 8, 0), local(2026, 12, 1, 8, 0)),  # opening minute is inside
        (local(2026, 12, 1, 20, 59), local(2026, 12, 1, 20, 59)),
        (local(2026, 12, 1, 21, 0), local(2026, 12, 2, 8, 0)),  # closing minute is outside
        (local(2026, 12, 1, 23, 30), local(2026, 12, 2, 8, 0)),
        (local(2026, 12, 2, 0, 15), local(2026, 12, 2, 8, 0)),
        (local(2026, 12, 2, 7, 59), local(2026, 12, 2, 8, 0)),
    ],
)
def test_next_sending_moment_waits_for_eight_central(instant: datetime, expected: datetime) -> None:
    assert next_sending_moment(instant, CHICAGO, HOURS) == expected


def test_spring_forward_night_waits_for_eight_cdt() -> None:
    # 2027-03-14: 2:00 CST jumps to 3:00 CDT. 1:59 CST and 3:00 CDT are one minute apart.
    before_jump = local(2027, 3, 14, 1, 59)
    after_jump = local(2027, 3, 14, 3, 0)
    assert after_jump - before_jump == timedelta(minutes=1)
    eight_cdt = utc(2027, 3, 14, 13, 0)
    assert next_sending_moment(before_jump, CHICAGO, HOURS) == eight_cdt
    assert next_sending_moment(after_jump, CHICAGO, HOURS) == eight_cdt
    # The evening before (CST) waits for the same morning, 11 hours away instead of 12.
    evening = local(2027, 3, 13, 21, 0)
    assert next_sending_moment(evening, CHICAGO, HOURS) - evening == timedelta(hours=10)


def test_fall_back_night_waits_for_eight_cst_from_both_one_thirties() -> None:
    # 2026-11-01 and 2027-11-07: 1:00-2:00 happens twice; 8:00 is CST (UTC-6).
    first = local(2027, 11, 7, 1, 30, fold=0)
    second = local(2027, 11, 7, 1, 30, fold=1)
    assert second - first == timedelta(hours=1)
    eight_cst = utc(2027, 11, 7, 14, 0)
    assert next_sending_moment(first, CHICAGO, HOURS) == eight_cst
    assert next_sending_moment(second, CHICAGO, HOURS) == eight_cst


def test_a_text_that_would_wait_past_the_visit_is_dropped() -> None:
    visit = local(2026, 12, 2, 7, 30)  # an early extra session
    assert sending_time(local(2026, 12, 1, 22, 0), CHICAGO, HOURS, send_before=visit) is None
    later_visit = local(2026, 12, 2, 9, 0)
    assert sending_time(
        local(2026, 12, 1, 22, 0), CHICAGO, HOURS, send_before=later_visit
    ) == local(2026, 12, 2, 8, 0)
    # Exactly at the visit is too late too.
    at_eight = local(2026, 12, 2, 8, 0)
    assert sending_time(local(2026, 12, 1, 22, 0), CHICAGO, HOURS, send_before=at_eight) is None


def test_cadence_counts_real_hours_across_spring_forward() -> None:
    visit = local(2027, 3, 15, 8, 0)  # Monday 8:00 CDT, 13:00 UTC
    booked = local(2027, 3, 1, 10, 0)
    reminder = scheduled_due_time(visit, 24, booked, send_if_late=False)
    assert reminder == local(2027, 3, 14, 8, 0)  # Sunday 8:00 CDT: 24 real hours
    instructions = scheduled_due_time(visit, 72, booked, send_if_late=True)
    assert instructions == local(2027, 3, 12, 7, 0)  # Friday 7:00 CST: before sending hours
    assert sending_time(instructions, CHICAGO, HOURS, visit) == local(2027, 3, 12, 8, 0)


def test_cadence_counts_real_hours_across_fall_back() -> None:
    visit = local(2027, 11, 8, 8, 0)  # Monday 8:00 CST, 14:00 UTC
    booked = local(2027, 11, 1, 10, 0)
    assert scheduled_due_time(visit, 24, booked, False) == local(2027, 11, 7, 8, 0)
    assert scheduled_due_time(visit, 72, booked, True) == local(2027, 11, 5, 9, 0)  # CDT


def test_late_bookings_get_instructions_at_once_and_no_reminder() -> None:
    visit = local(2026, 12, 3, 10, 0)
    booked = visit - timedelta(hours=20)
    assert scheduled_due_time(visit, 72, booked, send_if_late=True) == booked
    assert scheduled_due_time(visit, 24, booked, send_if_late=False) is None
    on_time = visit - timedelta(hours=24)
    assert scheduled_due_time(visit, 24, on_time, send_if_late=False) == on_time


def test_retry_delay_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(1800.0, 30.0 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = retry_delay(attempt, 30.0, 1800.0, rng).total_seconds()
            assert ceiling / 2 <= delay <= ceiling
    delays = {retry_delay(3, 30.0, 1800.0, rng) for _ in range(20)}
    assert len(delays) > 1  # jittered, so retries of many texts spread out

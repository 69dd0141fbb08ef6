from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from scheduler.availability.operations import (
    CLOSED,
    OUTSIDE_HOURS,
    SyncResult,
    open_slots,
    roll_slots_forward,
    sync_slots,
)
from scheduler.extensions import db
from scheduler.models import Appointment, Location, ScheduleException, Slot, utcnow
from tests.factories import (
    CHICAGO,
    add_weekly_hours,
    cancel,
    local_instant,
    make_appointment,
    make_location,
    make_slot,
)

pytestmark = pytest.mark.clock_sensitive  # dates, DST days and the booking window

WEEK = (date(2027, 1, 4), date(2027, 1, 10))  # Mon 4 .. Sun 10 January 2027


def close_day_and_sync(location: Location, day: date) -> SyncResult:
    db.session.add(ScheduleException(location=location, day=day, kind="closed"))
    db.session.commit()
    db.session.refresh(location)
    result = sync_slots(location, *WEEK)
    db.session.commit()
    return result


def slot_count(location_id: int) -> int:
    return db.session.scalar(select(func.count(Slot.id)).where(Slot.location_id == location_id))


def test_sync_creates_the_weeks_slots_once(app: Flask) -> None:
    location = make_location()
    add_weekly_hours(location)
    first = sync_slots(location, *WEEK)
    db.session.commit()
    assert first.created == 5 * 18
    again = sync_slots(location, *WEEK)
    db.session.commit()
    assert (again.created, again.removed, again.orphaned) == (0, 0, [])
    assert slot_count(location.id) == 90


def test_sync_skips_federal_holidays_unless_the_location_opens_on_them(app: Flask) -> None:
    closed = make_location()
    open_ = make_location(closed_on_federal_holidays=False)
    for location in (closed, open_):
        add_weekly_hours(location)
        sync_slots(location, date(2027, 1, 1), date(2027, 1, 1))  # New Year's Day, a Friday
    db.session.commit()
    assert slot_count(closed.id) == 0
    assert slot_count(open_.id) == 18


def test_closure_removes_free_slots_and_reports_booked_ones(app: Flask) -> None:
    location = make_location()
    add_weekly_hours(location)
    sync_slots(location, *WEEK)
    db.session.commit()
    booked = db.session.scalar(
        select(Slot).where(Slot.starts_at == local_instant(date(2027, 1, 5), time(9)))
    )
    booked.booked_count = 1
    result = close_day_and_sync(location, date(2027, 1, 5))
    assert result.removed == 17
    assert [s.id for s in result.orphaned] == [booked.id]
    assert slot_count(location.id) == 4 * 18 + 1


@pytest.mark.clock(datetime(2027, 4, 13, 23, 30, tzinfo=CHICAGO))  # already the 14th in UTC
def test_roll_forward_reaches_the_horizon(app: Flask) -> None:
    app.config["BOOKING_HORIZON_DAYS"] = 20
    location = make_location(closed_on_federal_holidays=False)
    add_weekly_hours(location, weekdays=range(7), start=time(9), end=time(10))
    roll_slots_forward()
    first, last = db.session.execute(
        select(func.min(Slot.starts_at), func.max(Slot.starts_at))
    ).one()
    assert first == local_instant(date(2027, 4, 13), time(9))  # today's, though past
    margin = app.config["SLOT_ROLL_MARGIN_DAYS"]
    assert last == local_instant(date(2027, 5, 3) + timedelta(days=margin), time(9, 30))
    assert roll_slots_forward()[location.slug].created == 0


@pytest.mark.clock
def test_open_slots_leave_out_full_blocked_too_soon_and_too_far(app: Flask) -> None:
    location = make_location()
    now = utcnow()
    ok = make_slot(location, starts_at=now + timedelta(days=2))
    make_slot(location, starts_at=now + timedelta(days=2, hours=1), is_blocked=True)
    full = make_slot(location, starts_at=now + timedelta(days=2, hours=2), capacity=1)
    make_appointment(full)
    make_slot(location, starts_at=now + timedelta(minutes=90))  # inside the 2-hour notice
    make_slot(location, starts_at=now - timedelta(hours=1))  # past
    make_slot(location, starts_at=now + timedelta(days=91))  # past the horizon
    found = open_slots(location, now - timedelta(days=1), now + timedelta(days=100))
    assert [s.id for s in found] == [ok.id]


def test_dst_sundays_in_the_database_have_no_missing_hour_slot_and_no_double(app: Flask) -> None:
    location = make_location(closed_on_federal_holidays=False)
    add_weekly_hours(location, weekdays=[6], start=time(0), end=time(5), capacity=1)
    for day, expected in ((date(2026, 3, 8), 8), (date(2026, 11, 1), 10)):
        assert sync_slots(location, day, day).created == expected
        db.session.commit()
        assert sync_slots(location, day, day).created == 0
    starts = db.session.scalars(select(Slot.starts_at).where(Slot.location_id == location.id)).all()
    assert len(starts) == len(set(starts)) == 18
    local = {s.astimezone(CHICAGO).strftime("%m-%d %H:%M") for s in starts}
    assert "03-08 02:00" not in local and "03-08 02:30" not in local
    assert "03-08 03:00" in local


@pytest.mark.clock(datetime(2027, 1, 1, 12, tzinfo=UTC))
def test_closing_a_day_keeps_slots_that_appointments_point_at_and_blocks_them(app: Flask) -> None:
    """A cancelled booking still points at its slot: the slot stays, blocked."""
    location = make_location()
    add_weekly_hours(location)
    sync_slots(location, *WEEK)
    db.session.commit()
    tuesday_nine = local_instant(date(2027, 1, 5), time(9))
    slot = db.session.scalar(select(Slot).where(Slot.starts_at == tuesday_nine))
    kept = make_appointment(slot)
    cancel(make_appointment(slot, first_name="Luz"))
    result = close_day_and_sync(location, date(2027, 1, 5))
    assert result.removed == 17
    assert [s.id for s in result.orphaned] == [slot.id]
    db.session.refresh(slot)
    assert slot.is_blocked and slot.blocked_by_schedule and slot.block_reason == CLOSED
    assert db.session.get(Appointment, kept.id).status == "booked"
    # Reopening the day unblocks it.
    db.session.execute(delete(ScheduleException))
    db.session.commit()
    db.session.refresh(location)
    sync_slots(location, *WEEK)
    db.session.commit()
    db.session.refresh(slot)
    assert not slot.is_blocked


@pytest.mark.clock
def test_rolling_forward_survives_cancelled_appointments_on_closed_days(app: Flask) -> None:
    location = make_location()
    add_weekly_hours(location, weekdays=range(7))
    roll_slots_forward()
    slot = db.session.scalar(
        select(Slot).where(Slot.starts_at > utcnow() + timedelta(days=3)).order_by(Slot.starts_at)
    )
    cancel(make_appointment(slot))
    day = slot.starts_at.astimezone(CHICAGO).date()
    db.session.add(ScheduleException(location=location, day=day, kind="closed"))
    db.session.commit()
    result = roll_slots_forward()[location.slug]
    assert result.removed > 0
    db.session.refresh(slot)
    assert slot.is_blocked
    assert open_slots(location, slot.starts_at, slot.ends_at) == []


@pytest.mark.clock(datetime(2027, 1, 1, 12, tzinfo=UTC))  # before WEEK: its slots are bookable
def test_kept_slots_say_the_closures_reason_or_that_the_hours_changed(app: Flask) -> None:
    """Staff read why a kept slot is blocked: the reason they typed for the closure."""
    location = make_location()
    add_weekly_hours(location)
    sync_slots(location, *WEEK)
    db.session.commit()
    tuesday = date(2027, 1, 5)
    at_two = db.session.scalar(
        select(Slot).where(Slot.starts_at == local_instant(tuesday, time(14)))
    )
    at_nine = db.session.scalar(
        select(Slot).where(Slot.starts_at == local_instant(tuesday, time(9)))
    )
    make_appointment(at_two)
    make_appointment(at_nine)
    db.session.add(
        ScheduleException(
            location=location,
            day=tuesday,
            kind="closed",
            start_time=time(13),
            end_time=time(17),
            reason="Doctor at conference",
        )
    )
    db.session.commit()
    db.session.refresh(location)
    sync_slots(location, *WEEK)
    db.session.commit()
    db.session.refresh(at_two)
    assert at_two.is_blocked and at_two.block_reason == "Doctor at conference"
    # The morning loses its hours: that slot says so.
    location.opening_rules[1].start_time = time(10)
    db.session.commit()
    sync_slots(location, *WEEK)
    db.session.commit()
    db.session.refresh(at_nine)
    assert at_nine.is_blocked and at_nine.blocked_by_schedule
    assert at_nine.block_reason == OUTSIDE_HOURS
    # A person's block is not the schedule's: the hours coming back leave it alone.
    at_nine.block_reason, at_nine.blocked_by_schedule = "Broken chair", False
    location.opening_rules[1].start_time = time(8)
    db.session.commit()
    sync_slots(location, *WEEK)
    db.session.commit()
    db.session.refresh(at_nine)
    assert at_nine.is_blocked and at_nine.block_reason == "Broken chair"

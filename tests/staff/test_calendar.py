"""Calendar views: what they show, and that the week of all three takes a handful of queries."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from scheduler.availability.operations import location_tz, roll_slots_forward
from scheduler.extensions import db
from scheduler.models import Slot
from tests.factories import (
    cancel,
    days_from_today,
    local_instant,
    make_appointment,
    make_slot,
    seeded_clinic,
)


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __enter__(self) -> StatementCounter:
        event.listen(db.engine, "before_cursor_execute", self.count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(db.engine, "before_cursor_execute", self.count)

    def count(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.statements.append(statement)


def week_page(client: FlaskClient, monday: date) -> tuple[int, list[str]]:
    with StatementCounter() as counter:
        response = client.get(f"/staff/calendar?view=week&date={monday.isoformat()}")
    return response.status_code, counter.statements


@pytest.mark.clock  # which weeks, and their holidays
def test_week_of_all_three_locations_takes_a_handful_of_queries(
    app: Flask, staff_client: FlaskClient
) -> None:
    seeded_clinic()
    roll_slots_forward()
    next_monday = days_from_today(7) - timedelta(days=days_from_today(7).weekday())
    status, empty_week = week_page(staff_client, next_monday)
    assert status == 200
    # Fill the following week: 60 appointments spread over all three locations.
    start = datetime_at(next_monday + timedelta(days=7))
    slots = db.session.scalars(
        select(Slot)
        .where(Slot.starts_at >= start, Slot.starts_at < start + timedelta(days=5))
        .order_by(Slot.starts_at)
    ).all()
    assert len(slots) > 200  # three locations, five days
    for slot in slots[::4][:60]:
        make_appointment(slot)
    status, busy_week = week_page(staff_client, next_monday + timedelta(days=7))
    assert status == 200
    assert len(busy_week) <= 8, busy_week
    assert len(busy_week) == len(empty_week)  # no query per slot or per appointment


def datetime_at(day: date) -> datetime:
    return local_instant(day, time(0))


def test_day_view_shows_capacity_people_and_statuses(app: Flask, staff_client: FlaskClient) -> None:
    location = seeded_clinic()[1]
    slot = make_slot(location, days_ahead=2, capacity=2)
    kept = make_appointment(slot, first_name="Rosa", last_name="Trevino")
    gone = make_appointment(slot, first_name="Luz", last_name="Ibarra")
    cancel(gone)
    day = slot.starts_at.astimezone(location_tz(location)).date()
    html = staff_client.get(
        f"/staff/calendar?date={day.isoformat()}&location={location.slug}"
    ).get_data(as_text=True)
    assert "Rosa Trevino" in html and "Luz Ibarra" in html
    assert ">1 free<" in html  # of two places
    assert "status-cancelled" in html and "status-booked" in html
    assert f"appointment={kept.id}#panel" in html
    assert f"slot={slot.id}#panel" in html
    panel = staff_client.get(
        f"/staff/calendar?date={day.isoformat()}&location={location.slug}&slot={slot.id}"
    ).get_data(as_text=True)
    assert f"/staff/book/{slot.id}" in panel


@pytest.mark.clock
def test_today_is_marked_and_dates_navigate(app: Flask, staff_client: FlaskClient) -> None:
    seeded_clinic()
    html = staff_client.get("/staff/").get_data(as_text=True)
    assert "today</span>" in html
    assert "Previous day" in html and "Next day" in html
    assert staff_client.get("/staff/calendar?date=2026-13-01").status_code == 400
    assert staff_client.get("/staff/calendar?view=month").status_code == 400
    assert staff_client.get("/staff/calendar?location=nowhere").status_code == 404

"""Hours, closures and blocks: a change that would strand booked patients lists them first."""

from __future__ import annotations

import re
from datetime import time, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.availability.operations import location_tz, roll_slots_forward
from scheduler.extensions import db
from scheduler.models import AuditEntry, Location, OpeningRule, ScheduleException, Slot
from tests.factories import days_from_today, make_appointment, seeded_clinic
from tests.staff.conftest import post


def boerne() -> Location:
    db.session.remove()
    return db.session.scalar(select(Location).where(Location.slug == "boerne"))


def slot_at(location: Location, days_ahead: int, at: time) -> Slot:
    """The seeded slot of a weekday ``days_ahead`` or later at ``at``, local time."""
    tz = location_tz(location)
    slots = db.session.scalars(
        select(Slot).where(Slot.location_id == location.id).order_by(Slot.starts_at)
    ).all()
    first_day = days_from_today(days_ahead)
    for slot in slots:  # the first open day from then (weekends and holidays have none)
        local = slot.starts_at.astimezone(tz)
        if local.date() >= first_day and local.time() == at:
            return slot
    raise AssertionError(f"no slot from {first_day} at {at}")


def test_shortening_hours_lists_the_booked_patients_before_saving(
    app: Flask, staff_client: FlaskClient
) -> None:
    seeded_clinic()
    roll_slots_forward()
    location = boerne()
    afternoon = slot_at(location, 3, time(15, 0))
    appt = make_appointment(afternoon, first_name="Elena", last_name="Salinas")
    weekday = afternoon.starts_at.astimezone(location_tz(location)).weekday()
    rule = next(r for r in location.opening_rules if r.weekday == weekday)
    shorter = {
        "weekday": str(weekday),
        "start_time": "08:00",
        "end_time": "12:00",
        "slot_minutes": "30",
        "capacity": "2",
    }
    response = post(staff_client, f"/staff/locations/boerne/rules/{rule.id}", shorter)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "1 booked appointment would fall outside the new hours" in html
    assert "Elena Salinas" in html and appt.reference in html
    assert boerne().opening_rules[0].end_time == time(17, 0)  # nothing saved
    assert (
        db.session.scalar(select(AuditEntry.id).where(AuditEntry.target_type == "location")) is None
    )

    [listed] = re.findall(r'name="keep_ids" value="([^"]*)"', html)
    assert listed == str(appt.id)
    # Keeping only what was listed: a booking made since would be listed again.
    kept = post(
        staff_client,
        f"/staff/locations/boerne/rules/{rule.id}",
        {**shorter, "keep_ids": listed},
    )
    assert kept.status_code == 302
    db.session.remove()
    saved = db.session.get(OpeningRule, rule.id)
    assert saved.end_time == time(12, 0)
    kept_slot = db.session.get(Slot, afternoon.id)
    assert kept_slot.is_blocked and kept_slot.booked_count == 1  # kept, closed to new bookings
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "availability.rule_saved")
    )
    assert entry.details["kept_appointments"] == [appt.reference]
    assert entry.details["after"]["end_time"] == "12:00:00"


def test_closing_a_day_with_bookings_lists_them_and_a_free_day_just_closes(
    app: Flask, staff_client: FlaskClient
) -> None:
    seeded_clinic()
    roll_slots_forward()
    location = boerne()
    booked_slot = slot_at(location, 4, time(9, 0))
    appt = make_appointment(booked_slot)
    booked_day = booked_slot.starts_at.astimezone(location_tz(location)).date()
    refused = post(
        staff_client,
        "/staff/locations/boerne/exceptions",
        {"day": booked_day.isoformat(), "kind": "closed", "reason": "Staff training"},
    )
    assert refused.status_code == 409
    assert appt.reference in refused.get_data(as_text=True)
    assert db.session.scalar(select(ScheduleException.id)) is None
    free_day = booked_day + timedelta(days=7)
    done = post(
        staff_client,
        "/staff/locations/boerne/exceptions",
        {"day": free_day.isoformat(), "kind": "closed", "start_time": "12:00", "end_time": "17:00"},
    )
    assert done.status_code == 302
    tz = location_tz(location)
    afternoon = [
        s
        for s in db.session.scalars(select(Slot).where(Slot.location_id == location.id))
        if s.starts_at.astimezone(tz).date() == free_day and s.starts_at.astimezone(tz).hour >= 12
    ]
    assert afternoon == []  # never-booked slots are removed


def test_an_extra_session_adds_slots(app: Flask, staff_client: FlaskClient) -> None:
    seeded_clinic()
    roll_slots_forward()
    saturday = days_from_today(10)
    while saturday.weekday() != 5:
        saturday += timedelta(days=1)
    response = post(
        staff_client,
        "/staff/locations/boerne/exceptions",
        {
            "day": saturday.isoformat(),
            "kind": "extra",
            "start_time": "09:00",
            "end_time": "11:00",
            "slot_minutes": "30",
            "capacity": "1",
        },
    )
    assert response.status_code == 302
    location = boerne()
    tz = location_tz(location)
    added = [
        s
        for s in db.session.scalars(select(Slot).where(Slot.location_id == location.id))
        if s.starts_at.astimezone(tz).date() == saturday
    ]
    assert len(added) == 4 and {s.capacity for s in added} == {1}
    bad = post(
        staff_client,
        "/staff/locations/boerne/exceptions",
        {"day": saturday.isoformat(), "kind": "extra"},
    )
    assert bad.status_code == 422
    assert "needs its hours" in bad.get_data(as_text=True)


def test_blocking_a_slot_hides_it_from_patients_and_is_audited(
    app: Flask, staff_client: FlaskClient
) -> None:
    seeded_clinic()
    roll_slots_forward()
    slot = slot_at(boerne(), 3, time(10, 0))
    post(staff_client, f"/staff/slots/{slot.id}/block", {"reason": "Doctor at hospital"})
    db.session.refresh(slot)
    assert slot.is_blocked and slot.block_reason == "Doctor at hospital"
    api = app.test_client().get(f"/api/v1/locations/boerne/slots?from={days_from_today(0)}")
    assert slot.id not in [s["id"] for s in api.get_json()["slots"]]
    post(staff_client, f"/staff/slots/{slot.id}/unblock")
    db.session.refresh(slot)
    assert not slot.is_blocked
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.target_type == "slot").order_by(AuditEntry.id)
    ).all()
    assert actions == ["slot.block", "slot.unblock"]


def test_bad_hours_are_refused_with_a_message(app: Flask, staff_client: FlaskClient) -> None:
    seeded_clinic()
    response = post(
        staff_client,
        "/staff/locations/boerne/rules",
        {
            "weekday": "5",
            "start_time": "12:00",
            "end_time": "09:00",
            "slot_minutes": "0",
            "capacity": "2",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Closing time must be after opening time." in html
    assert len(boerne().opening_rules) == 5

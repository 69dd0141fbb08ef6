"""A scheduler on a tablet: signs in, opens the week, books a caller, marks a patient arrived."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from scheduler.availability.operations import roll_slots_forward
from scheduler.extensions import db
from scheduler.models import Appointment
from tests.e2e.test_booking_in_browser import shot
from tests.factories import (
    book,
    booking_request,
    days_from_today,
    local_instant,
    make_slot,
    seeded_clinic,
)
from tests.staff.conftest import PASSWORD, make_staff

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config() -> dict:
    return {"WTF_CSRF_ENABLED": True}


@pytest.mark.clock  # today, this week and next; see test_booking_in_browser
def test_scheduler_books_a_caller_and_marks_a_patient_arrived(
    app: Flask, live_server: str, tablet_page: Any
) -> None:
    locations = seeded_clinic()
    roll_slots_forward()
    today_slot = make_slot(locations[1], starts_at=local_instant(days_from_today(0), time(19)))
    waiting = book(
        booking_request(today_slot, first_name="Rosa", last_name="Treviño"),
        now=today_slot.starts_at - timedelta(days=1),
    )
    user = make_staff("front@freedomspine.com")
    page = tablet_page

    page.goto(live_server + "/staff/")
    page.wait_for_url(re.compile(r"/staff/login"))
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/staff/$"))
    shot(page, "staff-1-today")
    assert page.get_by_text("Rosa Treviño").is_visible()

    page.get_by_role("link", name=re.compile(r"^Rosa Treviño booked")).click()
    page.get_by_role("button", name="Mark Rosa Treviño arrived").click()
    page.wait_for_load_state()
    assert "Rosa Treviño is marked arrived." in page.locator("main").inner_text()

    page.get_by_role("link", name="Week", exact=True).first.click()
    page.wait_for_url(re.compile(r"view=week"))
    page.get_by_role("link", name=re.compile("Next week")).click()
    page.wait_for_url(re.compile(r"view=week&date="))
    shot(page, "staff-2-week")
    assert page.locator("table.week-board th[scope=colgroup]").count() == 3
    page.get_by_role("link", name="0/2 booked, Kerrville, Tuesday").first.click()
    page.wait_for_url(re.compile(r"view=day&date=.*location=kerrville"))
    page.locator("#board a.place.free").first.click()
    page.get_by_role("link", name="Book a caller here").click()
    page.wait_for_url(re.compile(r"/staff/book/\d+"))
    page.get_by_label("First name").fill("Jesús")
    page.get_by_label("Last name").fill("Garza")
    page.get_by_label("Mobile phone").fill("830 257 4811")
    page.get_by_label("Month").fill("3")
    page.get_by_label("Day").fill("9")
    page.get_by_label("Year").fill("1951")
    page.get_by_label("Español").check()
    page.locator("#sms_consent").check()
    page.get_by_role("button", name="Book", exact=True).click()
    page.wait_for_url(re.compile(r"^http://[^/]+/staff/calendar\?view=day"))
    shot(page, "staff-3-booked")
    body = page.locator("main").inner_text()
    assert "Booked Jesús Garza: reference" in body

    db.session.remove()
    booked = db.session.scalar(select(Appointment).where(Appointment.source == "staff"))
    assert booked is not None and booked.patient.language == "es"
    assert db.session.get(Appointment, waiting.id).status == "arrived"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820  # usable on a tablet: nothing overflows sideways

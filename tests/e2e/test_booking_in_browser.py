"""A patient books a consultation on a phone-sized screen, in a real browser."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from scheduler.availability.operations import roll_slots_forward
from scheduler.extensions import db
from scheduler.models import Appointment
from tests.factories import seeded_clinic

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


def shot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


@pytest.fixture
def app_config() -> dict:
    return {"WTF_CSRF_ENABLED": True}


# The server (a thread here) follows the test's clock; Chromium keeps the real one, and
# nothing on these pages reads it: times are the server's, cookies carry the server's Date.
@pytest.mark.clock
def test_patient_books_on_a_phone_and_reaches_the_confirmation(
    app: Flask, live_server: str, phone_page: Any
) -> None:
    seeded_clinic()
    roll_slots_forward()
    page = phone_page
    page.goto(live_server + "/")
    shot(page, "1-home")
    page.get_by_role("link", name="Book in Kerrville").click()
    page.wait_for_url(re.compile(r"/book/kerrville$"))
    shot(page, "2-slots")
    page.locator("a.slot").first.click()
    page.wait_for_url(re.compile(r"/book/kerrville/\d+$"))

    # First a mistake: the page says what is wrong and keeps what was typed.
    page.get_by_label("First name").fill("José")
    page.get_by_label("Last name").fill("O'Brien")
    page.get_by_label("Mobile phone").fill("555")
    page.get_by_label("Date of birth").fill("1956-04-02")
    page.get_by_role("button", name="Book this consultation").click()
    assert page.locator("#phone-error").is_visible()
    assert page.get_by_label("First name").input_value() == "José"
    shot(page, "3-error")

    page.get_by_label("Mobile phone").fill("(830) 257-4811")
    page.get_by_label("Español (Spanish)").check()
    page.get_by_label("Not sure").check()
    consent = page.locator("#sms_consent")
    assert not consent.is_checked()
    consent.check()
    page.get_by_role("button", name="Book this consultation").click()

    page.wait_for_url(re.compile(r"/manage/[A-Z]{3}-[A-Z0-9]{4}/"))
    shot(page, "4-confirmation")
    appt = db.session.scalar(select(Appointment))
    assert appt is not None
    body = page.locator("main").inner_text()
    assert "booked, José" in body
    assert appt.reference in body
    assert "(210) 920-8945" in body
    assert "Por favor llegue 15 minutos antes" in body
    assert re.search(r"\d{1,2}:\d\d [AP]M C[SD]T", body)
    assert page.get_by_role("link", name="Add to calendar (.ics)").is_visible()
    # Nothing overflows the phone's width.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390

"""A patient books a consultation on a phone-sized screen, in a real browser."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from scheduler.availability.operations import roll_slots_forward
from scheduler.extensions import db
from scheduler.models import Appointment
from tests.booking.conftest import MONDAY_AFTERNOON
from tests.e2e.conftest import PHONE
from tests.factories import seeded_clinic

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


def shot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


@pytest.fixture
def app_config() -> dict:
    return {"WTF_CSRF_ENABLED": True}


@pytest.fixture
def clinic(app: Flask) -> Iterator[None]:
    with time_machine.travel(MONDAY_AFTERNOON, tick=False):
        seeded_clinic()
        roll_slots_forward()
        yield


def test_patient_books_on_a_phone_and_reaches_the_confirmation(
    clinic: None, live_server: str, phone_page: Any
) -> None:
    page = phone_page
    page.goto(live_server + "/?lang=en")
    shot(page, "1-home")
    page.get_by_role("link", name="Book in Kerrville").click()
    page.wait_for_url(re.compile(r"/book/kerrville$"))
    shot(page, "2-slots")
    page.get_by_role("link", name=re.compile(r"^Wednesday, April 15")).click()
    assert page.evaluate("location.hash") == "#day-2026-04-15"
    page.locator("#day-2026-04-15 a.slot").first.click()
    page.wait_for_url(re.compile(r"/book/kerrville/\d+$"))

    # First a mistake: the page says what is wrong and keeps what was typed.
    page.get_by_label("First name").fill("José")
    page.get_by_label("Last name").fill("O'Brien")
    page.get_by_label("Mobile phone").fill("555")
    page.get_by_label("Month").fill("4")
    page.get_by_label("Day").fill("2")
    page.get_by_label("Year").fill("1956")
    page.get_by_role("button", name="Book this consultation").click()
    assert page.locator("#phone-error").is_visible()
    assert page.get_by_label("First name").input_value() == "José"
    shot(page, "3-error")

    page.get_by_label("Mobile phone").fill("(830) 257-4811")
    page.get_by_label("Español").check()
    page.get_by_label("Not sure").check()
    consent = page.locator("#sms_consent")
    assert not consent.is_checked()
    consent.check()
    page.get_by_role("button", name="Book this consultation").click()

    page.wait_for_url(re.compile(r"/manage/[A-Z]{3}-[A-Z0-9]{4}/"))
    shot(page, "4-confirmation")
    appt = db.session.scalar(select(Appointment))
    assert appt is not None and appt.patient.language == "es"
    body = page.locator("main").inner_text()
    assert "booked, José" in body
    assert appt.reference in body
    assert "(210) 920-8945" in body
    assert "Please arrive 15 minutes early" in body  # the page's language: English
    assert "Wednesday, April 15, 2026" in body and re.search(r"\d{1,2}:\d\d [AP]M CDT", body)
    assert "Your confirmation text is on its way." in body
    assert page.get_by_role("link", name="Add to calendar (.ics)").is_visible()
    # Nothing overflows the phone's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def focused(page: Any, selector: str) -> bool:
    return page.evaluate("(s) => document.activeElement.matches(s)", selector)


def tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the focus is on ``selector`` (the way a keyboard user moves)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(page, selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_a_spanish_speaker_books_with_the_keyboard_alone_on_a_phone(
    clinic: None, live_server: str, browser: Any
) -> None:
    context = browser.new_context(**PHONE, locale="es-MX")  # Accept-Language: es-MX
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/")
    assert page.locator("html").get_attribute("lang") == "es"

    tab_to(page, "a[href='/book/kerrville']")
    assert page.locator(":focus").inner_text() == "Hacer cita en Kerrville"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/book/kerrville$"))
    # Jump to a day, then back up one time with Shift+Tab.
    tab_to(page, "a[href='#day-2026-04-15']")
    page.keyboard.press("Enter")
    tab_to(page, "#day-2026-04-15 li:nth-child(2) a.slot")
    page.keyboard.press("Shift+Tab")
    assert focused(page, "#day-2026-04-15 li:first-child a.slot")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/book/kerrville/\d+$"))

    tab_to(page, "#first_name")
    page.keyboard.type("José")
    page.keyboard.press("Tab")
    page.keyboard.type("Núñez")
    page.keyboard.press("Shift+Tab")
    assert focused(page, "#first_name")
    tab_to(page, "#phone")
    page.keyboard.type("555")
    tab_to(page, "#sms_consent")
    page.keyboard.press("Space")
    tab_to(page, "#date_of_birth-month")
    page.keyboard.type("abril")
    page.keyboard.press("Tab")
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    page.keyboard.type("1956")
    tab_to(page, "input[name=language]")
    assert focused(page, "#language-1:checked")  # Español, the page's language
    tab_to(page, "input[name=conservative_treatment_8_weeks]")
    page.keyboard.press("Space")
    tab_to(page, "button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")

    # The mistake: focus is on the list of problems; its link leads to the phone box.
    assert focused(page, "#error-summary")
    assert "Escriba un número de celular válido" in page.locator("#error-summary").inner_text()
    tab_to(page, "#error-summary a[href='#phone']")
    page.keyboard.press("Enter")
    assert focused(page, "#phone")
    page.keyboard.press("End")
    for _ in range(3):
        page.keyboard.press("Backspace")
    page.keyboard.type("(830) 257-4811")
    assert page.locator("#sms_consent").is_checked()  # kept from the first try
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/manage/[A-Z]{3}-[A-Z0-9]{4}/"))
    body = page.locator("main").inner_text()
    assert "Ya tiene su cita, José" in body
    assert "miércoles, 15 de abril de 2026" in body and "a.m. CDT" in body
    assert "Su mensaje de confirmación ya va en camino." in body
    appt = db.session.scalar(select(Appointment))
    assert (appt.patient.first_name, appt.patient.language) == ("José", "es")
    assert appt.patient.sms_consent and appt.conservative_treatment == "yes"
    context.close()

"""A patient joins the waitlist in Spanish on a phone, gets the offer by text through the
suite's Twilio-compatible server, opens the link and takes the place."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from scheduler.availability.operations import roll_slots_forward
from scheduler.extensions import db
from scheduler.models import Appointment, Location, Slot, WaitlistEntry
from scheduler.sms.dispatch import Dispatcher
from tests.booking.conftest import MONDAY_AFTERNOON
from tests.e2e.a11y import axe_violations, small_targets
from tests.e2e.conftest import PHONE
from tests.factories import book, booking_request, cancel, seeded_clinic
from tests.sms.conftest import twilio_settings
from tests.twilio_server import FakeTwilio

pytestmark = pytest.mark.browser


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def app_config(twilio: FakeTwilio) -> dict:
    return {"WTF_CSRF_ENABLED": True, **twilio_settings(twilio, SMS_STATUS_CALLBACKS=False)}


@pytest.fixture
def clinic(app: Flask) -> Iterator[None]:
    with time_machine.travel(MONDAY_AFTERNOON, tick=False):
        seeded_clinic()
        roll_slots_forward()
        yield


def no_problems(page: Any) -> list[str]:
    return axe_violations(page) + [f"small target {t}" for t in small_targets(page)]


def test_join_in_spanish_on_a_phone_get_the_text_and_take_the_place(
    clinic: None, app: Flask, live_server: str, browser: Any, twilio: FakeTwilio
) -> None:
    kerrville = db.session.scalar(select(Location).where(Location.slug == "kerrville"))
    # Thursday's first time is booked; its patient will cancel.
    slots = db.session.scalars(
        select(Slot).where(Slot.location_id == kerrville.id).order_by(Slot.starts_at)
    ).all()
    wanted = next(s for s in slots if s.starts_at.date().isoformat() == "2026-04-16")
    for _ in range(wanted.capacity):
        held = book(booking_request(wanted))

    context = browser.new_context(**PHONE, locale="es-MX")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/book/kerrville")
    assert page.locator("html").get_attribute("lang") == "es"
    page.get_by_role("link", name="Anotarme en la lista de espera").click()
    page.wait_for_url(re.compile(r"/book/kerrville/waitlist$"))
    assert no_problems(page) == []

    # A mistake first: the dates the wrong way round.
    page.get_by_label("Desde (primera fecha en que puede venir)").fill("2026-04-20")
    page.get_by_label("Hasta (última fecha en que puede venir)").fill("2026-04-14")
    page.get_by_label("Nombre", exact=True).fill("Rosa")
    page.get_by_label("Apellido").fill("Ibarra")
    page.get_by_label("Número de celular").fill("(830) 257-4890")
    page.locator("#sms_consent").check()
    page.get_by_label("Mes", exact=True).fill("3")
    page.get_by_label("Día", exact=True).fill("9")
    page.get_by_label("Año", exact=True).fill("1958")
    page.get_by_label("Español").check()
    page.get_by_role("button", name="Anotarme en la lista de espera").click()
    assert page.locator("#error-summary").is_visible()
    assert "La última fecha debe ser igual o posterior a la primera." in page.inner_text("main")
    assert no_problems(page) == []

    page.get_by_label("Desde (primera fecha en que puede venir)").fill("2026-04-14")
    page.get_by_label("Hasta (última fecha en que puede venir)").fill("2026-04-30")
    page.get_by_role("button", name="Anotarme en la lista de espera").click()
    page.wait_for_url(re.compile(r"/waitlist/WKRV-[A-Z0-9]{4}/"))
    assert "Está en la lista de espera, Rosa" in page.inner_text("main")
    assert no_problems(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    entry = db.session.scalar(select(WaitlistEntry))
    assert entry is not None and entry.language == "es"

    # The booked patient cancels: the place is offered, and the text goes out.
    cancel(db.session.get(Appointment, held.id))
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due()
    offers = [r for r in twilio.requests if r.to == "+18302574890"]
    assert len(offers) == 1 and offers[0].accepted
    text = offers[0].body or ""
    assert "Rosa" in text and "Kerrville" in text and "Responda STOP" in text
    link = re.search(r"https://\S+/offer/\S+", text)
    assert link, text
    path = urlsplit(link.group(0).rstrip(")")).path

    page.goto(live_server + path)
    assert "Una hora más pronto para usted" in page.inner_text("main")
    assert no_problems(page) == []
    page.get_by_role("button", name="Tomar esta hora").click()
    page.wait_for_url(re.compile(r"/manage/KRV-[A-Z0-9]{4}/"))
    assert "La hora es suya" in page.inner_text("main")
    db.session.expire_all()
    holders = db.session.scalars(
        select(Appointment).where(Appointment.slot_id == wanted.id, Appointment.status == "booked")
    ).all()
    assert "Rosa" in {a.patient.first_name for a in holders}
    assert db.session.get(Slot, wanted.id).booked_count == wanted.capacity
    context.close()

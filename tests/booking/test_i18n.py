"""Spanish throughout: how the page's language is chosen, the catalog, and Spanish pages."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Any

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy.exc import OperationalError

from scheduler.appointments.links import manage_token
from scheduler.extensions import db
from scheduler.models import Appointment
from tests.booking.conftest import booking_form, post_booking, slot_at
from tests.conftest import hidden_fields
from tests.factories import make_appointment, make_location, make_slot, seeded_clinic
from tests.test_translations import english_found, english_phrases

pytestmark = pytest.mark.usefixtures("fresh_requests", "afternoon")


def html_lang(html: str) -> str:
    return re.search(r'<html lang="([^"]+)"', html).group(1)


def manage_path(appt: Appointment) -> str:
    return f"/manage/{appt.reference}/{manage_token(appt)}"


# --- which language --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("es", "es"),
        ("es-MX,es;q=0.9", "es"),
        ("es-US", "es"),
        ("en-US,en;q=0.9,es;q=0.8", "en"),
        ("fr-FR", "en"),
        (None, "en"),
    ],
)
def test_accept_language_chooses_the_page_language(
    client: FlaskClient, accept: str | None, expected: str
) -> None:
    headers = {"Accept-Language": accept} if accept else {}
    html = client.get("/", headers=headers).get_data(as_text=True)
    assert html_lang(html) == expected
    assert ("Haga una cita de consulta de columna" in html) == (expected == "es")


def test_lang_parameter_wins_and_is_remembered_in_a_cookie(client: FlaskClient) -> None:
    english_browser = {"Accept-Language": "en-US"}
    first = client.get("/?lang=es", headers=english_browser)
    assert html_lang(first.get_data(as_text=True)) == "es"
    cookie = first.headers["Set-Cookie"]
    assert cookie.startswith("lang=es;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # Remembered: the next page without ?lang is Spanish too, whatever the browser says.
    assert html_lang(client.get("/privacy", headers=english_browser).get_data(as_text=True)) == "es"
    # And switched back.
    back = client.get("/?lang=en", headers={"Accept-Language": "es-MX"})
    assert html_lang(back.get_data(as_text=True)) == "en"
    assert (
        html_lang(client.get("/", headers={"Accept-Language": "es"}).get_data(as_text=True)) == "en"
    )
    # An unknown language is ignored.
    assert not client.get("/?lang=de").headers.getlist("Set-Cookie")


def test_manage_pages_speak_the_patients_language_unless_they_switched(
    client: FlaskClient,
) -> None:
    appt = make_appointment(make_slot(starts_at=slot_at(3)), language="es")
    english_browser = {"Accept-Language": "en-US"}
    page = client.get(manage_path(appt), headers=english_browser).get_data(as_text=True)
    assert html_lang(page) == "es"
    assert "Su cita" in page and "Por favor llegue 15 minutos antes" in page
    calendar = client.get(manage_path(appt) + "/appointment.ics", headers=english_browser)
    assert "Consulta en" in calendar.get_data(as_text=True)
    # The patient chose English with the switch: the cookie wins over the stored language.
    switched = client.get(manage_path(appt) + "?lang=en").get_data(as_text=True)
    assert html_lang(switched) == "en" and "Please arrive 15 minutes early" in switched
    assert html_lang(client.get(manage_path(appt)).get_data(as_text=True)) == "en"


def test_an_english_patients_manage_page_beats_a_spanish_browser(client: FlaskClient) -> None:
    appt = make_appointment(make_slot(starts_at=slot_at(3)), language="en")
    html = client.get(manage_path(appt), headers={"Accept-Language": "es-MX"}).get_data(
        as_text=True
    )
    assert html_lang(html) == "en"


def test_staff_pages_and_the_api_stay_english(client: FlaskClient) -> None:
    spanish = {"Accept-Language": "es-MX"}
    login = client.get("/staff/login?lang=es", headers=spanish)
    assert html_lang(login.get_data(as_text=True)) == "en"
    assert not any("lang=" in c for c in login.headers.getlist("Set-Cookie"))
    refused = client.post("/api/v1/appointments", json={"slot_id": 1}, headers=spanish)
    assert refused.status_code == 422
    assert refused.get_json()["errors"]["first_name"] == ["This field is required."]


def test_every_public_page_has_the_switch_and_a_matching_html_lang(client: FlaskClient) -> None:
    seeded_clinic()
    appt = make_appointment(make_slot(starts_at=slot_at(3)))
    slot = make_slot(appt.slot.location, starts_at=slot_at(4))
    for path in (
        "/",
        "/book/kerrville",
        f"/book/{slot.location.slug}/{slot.id}",
        "/prepare/boerne",
        "/privacy",
        manage_path(appt),
        manage_path(appt) + "/cancel",
        manage_path(appt) + "/reschedule",
        "/nowhere",
    ):
        english = client.get(path + ("&" if "?" in path else "?") + "lang=en").get_data(
            as_text=True
        )
        assert html_lang(english) == "en", path
        assert re.search(r'<a class="language" href="[^"]*lang=es[^"]*" lang="es"', english), path
        assert ">Español</a>" in english, path
        spanish = client.get(path + "?lang=es").get_data(as_text=True)
        assert html_lang(spanish) == "es", path
        assert re.search(r'<a class="language" href="[^"]*lang=en[^"]*" lang="en"', spanish), path


def test_the_switch_keeps_the_other_query_arguments(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(10))
    day = (slot.starts_at - timedelta(hours=12)).date().isoformat()
    html = client.get(f"/book/{slot.location.slug}?from={day}").get_data(as_text=True)
    assert f'href="/book/{slot.location.slug}?from={day}&amp;lang=es"' in html


def test_the_preferred_language_answer_defaults_to_the_page_language(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3))
    for language in ("es", "en"):
        html = client.get(f"/book/{slot.location.slug}/{slot.id}?lang={language}").get_data(
            as_text=True
        )
        checked = re.search(r'<input[^>]*checked[^>]*name="language"[^>]*>', html) or re.search(
            r'<input[^>]*name="language"[^>]*checked[^>]*>', html
        )
        assert f'value="{language}"' in checked.group(0)


def test_a_spanish_fragment_on_an_english_page_says_it_is_spanish(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3))
    html = client.get(f"/book/{slot.location.slug}/{slot.id}?lang=en").get_data(as_text=True)
    assert '<span lang="es">Español</span>' in html
    spanish = client.get(f"/book/{slot.location.slug}/{slot.id}?lang=es").get_data(as_text=True)
    assert '<span lang="en">English</span>' in spanish


# --- Spanish pages carry no English ---------------------------------------------------------


def spanish_pages(client: FlaskClient, clock: Any) -> dict[str, Any]:
    """Every public page, in its normal, error and empty states, asked for in Spanish."""
    locations = seeded_clinic()
    boerne = locations[0]
    slot = make_slot(boerne, starts_at=slot_at(3))
    last_place = make_slot(boerne, starts_at=slot_at(3, time(11)), capacity=1)
    full = make_slot(boerne, starts_at=slot_at(4), capacity=1)
    make_appointment(full)
    booked = make_appointment(make_slot(boerne, starts_at=slot_at(5)), language="es")
    quiet = make_appointment(
        make_slot(boerne, starts_at=slot_at(6)), language="es", sms_consent=False
    )
    cancelled = make_appointment(make_slot(boerne, starts_at=slot_at(7)), language="es")
    client.post(
        manage_path(cancelled) + "/cancel",
        data={"csrf_token": csrf_of(client, manage_path(cancelled) + "/cancel")},
    )
    moved = make_appointment(make_slot(boerne, starts_at=slot_at(8)), language="es")
    old_link = manage_path(moved)
    confirm = old_link + f"/reschedule/{slot.id}"
    client.post(confirm, data={"csrf_token": csrf_of(client, confirm), "slot_id": str(slot.id)})
    db.session.refresh(moved)
    assert moved.status == "rescheduled"
    pages = {
        "home": client.get("/"),
        "slots": client.get(f"/book/{boerne.slug}"),
        "slots empty": client.get(f"/book/kerrville?from={slot_at(40).date().isoformat()}"),
        "form": client.get(f"/book/{boerne.slug}/{slot.id}"),
        "form with last place": client.get(f"/book/{boerne.slug}/{last_place.id}"),
        "form errors": post_booking(
            client,
            slot,
            first_name="",
            phone="12",
            email="nope",
            **{"date_of_birth-year": "", "language": "de"},
        ),
        "form full": client.get(f"/book/{boerne.slug}/{full.id}"),
        "prepare": client.get(f"/prepare/{boerne.slug}"),
        "privacy": client.get("/privacy"),
        "manage": client.get(manage_path(booked) + "?booked=1"),
        "manage no texts": client.get(manage_path(quiet)),
        "manage cancelled": client.get(manage_path(cancelled)),
        "cancel": client.get(manage_path(booked) + "/cancel"),
        "reschedule": client.get(manage_path(booked) + "/reschedule"),
        "reschedule confirm": client.get(manage_path(booked) + f"/reschedule/{slot.id}"),
        "link invalid": client.get(f"/manage/{booked.reference}/garbage"),
        "link stale": client.get(manage_path(moved)),
        "404": client.get("/nowhere"),
        "503": client.get("/test-outage"),
        "database down": client.get("/test-database-down"),
    }
    link = manage_path(booked)
    clock.shift(timedelta(days=121))
    pages["link expired"] = client.get(link)
    return pages


def database_down() -> None:
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database down"))


def csrf_of(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_spanish_pages_contain_no_english_from_the_catalog(
    client: FlaskClient, app: Flask, afternoon: Any
) -> None:
    app.add_url_rule("/test-outage", "outage", lambda: abort(503))
    app.add_url_rule("/test-database-down", "database_down", database_down)
    client.get("/?lang=es")
    pages = spanish_pages(client, afternoon)
    phrases = english_phrases()
    assert len(phrases) > 100
    for name, response in pages.items():
        html = response.get_data(as_text=True)
        assert html_lang(html) == "es", name
        assert english_found(html, phrases) == [], name
    # The check itself finds English when there is some.
    client.get("/?lang=en")
    assert "Book a spine consultation" in english_found(
        client.get("/").get_data(as_text=True), phrases
    )
    # And the states are what their names say.
    assert pages["form errors"].status_code == 422
    assert pages["404"].status_code == 404 and "Página no encontrada" in pages["404"].get_data(
        as_text=True
    )
    assert pages["503"].status_code == pages["database down"].status_code == 503
    assert "No disponible por un momento" in pages["database down"].get_data(as_text=True)
    assert pages["link invalid"].status_code == 404
    assert pages["link stale"].status_code == pages["link expired"].status_code == 410
    assert "No hay horas libres" in pages["slots empty"].get_data(as_text=True)
    assert "último lugar" in pages["slots"].get_data(as_text=True)


def test_spanish_dates_and_times_are_formatted_by_babel(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(1, time(13, 30)))  # Tuesday, April 14, 2026
    html = client.get(f"/book/{slot.location.slug}/{slot.id}?lang=es").get_data(as_text=True)
    assert "martes, 14 de abril de 2026" in html
    assert "1:30 p.m. CDT" in html
    english = client.get(f"/book/{slot.location.slug}/{slot.id}?lang=en").get_data(as_text=True)
    assert "Tuesday, April 14, 2026" in english and "1:30 PM CDT" in english


def test_form_errors_and_refusals_are_in_spanish(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3), capacity=1)
    client.get("/?lang=es")
    html = post_booking(client, slot, phone="555").get_data(as_text=True)
    assert "Escriba un número de celular válido" in html
    url = f"/book/{slot.location.slug}/{slot.id}"
    hidden = hidden_fields(client.get(url).get_data(as_text=True))
    make_appointment(slot)
    refused = client.post(url, data={**hidden, **booking_form()})
    assert refused.status_code == 422
    assert "Otra persona acaba de reservar esta hora" in refused.get_data(as_text=True)


def test_the_calendar_file_is_in_the_page_language_with_alarms_and_the_link(
    client: FlaskClient,
) -> None:
    location = make_location(address="Placeholder street, Boerne, TX", address_is_placeholder=True)
    appt = make_appointment(make_slot(location, starts_at=slot_at(9)), language="es")
    response = client.get(manage_path(appt) + "/appointment.ics")
    [event] = Calendar.from_ical(response.data).walk("VEVENT")
    link = f"https://book.example.test{manage_path(appt)}"
    assert str(event["summary"]) == f"Consulta en Freedom Spine & Pain Center ({location.name})"
    assert str(event["url"]) == link
    description = str(event["description"])
    assert link in description and "(210) 920-8945" in description
    assert "Por favor llegue 15 minutos antes" in description
    assert str(event["location"]) == "Freedom Spine & Pain Center, Boerne, TX"
    assert "Placeholder" not in response.get_data(as_text=True)
    triggers = sorted(alarm.decoded("trigger") for alarm in event.walk("VALARM"))
    assert triggers == [-timedelta(days=1), -timedelta(hours=2)]
    english = client.get(manage_path(appt) + "/appointment.ics?lang=en")
    [event] = Calendar.from_ical(english.data).walk("VEVENT")
    assert str(event["summary"]).startswith("Consultation at ")


def test_a_confirmed_street_address_is_shown(client: FlaskClient) -> None:
    location = make_location(address="1 Main St, Kerrville, TX 78028", address_is_placeholder=False)
    slot = make_slot(location, starts_at=slot_at(3))
    assert "1 Main St, Kerrville, TX 78028" in client.get(f"/book/{location.slug}").get_data(
        as_text=True
    )
    appt = make_appointment(slot)
    assert "1 Main St" in client.get(manage_path(appt)).get_data(as_text=True)


def test_error_pages_are_translated(client: FlaskClient) -> None:
    spanish = {"Accept-Language": "es"}
    missing = client.get("/book/austin", headers=spanish)
    assert missing.status_code == 404
    assert "No tenemos una clínica en esa dirección" in missing.get_data(as_text=True)
    appt = make_appointment(make_slot(starts_at=slot_at(3)))
    appt.manage_nonce = "rotated"
    db.session.commit()
    gone = client.get(f"/manage/{appt.reference}/garbage", headers=spanish)
    assert "No pudimos abrir este enlace" in gone.get_data(as_text=True)


def test_the_per_phone_cap_is_explained_in_spanish(client: FlaskClient) -> None:
    location = make_location()
    for days in (3, 4):
        make_appointment(make_slot(location, starts_at=slot_at(days)), phone="+18302574811")
    client.get("/?lang=es")
    refused = post_booking(client, make_slot(location, starts_at=slot_at(5)))
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "Este número de teléfono ya tiene 2 citas próximas" in html
    assert "llámenos al (210) 920-8945" in html

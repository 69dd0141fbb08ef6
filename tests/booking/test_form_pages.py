"""The booking form and slot pages for older and disabled patients, and the form's rate limit."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scheduler.appointments.links import manage_token
from scheduler.availability.operations import roll_slots_forward
from scheduler.extensions import db
from scheduler.models import Appointment, Patient
from tests.booking.conftest import booking_form, post_booking, slot_at
from tests.conftest import hidden_fields
from tests.factories import make_appointment, make_slot, seeded_clinic
from tests.staff.conftest import csrf_token, make_staff, sign_in

pytestmark = pytest.mark.usefixtures("fresh_requests", "afternoon")


def appointments() -> int:
    return db.session.scalar(select(func.count(Appointment.id)))


def ids_in(html: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', html))


def test_date_of_birth_in_three_labelled_boxes(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3))
    html = client.get(f"/book/{slot.location.slug}/{slot.id}?lang=en").get_data(as_text=True)
    fieldset = html[html.index("<legend>Date of birth</legend>") - 120 :]
    fieldset = fieldset[: fieldset.index("</fieldset>")]
    for part, label, autocomplete in (
        ("month", "Month", "bday-month"),
        ("day", "Day", "bday-day"),
        ("year", "Year", "bday-year"),
    ):
        assert f'<label for="date_of_birth-{part}">{label}</label>' in fieldset
        box = re.search(rf'<input [^>]*id="date_of_birth-{part}"[^>]*>', fieldset).group(0)
        assert 'inputmode="numeric"' in box and f'autocomplete="{autocomplete}"' in box
        assert 'aria-describedby="date_of_birth-hint"' in box
    assert "For example: 4 15 1956" in fieldset
    assert 'type="date"' not in html


@pytest.mark.parametrize(
    ("month", "day", "year", "stored"),
    [("4", "15", "1956", date(1956, 4, 15)), ("abril", "2", "49", date(1949, 4, 2))],
)
def test_a_date_typed_in_the_boxes_is_stored(
    client: FlaskClient, month: str, day: str, year: str, stored: date
) -> None:
    slot = make_slot(starts_at=slot_at(3))
    response = post_booking(
        client,
        slot,
        **{"date_of_birth-month": month, "date_of_birth-day": day, "date_of_birth-year": year},
    )
    assert response.status_code == 303
    assert db.session.scalar(select(Patient.date_of_birth)) == stored


def test_a_refused_submit_lists_each_problem_linked_to_its_box(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3))
    response = post_booking(
        client,
        slot,
        headers={"Accept-Language": "en"},
        first_name="",
        phone="555",
        **{"date_of_birth-year": "19", "date_of_birth-day": "40", "language": "en"},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<title>Error: Your details" in html
    summary = re.search(
        r'<div class="error-summary" id="error-summary"[^>]*>(.*?)</div>', html, re.S
    )
    assert 'role="alert"' in summary.group(0) and 'tabindex="-1"' in summary.group(0)
    links = re.findall(r'<a href="#([^"]+)">([^<]+)</a>', summary.group(1))
    assert [target for target, _ in links] == ["first_name", "phone", "date_of_birth-day"]
    assert links[0][1] == "Enter your first name."
    assert all(target in ids_in(html) for target, _ in links)
    # Each box says what is wrong with it, and is marked invalid.
    phone = re.search(r'<input [^>]*id="phone"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in phone
    assert 'aria-describedby="phone-hint phone-error"' in phone
    day = re.search(r'<input [^>]*id="date_of_birth-day"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in day
    assert 'aria-describedby="date_of_birth-hint date_of_birth-error"' in day
    # What was typed is kept, and the summary script is loaded from the site (no inline script).
    assert re.search(r'id="date_of_birth-year"[^>]*value="19"', html) or re.search(
        r'value="19"[^>]*id="date_of_birth-year"', html
    )
    assert '<script src="/static/booking.js" defer></script>' in html
    assert appointments() == 0


def test_group_hints_and_errors_are_tied_to_their_group(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3))
    html = post_booking(
        client, slot, language="de", conservative_treatment_8_weeks="maybe"
    ).get_data(as_text=True)
    for n in (0, 1):
        radio = re.search(rf'<input [^>]*id="language-{n}"[^>]*>', html).group(0)
        assert 'aria-describedby="language-error"' in radio and 'aria-invalid="true"' in radio
    for n in (0, 1, 2):
        radio = re.search(rf'<input [^>]*id="conservative_treatment_8_weeks-{n}"[^>]*>', html)
        assert (
            'aria-describedby="conservative_treatment_8_weeks-hint '
            'conservative_treatment_8_weeks-error"' in radio.group(0)
        )
    for described in ("language-error", "conservative_treatment_8_weeks-hint"):
        assert f'id="{described}"' in html
    consent = re.search(r'<input [^>]*id="sms_consent"[^>]*>', html).group(0)
    assert 'aria-describedby="sms_consent-hint"' in consent


def test_consent_sits_right_after_the_phone_with_terms_and_privacy(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3))
    html = client.get(f"/book/{slot.location.slug}/{slot.id}?lang=en").get_data(as_text=True)
    order = [html.index(marker) for marker in ('id="phone"', 'id="sms_consent"', 'id="email"')]
    assert order == sorted(order)
    consent = html[html.index('class="field consent') : html.index('id="email"')]
    assert (
        '<label for="sms_consent">Yes, text me about this appointment (optional)</label>' in consent
    )
    assert "Reply STOP to opt out" in consent and "Message and data rates may apply" in consent
    assert re.search(r"<details>\s*<summary>Read the full text message terms</summary>", consent)
    assert "Consent is not required to book" in consent
    assert 'href="/privacy"' in consent
    # What the email address is for, truthfully: the emails it gets, and how to stop them.
    hint = html[html.index('id="email-hint"') : html.index('id="email"')]
    assert "confirmation with a calendar file" in hint and "reminder" in hint
    assert "link to stop them" in hint and "nothing else" in hint


def test_the_stored_consent_is_the_text_the_patient_saw(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3))
    client.get("/?lang=es")
    assert post_booking(client, slot).status_code == 303
    stored = db.session.scalar(select(Patient.sms_consent_text))
    assert stored.startswith("Sí, envíenme mensajes de texto sobre esta cita")
    assert "Responda STOP" in stored and "Freedom Spine & Pain Center" in stored


def test_privacy_page_in_both_languages_and_editable_by_admins(
    app: Any, client: FlaskClient
) -> None:
    english = client.get("/privacy?lang=en").get_data(as_text=True)
    assert "<h1>Privacy and text messages</h1>" in english
    assert "<h2>Text messages</h2>" in english and "Reply STOP at any time" in english
    spanish = client.get("/privacy?lang=es").get_data(as_text=True)
    assert "<h2>Mensajes de texto</h2>" in spanish
    admin = app.test_client()
    assert sign_in(admin, make_staff("admin@clinic.test", "admin")).status_code == 302
    assert "privacy_notice" in admin.get("/staff/texts").get_data(as_text=True)
    edit = "/staff/texts/privacy_notice/es"
    saved = admin.post(
        edit,
        data={
            "body": "Aviso nuevo.\n\n## Contacto\n- Llame a la clínica.",
            "csrf_token": csrf_token(admin, edit),
        },
    )
    assert saved.status_code == 302
    html = client.get("/privacy?lang=es").get_data(as_text=True)
    assert "<p>Aviso nuevo.</p>" in html and "<h2>Contacto</h2>" in html
    assert "<li>Llame a la clínica.</li>" in html
    assert "Reply STOP at any time" in client.get("/privacy?lang=en").get_data(as_text=True)


def test_favicon(client: FlaskClient) -> None:
    with client.get("/favicon.ico") as response:
        assert response.status_code == 200
        assert response.mimetype == "image/vnd.microsoft.icon"
        assert response.data[:4] == b"\x00\x00\x01\x00"
        etag = response.headers["ETag"]
    with client.get("/favicon.ico", headers={"If-None-Match": etag}) as again:
        assert again.status_code == 304
    with client.get("/static/favicon.svg") as svg:
        assert svg.status_code == 200


def test_the_slot_page_is_light_and_lets_a_patient_jump_to_a_day(client: FlaskClient) -> None:
    seeded_clinic()
    roll_slots_forward()
    for language in ("en", "es"):
        response = client.get(f"/book/kerrville?lang={language}")
        html = response.get_data(as_text=True)
        slots = re.findall(r'class="slot" href="/book/kerrville/\d+"', html)
        assert len(slots) >= 60  # a full week of weekdays, 8:00 to 17:00 every 30 minutes
        assert len(response.data) < 20 * 1024, len(response.data)
        assert "<script" not in html
        jumps = re.findall(r'<a href="#(day-\d{4}-\d\d-\d\d)">', html)
        assert len(jumps) >= 4
        assert all(f'id="{target}"' in html for target in jumps)


# Several bookings from one phone in a row: the per-phone cap is not what these tests look at.
RATE_LIMITED = pytest.mark.parametrize(
    "app_config", [{"RATELIMIT_ENABLED": True, "MAX_ACTIVE_BOOKINGS_PER_PHONE": 100}]
)


@RATE_LIMITED
def test_a_field_error_does_not_count_toward_the_rate_limit(client: FlaskClient) -> None:
    slot = make_slot(starts_at=slot_at(3), capacity=20)
    url = f"/book/{slot.location.slug}/{slot.id}"
    hidden = hidden_fields(client.get(url).get_data(as_text=True))
    for _ in range(8):
        refused = client.post(url, data={**hidden, **booking_form(phone="555")})
        assert refused.status_code == 422
    codes = [
        post_booking(client, slot, first_name="Ana", phone=f"830-257-48{10 + n}").status_code
        for n in range(5)
    ]
    assert codes == [303] * 5
    assert appointments() == 5


@RATE_LIMITED
def test_the_rate_limited_form_keeps_what_was_typed_and_says_when(
    client: FlaskClient, afternoon: Any
) -> None:
    slot = make_slot(starts_at=slot_at(3), capacity=20)
    for n in range(5):
        assert post_booking(client, slot, phone=f"830-257-48{10 + n}").status_code == 303
    client.get("/?lang=en")
    response = post_booking(client, slot, first_name="Rosa", last_name="Treviño")
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert 'value="Rosa"' in html and 'value="Treviño"' in html and 'value="(830) 257-4811"' in html
    assert "Please try again after 2:01 PM CDT" in html
    assert "call us at (210) 920-8945" in html
    assert 0 < int(response.headers["Retry-After"]) <= 61
    assert appointments() == 5
    # After the minute, the same form books.
    afternoon.shift(timedelta(seconds=61))
    assert post_booking(client, slot, first_name="Rosa", phone="830-257-4820").status_code == 303
    # In Spanish too.
    for n in range(4):
        assert post_booking(client, slot, phone=f"830-257-48{21 + n}").status_code == 303
    client.get("/?lang=es")
    spanish = post_booking(client, slot, phone="830-257-4830").get_data(as_text=True)
    assert "inténtelo de nuevo después de las 2:02 p.m. CDT" in spanish
    assert "llámenos al (210) 920-8945" in spanish


def test_the_form_books_without_javascript_at_any_hour(client: FlaskClient, afternoon: Any) -> None:
    """A plain form post (what a browser without JavaScript sends) books."""
    slot = make_slot(starts_at=slot_at(3, time(9)))
    afternoon.shift(timedelta(hours=9))  # 23:00
    assert post_booking(client, slot).status_code == 303


@RATE_LIMITED
def test_too_many_moves_get_a_page_that_says_when(client: FlaskClient) -> None:
    """Moving shares the booking budget; its refusal is a page in the patient's language."""
    appt = make_appointment(make_slot(starts_at=slot_at(3)), language="es")
    for n in range(5):
        post_booking(client, make_slot(appt.slot.location, starts_at=slot_at(4 + n)))
    other = make_slot(appt.slot.location, starts_at=slot_at(12))
    confirm = f"/manage/{appt.reference}/{manage_token(appt)}/reschedule/{other.id}"
    hidden = hidden_fields(client.get(confirm).get_data(as_text=True))
    response = client.post(confirm, data=hidden)
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert "<h1>Demasiados intentos</h1>" in html
    assert "inténtelo de nuevo después de las 2:01 p.m. CDT" in html
    assert response.headers["Retry-After"]

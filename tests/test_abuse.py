"""Text-message abuse: who can be texted, what a name can say, how much one number gets."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time
from typing import Any

import pytest
import requests
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scheduler.appointments.operations import (
    BookingCapReached,
)
from scheduler.appointments.validation import name_filter, name_problem, normalise_phone
from scheduler.extensions import db
from scheduler.models import Appointment
from scheduler.sms.replies import action_of
from scheduler.sms.texts import appointment_values
from tests.conftest import hidden_fields
from tests.factories import (
    api_booking,
    book,
    booking_request,
    cancel,
    make_location,
    make_slot,
    new_phone,
)

# Tuesday 2026-12-01, 9:00 in Central time: inside sending hours, far from the visits.
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
US = {"US"}


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.mark.parametrize(
    "raw",
    [
        "+1 876 555 0188",  # Jamaica
        "+1 809 555 0188",  # Dominican Republic
        "+1 242 555 0188",  # Bahamas
        "+1 345 555 0188",  # Cayman Islands
        "+1 787 555 0188",  # Puerto Rico, unless PHONE_REGIONS has PR
        "+1 500 555 0188",  # personal number
        "+1 500 555 0006",
        "+1 800 555 0188",  # toll-free
        "+1 900 555 0188",  # premium
        "210 555 0188x",
        "210 555 0188 x12",
        "210 555 0188 ext. 12",
        "+44 7700 900123",
        "   ",
        "",
    ],
)
def test_only_us_mobile_numbers_are_accepted(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_phone(raw, US)


def test_accepted_numbers_come_back_in_e164() -> None:
    assert normalise_phone("(830) 257-4811", US) == "+18302574811"
    assert normalise_phone("+1 210-555-0188", US) == "+12105550188"
    assert normalise_phone("+1 787 555 0188", {"US", "PR"}) == "+17875550188"
    with pytest.raises(ValueError, match="Puerto Rico or the United States"):
        normalise_phone("+1 876 555 0188", {"US", "PR"})


@pytest.mark.parametrize(
    "name", ["J. R.", "María", "O'Brien", "D’Angelo", "Mary-Jane", "St. John", "Nguyễn", "李小龍"]
)
def test_real_names_stay_valid(name: str) -> None:
    assert name_problem(name_filter(name)) is None


@pytest.mark.parametrize(
    "name",
    [
        "Claim.prize.evil.com",
        "J.R.",
        "\u3164",  # Hangul filler: a letter that shows nothing
        "Ana\u3164",
        "\u115f\u1160",
        "\u2800",  # braille blank
        "An\u200ba",  # zero-width space (format)
        "Ana\u202eLee",  # right-to-left override
        "Ana\x07",
        "Ana2",
        "win@prize",
        "http://x",
        "a/b",
        "Call:now",
        "😀",
        "-'",
    ],
)
def test_names_that_could_carry_a_message_or_nothing_are_refused(name: str) -> None:
    assert name_problem(name_filter(name)) is not None


def test_names_are_nfkc_normalised_and_trimmed() -> None:
    assert name_filter("  Ａｎａ  ") == "Ana"
    assert name_filter("\u2003") == ""  # then the field's "required" error


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"first_name": "\u2003"}, "first_name", "Enter your first name."),
        ({"last_name": "   "}, "last_name", "Enter your last name."),
        ({"phone": " \t "}, "phone", "Enter your mobile phone number."),
        ({"first_name": "Claim.prize.evil.com"}, "first_name", "Put a space after each period"),
        ({"phone": "+1 876 555 0188"}, "phone", "the United States"),
        ({"phone": "+1 500 555 0188"}, "phone", "cannot receive our text messages"),
        ({"phone": "210 555 0188x"}, "phone", "digits only"),
    ],
)
def test_the_api_refuses_them_with_the_fields_error(
    client: FlaskClient, clock: Any, changes: dict, field: str, message: str
) -> None:
    slot = make_slot()
    response = client.post("/api/v1/appointments", json={**api_booking(slot.id), **changes})
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert list(errors) == [field] and message in errors[field][0]
    assert db.session.scalar(select(func.count(Appointment.id))) == 0


def form_post(client: FlaskClient, url: str, **fields: str) -> Any:
    hidden = hidden_fields(client.get(url).get_data(as_text=True))
    data = {
        **hidden,
        "first_name": "Ana",
        "last_name": "Lee",
        "phone": new_phone(),
        "date_of_birth": "1950-01-01",
        "language": "en",
        **fields,
    }
    return client.post(url, data=data)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phone", "   ", "Enter your mobile phone number."),
        ("first_name", "\u2003", "Enter your first name."),
        ("phone", "+1 809 555 0188", "the United States"),
        ("last_name", "Claim.prize.evil.com", "Put a space after each period"),
    ],
)
def test_the_public_form_shows_them_beside_the_field(
    client: FlaskClient, clock: Any, field: str, value: str, message: str
) -> None:
    slot = make_slot()
    response = form_post(client, f"/book/{slot.location.slug}/{slot.id}", **{field: value})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html and message in html
    assert db.session.scalar(select(func.count(Appointment.id))) == 0


def test_at_most_two_upcoming_bookings_per_phone(client: FlaskClient, clock: Any) -> None:
    slot = make_slot(capacity=10)
    other = make_slot(slot.location, days_ahead=4, capacity=10)
    phone = "830-257-4811"
    codes = [
        client.post("/api/v1/appointments", json=api_booking(s.id, phone=phone)).status_code
        for s in (slot, other)
    ]
    assert codes == [201, 201]
    third = make_slot(slot.location, days_ahead=5)
    response = client.post("/api/v1/appointments", json=api_booking(third.id, phone=phone))
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "too_many_bookings" and "(210) 920-8945" in body["message"]
    # The form says the same, beside nothing but the message (no other times offered).
    page = form_post(client, f"/book/{third.location.slug}/{third.id}", phone=phone)
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert "already has 2 upcoming appointments" in html and "(210) 920-8945" in html
    assert db.session.scalar(select(func.count(Appointment.id))) == 2


def test_a_cancelled_or_past_booking_frees_the_phones_quota(app: Flask, clock: Any) -> None:
    app.config["MAX_ACTIVE_BOOKINGS_PER_PHONE"] = 1
    phone = new_phone()
    location = make_location()
    first = book(booking_request(make_slot(location, days_ahead=3), phone=phone))
    with pytest.raises(BookingCapReached):
        book(booking_request(make_slot(location, days_ahead=4), phone=phone))
    cancel(first)
    book(booking_request(make_slot(location, days_ahead=5), phone=phone))


def test_never_two_places_in_one_slot_for_one_phone(app: Flask, clock: Any) -> None:
    slot = make_slot(capacity=3)
    phone = new_phone()
    book(booking_request(slot, phone=phone, first_name="Ana"))
    for source in ("online_form", "api", "staff"):
        with pytest.raises(BookingCapReached, match="already has an appointment at this time"):
            book(booking_request(slot, phone=phone, first_name="Eva", source=source))
    # Staff may book a caller's third upcoming visit (the count cap is for the open doors).
    for days in (4, 5):
        book(
            booking_request(make_slot(slot.location, days_ahead=days), phone=phone, source="staff")
        )


def test_twenty_simultaneous_bookings_with_one_phone_end_with_exactly_the_cap(
    app: Flask, live_server: str, clock: Any
) -> None:
    location = make_location()
    slot_ids = [make_slot(location, days_ahead=2 + n % 20, at=_hour(n)).id for n in range(20)]
    phone = "830-257-4811"
    barrier = threading.Barrier(20)
    codes: list[int] = []

    def one(slot_id: int) -> None:
        barrier.wait()
        response = requests.post(
            f"{live_server}/api/v1/appointments",
            json=api_booking(slot_id, phone=phone),
            timeout=60,
        )
        codes.append(response.status_code)

    threads = [threading.Thread(target=one, args=(slot_id,)) for slot_id in slot_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cap = app.config["MAX_ACTIVE_BOOKINGS_PER_PHONE"]
    assert sorted(codes) == [201] * cap + [409] * (20 - cap)
    db.session.remove()
    assert db.session.scalar(select(func.count(Appointment.id))) == cap


def _hour(n: int) -> time:
    return time(9 + n // 20, 0)


def test_twenty_simultaneous_bookings_of_one_slot_with_one_phone_book_once(
    app: Flask, live_server: str, clock: Any
) -> None:
    slot = make_slot(capacity=20)
    barrier = threading.Barrier(20)
    codes: list[int] = []

    def one(n: int) -> None:
        barrier.wait()
        body = api_booking(slot.id, phone="830-257-4811", first_name=f"Ana{chr(97 + n)}")
        codes.append(
            requests.post(f"{live_server}/api/v1/appointments", json=body, timeout=60).status_code
        )

    threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [201] + [409] * 19
    db.session.remove()
    assert db.session.scalar(select(func.count(Appointment.id))) == 1


def test_texts_carry_first_names_in_gsm7_and_short(app: Flask, clock: Any) -> None:
    location = make_location(name="San Antonio")
    names = (
        ("María", "Maria"),
        ("Raúl", "Raul"),
        ("Sofía", "Sofia"),
        ("José", "José"),  # é is in GSM-7: left alone
        ("Maria Guadalupe", "Maria Guadalupe"),
        ("Maria Guadalupe Josefina", "Maria Guadalupe"),
        ("W" * 60, "W" * 20),
    )
    for days, (first_name, shown) in enumerate(names, start=3):
        slot = make_slot(location, days_ahead=days)
        appt = book(booking_request(slot, first_name=first_name))
        assert appointment_values(appt)["first_name"] == shown


def test_full_width_stop_is_an_opt_out() -> None:
    assert action_of("ＳＴＯＰ") == "opt_out"
    assert action_of("ｓｔｏｐ。") == "opt_out"
    assert action_of("ＣＯＮＦＩＲＭ") == "confirm"

"""The waitlist's doors: the API contract, the public pages, leaving the list, an offer's page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.appointments.lifecycle import PATIENT_WEB
from scheduler.extensions import db
from scheduler.models import WaitlistEntry, WaitlistStatus, utcnow
from scheduler.waitlist.links import offer_url
from scheduler.waitlist.offers import accept_offer
from tests.conftest import Clock, hidden_fields
from tests.factories import cancel, days_from_today, make_appointment, make_location, make_slot
from tests.waitlist.conftest import join, offers_of

pytestmark = pytest.mark.clock_sensitive  # "today" bounds the window


def body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "first_name": "Ana",
        "last_name": "Núñez",
        "phone": "(830) 257-4410",
        "sms_consent": True,
        "earliest": days_from_today(0).isoformat(),
        "latest": days_from_today(20).isoformat(),
    }
    values.update(overrides)
    return values


def test_the_api_adds_a_patient_once_per_location(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    location = make_location()
    url = f"/api/v1/locations/{location.slug}/waitlist"
    answer = client.post(url, json=body(weekdays=[0, 2], part_of_day="morning"))
    assert answer.status_code == 201, answer.json
    data = answer.json
    assert set(data) == {"reference", "status", "manage_url"}
    assert data["status"] == "waiting"
    assert data["manage_url"].startswith("https://book.example.test/waitlist/")
    entry = db.session.scalar(select(WaitlistEntry))
    assert (entry.weekdays, entry.part_of_day, entry.source) == ("0,2", "morning", "api")
    again = client.post(url, json=body(first_name="Anita"))
    assert again.status_code == 409 and again.json["error"] == "already_waiting"
    # Another location is another list.
    other = make_location()
    assert client.post(f"/api/v1/locations/{other.slug}/waitlist", json=body()).status_code == 201


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"earliest": None}, "earliest"),
        ({"latest": "2027-02-30"}, "latest"),
        ({"latest": "not a date"}, "latest"),
        ({"first_name": "http://spam.example"}, "first_name"),
        ({"phone": "+44 20 7946 0958"}, "phone"),
        ({"weekdays": [9]}, "weekdays"),
        ({"weekdays": "monday"}, "weekdays"),
        ({"part_of_day": "night"}, "part_of_day"),
        ({"sms_consent": False}, "sms_consent"),
        ({"slot_id": True, "earliest": 5}, "earliest"),
    ],
)
def test_the_api_refuses_invalid_fields_with_422(
    app: Flask, client: FlaskClient, clock: Clock, changes: dict[str, Any], field: str
) -> None:
    location = make_location()
    values = body()
    for name, value in changes.items():
        if value is None:
            values.pop(name)
        else:
            values[name] = value
    answer = client.post(f"/api/v1/locations/{location.slug}/waitlist", json=values)
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]
    assert db.session.scalar(select(WaitlistEntry)) is None


def test_the_api_refuses_a_window_that_ends_before_it_starts(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    location = make_location()
    values = body(earliest=days_from_today(5).isoformat(), latest=days_from_today(2).isoformat())
    answer = client.post(f"/api/v1/locations/{location.slug}/waitlist", json=values)
    assert answer.status_code == 422 and "latest" in answer.json["errors"]
    assert client.post("/api/v1/locations/nowhere/waitlist", json=body()).status_code == 404


def test_join_from_the_slot_page_then_leave(app: Flask, client: FlaskClient, clock: Clock) -> None:
    location = make_location()
    make_slot(location)
    slots_page = client.get(f"/book/{location.slug}").get_data(as_text=True)
    assert f"/book/{location.slug}/waitlist" in slots_page
    page = client.get(f"/book/{location.slug}/waitlist")
    assert page.status_code == 200
    form = hidden_fields(page.get_data(as_text=True))
    refused = client.post(f"/book/{location.slug}/waitlist", data={**form, "first_name": "Ana"})
    assert refused.status_code == 422
    answer = client.post(
        f"/book/{location.slug}/waitlist",
        data={
            **form,
            "earliest": days_from_today(1).isoformat(),
            "latest": days_from_today(15).isoformat(),
            "weekdays": ["1", "3"],
            "part_of_day": "afternoon",
            "first_name": "Ana",
            "last_name": "Solis",
            "phone": "830-257-4411",
            "sms_consent": "y",
            "date_of_birth-month": "4",
            "date_of_birth-day": "2",
            "date_of_birth-year": "1956",
            "language": "es",
        },
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:2000]
    entry = db.session.scalar(select(WaitlistEntry))
    assert (entry.weekdays, entry.part_of_day, entry.language) == ("1,3", "afternoon", "es")
    own = client.get(answer.headers["Location"])
    text = own.get_data(as_text=True)
    assert own.status_code == 200 and "lista de espera" in text.lower()
    leave = re.search(r'action="([^"]+/leave)"', text).group(1)
    left = client.post(leave, data=hidden_fields(text))
    assert left.status_code == 303
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, entry.id).status == WaitlistStatus.LEFT


def test_a_booked_patient_joins_from_the_manage_page(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    appt = make_appointment(make_slot(days_ahead=10))
    from scheduler.appointments.links import manage_token

    manage = f"/manage/{appt.reference}/{manage_token(appt)}"
    assert "/waitlist" in client.get(manage).get_data(as_text=True)
    page = client.get(f"{manage}/waitlist")
    assert page.status_code == 200
    answer = client.post(
        f"{manage}/waitlist",
        data={
            **hidden_fields(page.get_data(as_text=True)),
            "earliest": days_from_today(0).isoformat(),
            "latest": days_from_today(9).isoformat(),
        },
    )
    assert answer.status_code == 303
    entry = db.session.scalar(select(WaitlistEntry))
    assert entry.appointment_id == appt.id and entry.patient_id == appt.patient_id
    assert entry.compared_with == appt.slot.starts_at
    # The manage page now links to the request instead of offering to join again.
    shown = client.get(manage).get_data(as_text=True)
    assert "You are on the waitlist for an earlier time." in shown
    assert f"/waitlist/{entry.reference}/" in shown


def test_the_offer_page_takes_the_place_once(app: Flask, client: FlaskClient, clock: Clock) -> None:
    slot = make_slot(capacity=1)
    appt = make_appointment(slot)
    first, second = join(slot.location), join(slot.location)
    cancel(appt)
    offers = offers_of(slot.id)
    url = offer_url(offers[0]).removeprefix("https://book.example.test")
    other = offer_url(offers[1]).removeprefix("https://book.example.test")
    other_page = client.get(other).get_data(as_text=True)  # opened before the place went
    page = client.get(url)
    assert page.status_code == 200 and "Take this time" in page.get_data(as_text=True)
    taken = client.post(url, data=hidden_fields(page.get_data(as_text=True)))
    assert taken.status_code == 303 and "/manage/" in taken.headers["Location"]
    late = client.post(other, data=hidden_fields(other_page))
    assert late.status_code == 409
    assert "This time was taken; you are still on the list." in late.get_data(as_text=True)
    # Opened again later, the page says so without a button.
    again = client.get(other).get_data(as_text=True)
    assert "still on the list" in again and "Take this time" not in again
    assert client.get(url[:-3] + "xyz").status_code == 404
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, second.id).status == WaitlistStatus.WAITING
    assert db.session.get(WaitlistEntry, first.id).status == WaitlistStatus.BOOKED


def test_an_offer_link_after_its_time_says_it_ended(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    slot = make_slot(capacity=1)
    appt = make_appointment(slot)
    join(slot.location)
    cancel(appt)
    (offer,) = offers_of(slot.id)
    url = offer_url(offer).removeprefix("https://book.example.test")
    assert "Take this time" in client.get(url).get_data(as_text=True)
    clock.shift(timedelta(minutes=31))
    page = client.get(url).get_data(as_text=True)
    assert "This offer is no longer open" in page and "Take this time" not in page
    assert accept_offer(offer.id, PATIENT_WEB, utcnow()).outcome == "expired"
    db.session.expire_all()
    assert db.session.get(type(slot), slot.id).booked_count == 0


def test_no_thanks_keeps_the_patient_on_the_list(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    slot = make_slot(capacity=1)
    appt = make_appointment(slot)
    entry = join(slot.location)
    cancel(appt)
    (offer,) = offers_of(slot.id)
    url = offer_url(offer).removeprefix("https://book.example.test")
    page = client.get(url).get_data(as_text=True)
    answer = client.post(f"{url}/decline", data=hidden_fields(page))
    assert answer.status_code == 303 and "/waitlist/" in answer.headers["Location"]
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "You said no to this time. You are still on the list." in shown
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, entry.id).status == WaitlistStatus.WAITING
    assert offers_of(slot.id)[0].outcome == "declined"


def test_one_number_is_on_at_most_so_many_lists(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    """Offers are texts: one number cannot be put on every list under many names."""
    cap = app.config["WAITLIST_MAX_PER_PHONE"]
    locations = [make_location() for _ in range(cap + 1)]
    for n, location in enumerate(locations[:cap]):
        url = f"/api/v1/locations/{location.slug}/waitlist"
        assert client.post(url, json=body(last_name=f"Flores{chr(65 + n)}")).status_code == 201
    url = f"/api/v1/locations/{locations[cap].slug}/waitlist"
    refused = client.post(url, json=body(last_name="Otra"))
    assert refused.status_code == 409 and refused.json["error"] == "too_many_waitlist_requests"
    page = client.get(f"/book/{locations[cap].slug}/waitlist").get_data(as_text=True)
    answer = client.post(
        f"/book/{locations[cap].slug}/waitlist",
        data={
            **hidden_fields(page),
            "earliest": days_from_today(1).isoformat(),
            "latest": days_from_today(15).isoformat(),
            "first_name": "Ana",
            "last_name": "Distinta",
            "phone": body()["phone"],
            "sms_consent": "y",
            "date_of_birth-month": "4",
            "date_of_birth-day": "2",
            "date_of_birth-year": "1956",
            "language": "en",
        },
    )
    assert answer.status_code == 422
    assert "on as many waitlists as it may be" in answer.get_data(as_text=True)

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import Appointment, Patient, Slot, utcnow
from tests.factories import (
    CHICAGO,
    api_booking,
    cancel,
    days_from_today,
    make_appointment,
    make_slot,
    seeded_clinic,
)


def post_json(client: FlaskClient, body: object, **kwargs: object):
    return client.post("/api/v1/appointments", json=body, **kwargs)


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_locations(client: FlaskClient) -> None:
    seeded_clinic()
    body = client.get("/api/v1/locations").get_json()
    assert [loc["slug"] for loc in body] == ["boerne", "kerrville", "san-antonio"]
    assert set(body[0]) == {"slug", "name", "timezone", "address", "address_confirmed", "phone"}
    assert {loc["timezone"] for loc in body} == {"America/Chicago"}
    # Seeded addresses are placeholders: the API gives the city, never the placeholder text.
    assert body[0]["address"] == "Boerne, TX"
    assert body[0]["address_confirmed"] is False
    assert not any("placeholder" in loc["address"].lower() for loc in body)


@pytest.mark.clock
def test_slots_have_local_offsets_and_default_to_two_weeks(client: FlaskClient) -> None:
    seeded_clinic()
    from scheduler.availability.operations import roll_slots_forward

    roll_slots_forward()
    body = client.get("/api/v1/locations/kerrville/slots").get_json()
    assert body["location"] == "kerrville"
    starts = [s["start"] for s in body["slots"]]
    assert starts == sorted(starts)
    assert all(s[-6:] in ("-06:00", "-05:00") for s in starts)
    first_day, last_day = (date.fromisoformat(s[:10]) for s in (starts[0], starts[-1]))
    assert (first_day, last_day) == (days_from_today(0), days_from_today(14))
    first = body["slots"][0]
    assert set(first) == {"id", "start", "end", "remaining"}
    assert first["remaining"] == 2


@pytest.mark.clock(datetime(2027, 1, 5, 10, 7, tzinfo=CHICAGO))
def test_slots_in_winter_show_the_cst_offset(client: FlaskClient) -> None:
    slot = make_slot(days_ahead=10, capacity=3)
    day = slot.starts_at.astimezone(CHICAGO).date()
    body = client.get(
        f"/api/v1/locations/{slot.location.slug}/slots?from={day}&to={day}"
    ).get_json()
    [only] = body["slots"]
    assert only["id"] == slot.id
    assert only["remaining"] == 3
    assert only["start"] == "2027-01-15T10:00:00-06:00"


def test_full_slots_are_not_listed(client: FlaskClient) -> None:
    slot = make_slot(capacity=1)
    make_appointment(slot)
    body = client.get(f"/api/v1/locations/{slot.location.slug}/slots").get_json()
    assert body["slots"] == []


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-13-01",
        "to=tomorrow",
        "from=2027-02-01&to=2027-01-01",
        "from=2027-01-01&to=2027-04-04",
    ],
)
def test_bad_slot_ranges_are_400_json(client: FlaskClient, query: str) -> None:
    seeded_clinic()
    response = client.get(f"/api/v1/locations/boerne/slots?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


def test_unknown_location_is_404_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/locations/austin/slots")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_unknown_api_path_and_method_are_json(client: FlaskClient) -> None:
    assert client.get("/api/v1/nothing").get_json()["error"] == "not_found"
    response = client.delete("/api/v1/locations")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"


def test_book_through_the_api(client: FlaskClient) -> None:
    slot = make_slot(capacity=1)
    body = api_booking(slot.id, email="ana@example.com", language="es", phone="830-257-4811")
    response = post_json(client, body)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"reference", "status", "location", "start", "end", "manage_url"}
    assert body["status"] == "booked"
    assert body["location"] == slot.location.slug
    assert body["manage_url"].startswith(f"https://book.example.test/manage/{body['reference']}/")
    patient = db.session.scalar(select(Patient))
    assert patient.phone == "+18302574811"
    assert patient.language == "es"
    assert patient.sms_consent is False


def test_booked_manage_url_opens(client: FlaskClient) -> None:
    slot = make_slot()
    url = post_json(client, api_booking(slot.id)).get_json()["manage_url"]
    page = client.get(url.removeprefix("https://book.example.test"))
    assert page.status_code == 200
    assert "Your appointment" in page.get_data(as_text=True)


def test_full_slot_is_409(client: FlaskClient) -> None:
    slot = make_slot(capacity=1)
    assert post_json(client, api_booking(slot.id)).status_code == 201
    response = post_json(client, api_booking(slot.id, first_name="Eva"))
    assert response.status_code == 409
    assert response.get_json()["error"] == "slot_full"


@pytest.mark.clock
def test_slot_too_soon_is_409_not_bookable(client: FlaskClient) -> None:
    slot = make_slot(starts_at=utcnow() + timedelta(minutes=30))
    response = post_json(client, api_booking(slot.id))
    assert response.status_code == 409
    assert response.get_json()["error"] == "slot_not_bookable"


def test_unknown_slot_is_404(client: FlaskClient) -> None:
    response = post_json(client, api_booking(424242))
    assert response.status_code == 404
    assert response.get_json()["error"] == "slot_not_found"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", ""),
        ("first_name", "R2-D2"),
        ("first_name", "x" * 61),
        ("last_name", "<script>alert(1)</script>"),
        ("phone", "12345"),
        ("phone", "800-555-1234"),
        ("phone", "+44 20 7946 0958"),
        ("phone", 8302574811),
        ("email", "not-an-email"),
        ("email", "a" * 250 + "@x.com"),
        ("date_of_birth", "1956-02-30"),
        ("date_of_birth", "04/02/1956"),
        ("date_of_birth", "2999-01-01"),
        ("language", "fr"),
        ("sms_consent", "yes"),
        ("sms_consent", None),
        ("conservative_treatment_8_weeks", "maybe"),
        ("slot_id", "1"),
        ("slot_id", True),
    ],
)
def test_each_bad_field_is_422_and_writes_nothing(
    client: FlaskClient, field: str, value: object
) -> None:
    slot = make_slot()
    body = api_booking(slot.id)
    body[field] = value
    response = post_json(client, body)
    assert response.status_code == 422
    payload = response.get_json()
    assert payload["error"] == "invalid"
    assert list(payload["errors"]) == [field]
    assert isinstance(payload["errors"][field][0], str)
    assert count(Appointment) == 0 and count(Patient) == 0
    db.session.refresh(slot)
    assert slot.booked_count == 0


def test_missing_required_fields_are_listed(client: FlaskClient) -> None:
    response = post_json(client, {})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {
        "slot_id",
        "first_name",
        "last_name",
        "phone",
        "sms_consent",
    }


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("not json", "application/json"),
        ('{"slot_id": 1}', "text/plain"),
        ("[1, 2]", "application/json"),
    ],
)
def test_body_that_is_not_a_json_object_is_400(
    client: FlaskClient, data: str, content_type: str
) -> None:
    response = client.post("/api/v1/appointments", data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


def test_oversized_body_is_413_json(client: FlaskClient) -> None:
    slot = make_slot()
    body = api_booking(slot.id, notes="x" * 100_000)
    response = client.post(
        "/api/v1/appointments", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
    assert count(Appointment) == 0


def test_idempotency_key_header_books_once(client: FlaskClient) -> None:
    slot = make_slot(capacity=2)
    headers = {"Idempotency-Key": "crm-123"}
    body = api_booking(slot.id)
    first = post_json(client, body, headers=headers)
    second = post_json(client, body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json()["reference"] == second.get_json()["reference"]
    db.session.refresh(slot)
    assert slot.booked_count == 1


def test_a_reused_idempotency_key_never_hands_out_another_booking(client: FlaskClient) -> None:
    slot = make_slot(capacity=3)
    headers = {"Idempotency-Key": "order-1"}
    post_json(client, api_booking(slot.id), headers=headers)
    response = post_json(client, api_booking(slot.id, first_name="Mallory"), headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"] == "idempotency_key_reused"
    assert "manage_url" not in response.get_data(as_text=True)
    assert count(Appointment) == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 65, "naïve"])
def test_malformed_idempotency_keys_are_422(client: FlaskClient, key: str) -> None:
    slot = make_slot()
    response = post_json(client, api_booking(slot.id), headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert count(Appointment) == 0


def test_inactive_location_is_hidden_and_not_bookable(client: FlaskClient) -> None:
    slot = make_slot()
    slot.location.is_active = False
    db.session.commit()
    assert client.get("/api/v1/locations").get_json() == []
    assert client.get(f"/api/v1/locations/{slot.location.slug}/slots").status_code == 404
    response = post_json(client, api_booking(slot.id))
    assert response.status_code == 409
    assert count(Appointment) == 0


def test_api_needs_no_csrf_token(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    slot = make_slot()
    assert post_json(app.test_client(), api_booking(slot.id)).status_code == 201


@pytest.mark.parametrize("app_config", [{"RATELIMIT_ENABLED": True}])
def test_booking_is_rate_limited_per_client(client: FlaskClient) -> None:
    slot = make_slot(capacity=10)
    answers = [
        post_json(client, api_booking(slot.id, first_name=f"Ana{chr(97 + i)}")) for i in range(6)
    ]
    assert [r.status_code for r in answers] == [201] * 5 + [429]
    assert answers[-1].get_json()["error"] == "too_many_requests"
    assert "Retry-After" in answers[-1].headers
    # Reading slots is not limited by the booking limit.
    assert client.get(f"/api/v1/locations/{slot.location.slug}/slots").status_code == 200


def test_listing_is_fresh_after_every_change(client: FlaskClient) -> None:
    """The per-slot JSON is cached; what varies (remaining, full, cancelled) never is."""
    slot = make_slot(capacity=2)
    url = f"/api/v1/locations/{slot.location.slug}/slots"

    def remaining() -> list[int]:
        return [s["remaining"] for s in client.get(url).get_json()["slots"]]

    assert remaining() == [2]
    post_json(client, api_booking(slot.id))
    assert remaining() == [1]
    second = post_json(client, api_booking(slot.id, first_name="Eva")).get_json()
    assert remaining() == []
    appt = db.session.scalar(
        select(Appointment).where(Appointment.reference == second["reference"])
    )
    cancel(appt)
    assert remaining() == [1]


def test_slot_ids_are_never_reused(app: Flask) -> None:
    first = make_slot(days_ahead=3)
    location = first.location
    db.session.delete(first)
    db.session.commit()
    again = make_slot(location, days_ahead=4)
    assert again.id > first.id


@pytest.mark.clock(datetime(2027, 11, 5, 12, tzinfo=UTC), tick=False)
def test_the_repeated_autumn_hour_keeps_its_two_instants(client: FlaskClient) -> None:
    """01:30 CDT and 01:30 CST on 2027-11-07 are different slots, an hour apart."""
    location = make_slot(days_ahead=3).location
    first = datetime(2027, 11, 7, 6, 30, tzinfo=UTC)  # 01:30 CDT
    second = datetime(2027, 11, 7, 7, 30, tzinfo=UTC)  # 01:30 CST
    ids = [make_slot(location, starts_at=t).id for t in (first, second)]
    db.session.expire_all()
    assert [db.session.get(Slot, i).starts_at for i in ids] == [first, second]
    url = f"/api/v1/locations/{location.slug}/slots?from=2027-11-07&to=2027-11-07"
    starts = [s["start"] for s in client.get(url).get_json()["slots"]]
    assert starts == ["2027-11-07T01:30:00-05:00", "2027-11-07T01:30:00-06:00"]


def test_listing_never_serves_stale_times_for_a_reused_id(client: FlaskClient) -> None:
    slot = make_slot(days_ahead=3)
    url = f"/api/v1/locations/{slot.location.slug}/slots"
    before = client.get(url).get_json()["slots"][0]["start"]
    # What a restored database or a reused id looks like to a running process.
    slot.starts_at += timedelta(days=1)
    slot.ends_at += timedelta(days=1)
    db.session.commit()
    after = client.get(url).get_json()["slots"][0]["start"]
    assert after != before
    assert after == slot.starts_at.astimezone(CHICAGO).isoformat()


@pytest.mark.clock(datetime(2026, 12, 31, 23, 30, tzinfo=CHICAGO))
def test_a_birth_date_is_checked_against_the_clinics_date_not_the_servers(
    client: FlaskClient,
) -> None:
    """At 23:30 on New Year's Eve in Texas it is already 1 January on a server in UTC."""
    slot = make_slot(capacity=2)
    tomorrow = post_json(client, api_booking(slot.id, date_of_birth="2027-01-01"))
    assert tomorrow.status_code == 422
    assert tomorrow.get_json()["errors"] == {
        "date_of_birth": ["The date of birth cannot be in the future."]
    }
    born_today = post_json(client, api_booking(slot.id, date_of_birth="2026-12-31"))
    assert born_today.status_code == 201

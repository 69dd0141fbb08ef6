"""Bad input of every kind gets a 4xx with a clear answer, never a 500."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import hidden_fields
from tests.factories import api_booking, make_slot, seeded_clinic

HUGE = "99999999999999999999999"

PAGES = [
    "/book/boerne?from=9999-12-31",
    "/book/boerne?from=0001-01-01",
    "/book/boerne?from=%00",
    f"/book/boerne/{HUGE}",
    "/book/boerne/0",
    "/book/boerne/-1",
    "/book/%F0%9F%92%A5",
    "/book/a%00b",
    "/book/a%00b/1",
    "/book/boerne?from=2026-12-01%00",
    "/manage/KRV-XXXX/x/reschedule?location=a%00b",
    "/api/v1/locations/a%00b/slots",
    "/api/v1/locations/" + "b" * 300 + "/slots",
    "/manage/KRV-XXXX/x",
    "/manage/" + "A" * 5000 + "/" + "B" * 5000,
    f"/manage/KRV-XXXX/x/reschedule/{HUGE}",
    "/manage/KRV-XXXX/x/appointment.ics",
]
API_QUERIES = [
    "from=9999-12-30&to=9999-12-31",
    "from=0001-01-01&to=0001-01-02",
    "from=2026-02-29",
    "from=%00",
    "to=" + "9" * 500,
    "from=2026-12-01%00",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_never_fail_on_odd_urls(client: FlaskClient, path: str) -> None:
    seeded_clinic()
    response = client.get(path)
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("query", API_QUERIES)
def test_slot_queries_never_fail(client: FlaskClient, query: str) -> None:
    seeded_clinic()
    response = client.get(f"/api/v1/locations/boerne/slots?{query}")
    assert response.status_code == 400
    assert response.is_json and response.get_json()["error"] == "bad_request"


@pytest.mark.parametrize(
    "changes",
    [
        {"slot_id": 10**20},
        {"slot_id": -5},
        {"slot_id": 0},
        {"first_name": "\x00"},
        {"last_name": "a\u202eb"},
        {"phone": "\x00" * 10},
        {"email": "x@\x00.com"},
        {"date_of_birth": "0000-00-00"},
        {"first_name": ["list"]},
        {"phone": {"nested": 1}},
        {"first_name": "😀"},
    ],
)
def test_api_bookings_with_odd_values_are_422(client: FlaskClient, changes: dict) -> None:
    slot = make_slot()
    body = {**api_booking(slot.id), **changes}
    response = client.post("/api/v1/appointments", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert set(response.get_json()["errors"]) == set(changes)


def test_form_post_with_huge_slot_id_is_a_clear_error(client: FlaskClient) -> None:
    slot = make_slot()
    url = f"/book/{slot.location.slug}/{slot.id}"
    hidden = hidden_fields(client.get(url).get_data(as_text=True))
    response = client.post(
        url,
        data={
            **hidden,
            "slot_id": HUGE,
            "first_name": "Ana",
            "last_name": "Lee",
            "phone": "8302574811",
            "date_of_birth": "1950-01-01",
            "language": "en",
        },
    )
    assert response.status_code == 422
    assert "That time is not valid" in response.get_data(as_text=True)


def test_nul_in_form_fields_is_a_clear_400(client: FlaskClient) -> None:
    slot = make_slot()
    url = f"/book/{slot.location.slug}/{slot.id}"
    hidden = hidden_fields(client.get(url).get_data(as_text=True))
    response = client.post(url, data={**hidden, "submission_id": "a\x00" * 10})
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)


def test_nul_in_the_idempotency_key_is_422(client: FlaskClient) -> None:
    slot = make_slot()
    response = client.post(
        "/api/v1/appointments", json=api_booking(slot.id), headers={"Idempotency-Key": "a\x00b"}
    )
    assert response.status_code in (400, 422)


def test_ids_of_any_size_get_a_field_error(client: FlaskClient) -> None:
    slot = make_slot()
    for slot_id in (10**400, -(10**400), 2**31):
        response = client.post(
            "/api/v1/appointments", json={**api_booking(slot.id), "slot_id": slot_id}
        )
        assert response.status_code == 422
        assert list(response.get_json()["errors"]) == ["slot_id"]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        '{"a":' * 5000 + "1" + "}" * 5000,
        '{"slot_id": 1, "x": ' + "[" * 33 + "]" * 33 + "}",
        '{"slot_id": ' + "9" * 5000 + "}",
        '{"first_name": "Ana"',
        "\xff\xfe",
        "null",
        "[]",
    ],
)
def test_bodies_that_do_not_parse_or_nest_too_deep_are_400(client: FlaskClient, body: str) -> None:
    response = client.post(
        "/api/v1/appointments",
        data=body.encode("utf-8", "surrogateescape"),
        content_type="application/json",
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "bad_request"


def test_nesting_up_to_32_levels_is_parsed(client: FlaskClient) -> None:
    slot = make_slot()
    nested: object = 1
    for _ in range(31):
        nested = [nested]
    body = {**api_booking(slot.id), "extra": nested}
    assert client.post("/api/v1/appointments", json=body).status_code == 201


def test_a_huge_number_in_a_staff_form_is_a_field_error() -> None:
    from wtforms.validators import ValidationError

    from scheduler.appointments.validation import IntRange

    class Field:
        data = 10**400

    with pytest.raises(ValidationError, match="between 1 and 20"):
        IntRange(1, 20)(None, Field())  # type: ignore[arg-type]

"""Generated input (Hypothesis): no body, however odd, gets a 5xx, and a 4xx stores nothing.

At least 2,000 API bodies and 500 form posts per engine. The profile is
derandomized (the same examples on every run, so a failure reproduces) and
has no deadline (the machine is shared). Each example books into a slot of
its own location's wide capacity, so 201s stay possible throughout.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import Appointment, AppointmentEvent, OutboundMessage, Patient
from tests.conftest import hidden_fields
from tests.factories import make_slot

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
API_BODIES = 2000
FORM_POSTS = 500
PROFILE = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}

FIELDS = [
    "slot_id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "date_of_birth",
    "language",
    "sms_consent",
    "conservative_treatment_8_weeks",
]
odd_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            " ",
            "\u2003",
            "\u3164",
            "\x00",
            "Claim.prize.evil.com",
            "J. R.",
            "María",
            "+1 876 555 0188",
            "+1 500 555 0188",
            "210 555 0188x",
            "(830) 257-4811",
            "1956-04-02",
            "02/31/1956",
            "0000-00-00",
            "\ud800",
            "ＳＴＯＰ",
            "a" * 5000,
        ]
    ),
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def valid_phone() -> st.SearchStrategy[str]:
    return st.integers(min_value=1000, max_value=9999).map(lambda n: f"+1830257{n}")


@st.composite
def api_bodies(draw: st.DrawFn, slot_id: int) -> Any:
    """Mostly booking-shaped objects with odd values; sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_value)
    body: dict[str, Any] = {
        "slot_id": slot_id,
        "first_name": "Ana",
        "last_name": "Lee",
        "phone": draw(valid_phone()),
        "sms_consent": True,
    }
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(json_value)
    return body


@st.composite
def form_fields(draw: st.DrawFn) -> dict[str, str]:
    data = {
        "first_name": "Ana",
        "last_name": "Lee",
        "phone": draw(valid_phone()),
        "date_of_birth": "1950-01-01",
        "language": "en",
    }
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            data.pop(name, None)
        else:
            # What a browser can send: UTF-8 text (no lone surrogates); NUL has its own test.
            text = draw(odd_text).replace("\x00", "")
            data[name] = text.encode("utf-8", "ignore").decode()
    return data


STORED = select(
    *(
        select(func.count()).select_from(model).scalar_subquery()
        for model in (Appointment, Patient, AppointmentEvent, OutboundMessage)
    )
)


def stored() -> tuple[int, ...]:
    """Rows of every table a booking writes to, in one statement."""
    db.session.remove()
    return tuple(db.session.execute(STORED).one())


class Ledger:
    """What is stored; checked after every 4xx, taken again after every success."""

    def __init__(self) -> None:
        self.rows = stored()

    def check(self, response: Any, sent: object) -> None:
        assert response.status_code < 500, (sent, response.get_data(as_text=True)[:300])
        if response.status_code >= 400:
            assert stored() == self.rows, (sent, response.status_code)
        else:
            self.rows = stored()


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(NOW, tick=True):
        yield


def test_random_api_bodies_never_fail(clock: None, app: Flask, client: FlaskClient) -> None:
    app.config["MAX_ACTIVE_BOOKINGS_PER_PHONE"] = 10**6
    slot_id = make_slot(capacity=20).id
    db.session.remove()
    count = 0
    ledger = Ledger()

    @settings(max_examples=API_BODIES, **PROFILE)
    @given(body=api_bodies(slot_id))
    def one(body: Any) -> None:
        nonlocal count
        count += 1
        raw = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
        response = client.post("/api/v1/appointments", data=raw, content_type="application/json")
        ledger.check(response, body)

    one()
    assert count >= API_BODIES


def test_random_form_posts_never_fail(clock: None, app: Flask, client: FlaskClient) -> None:
    app.config["MAX_ACTIVE_BOOKINGS_PER_PHONE"] = 10**6
    slot = make_slot(capacity=20)
    url = f"/book/{slot.location.slug}/{slot.id}"
    hidden = hidden_fields(client.get(url).get_data(as_text=True))
    db.session.remove()
    count = 0
    ledger = Ledger()

    @settings(max_examples=FORM_POSTS, **PROFILE)
    @given(data=form_fields())
    def one(data: dict[str, str]) -> None:
        nonlocal count
        count += 1
        submission = {"submission_id": f"generated-{count:016d}"}
        response = client.post(url, data={**hidden, **submission, **data})
        ledger.check(response, data)

    one()
    assert count >= FORM_POSTS

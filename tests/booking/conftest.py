"""Booking page helpers shared by the i18n, texts and accessibility tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from scheduler.models import Slot
from tests.conftest import hidden_fields
from tests.factories import CHICAGO, local_instant
from tests.staff.conftest import FreshContextClient

# A Monday afternoon in Central daylight time, inside the texts' sending hours (8:00 to 21:00).
MONDAY_AFTERNOON = datetime(2026, 4, 13, 14, 0, tzinfo=CHICAGO)
MONDAY_NIGHT = datetime(2026, 4, 13, 22, 0, tzinfo=CHICAGO)


@pytest.fixture
def fresh_requests(app: Flask) -> None:
    """Each request in its own app context, as in production (no ``g`` carried over)."""
    app.test_client_class = FreshContextClient


@pytest.fixture
def afternoon() -> Iterator[Any]:
    with time_machine.travel(MONDAY_AFTERNOON, tick=False) as traveller:
        yield traveller


def slot_at(days_ahead: int, at: time = time(10)) -> datetime:
    """A start time ``days_ahead`` days after the frozen Monday, in Central time."""
    return local_instant((MONDAY_AFTERNOON + timedelta(days=days_ahead)).date(), at)


def booking_form(**overrides: str | None) -> dict[str, str]:
    data: dict[str, str | None] = {
        "first_name": "María",
        "last_name": "Garza",
        "phone": "(830) 257-4811",
        "email": "",
        "date_of_birth-month": "4",
        "date_of_birth-day": "15",
        "date_of_birth-year": "1956",
        "language": "es",
        "conservative_treatment_8_weeks": "not_sure",
        "sms_consent": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def post_booking(
    client: FlaskClient, slot: Slot, headers: dict[str, str] | None = None, **overrides: str | None
) -> Any:
    url = f"/book/{slot.location.slug}/{slot.id}"
    page = client.get(url, headers=headers)
    assert page.status_code == 200, page.status_code
    data = {**hidden_fields(page.get_data(as_text=True)), **booking_form(**overrides)}
    return client.post(url, data=data, headers=headers)

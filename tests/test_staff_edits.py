"""What staff edit, kept per process: the process that saves uses the change at once,
every other process within STAFF_EDITS_CACHE_SECONDS; the database alone decides bookings.

Two apps on one database stand for two gunicorn workers (each app keeps its own copy);
their clocks are set by the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from scheduler.appointments.errors import SlotNotBookable
from scheduler.content import save_content
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import Location
from scheduler.staff_edits import StaffEdits
from tests.conftest import make_app
from tests.factories import book, booking_request, make_slot, texts_of

NOW = datetime(2027, 3, 8, 15, 0, tzinfo=UTC)  # a Monday, 9:00 in Chicago
NEW_TEXT = "Hello {first_name}: {location}, {date} at {time}. Ref {reference}."


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def copy_of(app: Flask) -> StaffEdits:
    copy: StaffEdits = app.extensions["staff_edits"]
    return copy


@pytest.fixture
def clock(app: Flask) -> Clock:
    clock = Clock()
    copy_of(app).clock = clock
    assert copy_of(app).max_age_s == 1.0  # the default
    return clock


@pytest.fixture
def other_worker(database_url: str, app: Flask) -> Iterator[Flask]:
    other = make_app(database_url)
    yield other
    with other.app_context():
        db.engine.dispose()


def confirmation_of(slot_id: int, first_name: str) -> str:
    appt = book(booking_request(slot_id, first_name=first_name, date_of_birth=None), now=NOW)
    return texts_of(appt)["confirmation"].body


def test_a_text_saved_in_one_worker_reaches_the_others_within_a_second(
    app: Flask, clock: Clock, other_worker: Flask
) -> None:
    slots = [make_slot(starts_at=NOW + timedelta(days=3, hours=n)).id for n in range(4)]
    assert not confirmation_of(slots[0], "Ana").startswith("Hello")  # the shipped text
    with other_worker.app_context():
        with unit_of_work():
            save_content("sms_confirmation", "en", None, NEW_TEXT, NOW)
        # The worker that saved it uses it from its next booking on.
        assert confirmation_of(slots[1], "Bea").startswith("Hello Bea: ")
        db.session.remove()
    clock.now += 0.9
    assert not confirmation_of(slots[2], "Cruz").startswith("Hello")  # still its copy
    clock.now += 0.1
    assert confirmation_of(slots[3], "Dora").startswith("Hello Dora: ")


def test_a_text_saved_in_this_worker_is_used_at_once(app: Flask, clock: Clock) -> None:
    slots = [make_slot(starts_at=NOW + timedelta(days=3, hours=n)).id for n in range(2)]
    assert not confirmation_of(slots[0], "Ana").startswith("Hello")
    with unit_of_work():
        save_content("sms_confirmation", "en", None, NEW_TEXT, NOW)
    assert confirmation_of(slots[1], "Bea").startswith("Hello Bea: ")


def test_a_location_closed_in_another_worker_is_refused_at_once_and_unlisted_within_a_second(
    app: Flask, clock: Clock, other_worker: Flask
) -> None:
    slot = make_slot(starts_at=NOW + timedelta(days=3))
    path = f"/api/v1/locations/{slot.location.slug}/slots?from=2027-03-11&to=2027-03-11"
    client = app.test_client()
    assert client.get(path).status_code == 200
    with other_worker.app_context():
        with unit_of_work():
            db.session.get(Location, slot.location_id).is_active = False
        db.session.remove()
    with pytest.raises(SlotNotBookable):
        book(booking_request(slot), now=NOW)  # the database decides, at once
    clock.now += 0.5
    assert client.get(path).status_code == 200  # the listing's copy, for under a second
    clock.now += 0.5
    assert client.get(path).status_code == 404

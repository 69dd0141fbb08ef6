"""Staff see each location's waitlist in order, offer a free time by hand, remove someone."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import AuditEntry, WaitlistEntry, WaitlistStatus
from tests.conftest import Clock
from tests.factories import cancel, make_appointment, make_location, make_slot
from tests.staff.conftest import csrf_token
from tests.waitlist.conftest import join, offer_texts, offers_of

pytestmark = pytest.mark.clock_sensitive  # windows start today


def test_the_list_shows_positions_windows_and_offers(
    app: Flask, staff_client: FlaskClient, clock: Clock
) -> None:
    slot = make_slot(capacity=1)
    appt = make_appointment(slot)
    first = join(slot.location, last_name="Alvarez")
    second = join(slot.location, last_name="Benavides", part_of_day="morning")
    cancel(appt)
    page = staff_client.get(f"/staff/locations/{slot.location_id}/waitlist")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.index("Alvarez") < html.index("Benavides")
    assert first.reference in html and second.reference in html
    assert "mornings" in html and "open until" in html
    assert staff_client.get("/staff/waitlist").status_code == 200


def test_staff_offer_a_free_time_by_hand_and_remove_someone(
    app: Flask, staff_client: FlaskClient, clock: Clock
) -> None:
    location = make_location()
    free = make_slot(location, days_ahead=4, capacity=1)
    entry = join(location)
    path = f"/staff/locations/{location.id}/waitlist"
    html = staff_client.get(path).get_data(as_text=True)
    assert re.search(rf'<option value="{free.id}">', html)
    token = csrf_token(staff_client, path)
    answer = staff_client.post(
        f"/staff/waitlist/{entry.id}/offer", data={"csrf_token": token, "slot_id": free.id}
    )
    assert answer.status_code == 303
    (offer,) = offers_of(free.id)
    assert offer.entry_id == entry.id and offer.offered_by == "front@clinic.test"
    assert [t.to_phone for t in offer_texts()] == [entry.patient.phone]
    removed = staff_client.post(
        f"/staff/waitlist/{entry.id}/remove", data={"csrf_token": token, "note": "asked by phone"}
    )
    assert removed.status_code == 303
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, entry.id).status == WaitlistStatus.REMOVED
    assert offers_of(free.id)[0].outcome == "declined"
    assert all(t.status == "cancelled" for t in offer_texts())
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "waitlist.remove"))
    assert audit.actor == "front@clinic.test" and audit.note == "asked by phone"
    # Removing twice says so, without an error page.
    again = staff_client.post(f"/staff/waitlist/{entry.id}/remove", data={"csrf_token": token})
    assert again.status_code == 303


def test_the_dashboard_counts_places_freed_and_refilled(
    app: Flask, staff_client: FlaskClient, clock: Clock
) -> None:
    from scheduler.appointments.lifecycle import PATIENT_WEB
    from scheduler.models import utcnow
    from scheduler.waitlist.offers import accept_offer

    location = make_location()
    early = make_slot(location, days_ahead=2, capacity=1)
    appt = make_appointment(early)
    join(location)
    cancel(appt)
    assert accept_offer(offers_of(early.id)[0].id, PATIENT_WEB, utcnow()).outcome == "accepted"
    html = staff_client.get("/staff/dashboard").get_data(as_text=True)
    block = html[html.index(location.name) :]
    assert re.search(r"Places freed \(last 30 days\)</dt><dd>1<", block)
    assert re.search(r"Refilled from the waitlist \(last 30 days\)</dt><dd>1<", block)

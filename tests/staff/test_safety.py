"""Sessions end on the server, redirects stay inside, irreversible actions ask first."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import Appointment, AppointmentNote, Location, OpeningRule
from scheduler.sms.texts import TemplateError, check_text_size
from scheduler.staff.access import safe_next
from tests.factories import make_appointment, make_slot, seeded_clinic
from tests.staff.conftest import csrf_token, post

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


def test_a_cookie_copied_before_sign_out_stops_working(
    clock: Any, app: Flask, staff_client: FlaskClient
) -> None:
    appt = make_appointment(make_slot())
    copied = staff_client.get_cookie("session")
    assert copied is not None
    post(staff_client, "/staff/logout")
    thief = app.test_client()
    thief.set_cookie("session", copied.value)
    assert thief.get("/staff/").status_code == 302  # back to the sign-in page
    response = thief.post(
        f"/staff/appointments/{appt.id}/notes",
        data={"body": "written after sign-out", "version": "1", "csrf_token": "x"},
    )
    assert response.status_code in (302, 400)
    assert db.session.scalar(select(AppointmentNote)) is None


@pytest.mark.parametrize(
    "target",
    [
        "/staff/../x",
        "/staff/%2e%2e/x",
        "/staff/..%2fx",
        "/staff/./../../etc",
        "//evil.example/staff/",
        "https://evil.example/staff/",
        "/staffing",
        "/staff",
        "/staff/\\evil",
    ],
)
def test_redirect_targets_are_normalised_before_the_check(target: str) -> None:
    assert safe_next(target, "/staff/") == "/staff/"


def test_redirect_targets_inside_the_workspace_are_followed() -> None:
    assert safe_next("/staff/calendar?date=2026-12-01", "/") == "/staff/calendar?date=2026-12-01"
    assert safe_next("/staff/./appointments//3", "/") == "/staff/appointments/3"


def test_sign_in_with_a_dotted_next_lands_on_the_workspace(app: Flask, scheduler_user: Any) -> None:
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/staff/login?next=/staff/../x",
        data={
            "email": scheduler_user.email,
            "password": "correct horse battery staple",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/staff/"


def test_cancelling_asks_first_and_says_the_patient_is_texted(
    clock: Any, staff_client: FlaskClient
) -> None:
    appt = make_appointment(make_slot(), sms_consent=True)
    page = staff_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert f'href="/staff/appointments/{appt.id}/cancel?version=1"' in page
    confirm = staff_client.get(f"/staff/appointments/{appt.id}/cancel?version=1")
    html = confirm.get_data(as_text=True)
    assert "gets a text now" in html and "cannot be undone" in html
    assert "Yes, cancel it and text the patient" in html
    # A single tap (a POST without the confirmation) changes nothing and asks.
    tap = post(staff_client, f"/staff/appointments/{appt.id}/cancel", {"version": "1"})
    assert tap.status_code == 200 and "cannot be undone" in tap.get_data(as_text=True)
    db.session.refresh(appt)
    assert appt.status == "booked"
    fields = dict(re.findall(r'name="(version|confirm)" value="([^"]*)"', html))
    done = post(staff_client, f"/staff/appointments/{appt.id}/cancel", fields)
    assert done.status_code == 302
    db.session.refresh(appt)
    assert appt.status == "cancelled"


def test_cancelling_without_consent_says_to_call(clock: Any, staff_client: FlaskClient) -> None:
    appt = make_appointment(make_slot(), sms_consent=False)
    html = staff_client.get(f"/staff/appointments/{appt.id}/cancel").get_data(as_text=True)
    assert "is not texted" in html and "Yes, cancel it</button>" in html


def test_removing_weekly_hours_asks_first(clock: Any, admin_client: FlaskClient) -> None:
    seeded_clinic()
    rule_id = db.session.scalar(select(OpeningRule.id).order_by(OpeningRule.id))
    path = f"/staff/locations/boerne/rules/{rule_id}/delete"
    page = admin_client.get("/staff/locations/boerne/availability").get_data(as_text=True)
    assert f'href="{path}"' in page
    html = admin_client.get(path).get_data(as_text=True)
    assert "Patients can no longer book" in html and "Yes, remove these hours" in html
    assert post(admin_client, path).status_code == 200  # one tap: only the question
    assert db.session.get(OpeningRule, rule_id) is not None
    assert post(admin_client, path, {"confirm": "yes"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(OpeningRule, rule_id) is None


def test_turning_a_feed_off_asks_first(clock: Any, admin_client: FlaskClient) -> None:
    seeded_clinic()
    post(admin_client, "/staff/locations/boerne/feed")
    page = admin_client.get("/staff/locations/boerne/availability").get_data(as_text=True)
    assert 'href="/staff/locations/boerne/feed/off"' in page
    html = admin_client.get("/staff/locations/boerne/feed/off").get_data(as_text=True)
    assert "stops getting" in html and "Yes, turn the feed off" in html
    location = db.session.scalar(select(Location).where(Location.slug == "boerne"))
    tap = post(admin_client, "/staff/locations/boerne/feed", {"revoke": "y"})
    assert "Yes, turn the feed off" in tap.get_data(as_text=True)
    db.session.refresh(location)
    assert location.feed_token_hash is not None
    post(admin_client, "/staff/locations/boerne/feed", {"revoke": "y", "confirm": "yes"})
    db.session.refresh(location)
    assert location.feed_token_hash is None


def test_nothing_is_cancelled_for_a_stale_confirmation(
    clock: Any, staff_client: FlaskClient
) -> None:
    appt = make_appointment(make_slot())
    response = post(
        staff_client,
        f"/staff/appointments/{appt.id}/cancel",
        {"version": "7", "confirm": "yes"},
        follow_redirects=True,
    )
    assert "Someone else changed" in response.get_data(as_text=True)
    assert db.session.get(Appointment, appt.id).status == "booked"


def test_a_template_that_can_grow_past_four_segments_cannot_be_saved(
    app: Flask, admin_client: FlaskClient
) -> None:
    long = "Hola {first_name}, " + "su cita está confirmada. " * 12
    response = post(admin_client, "/staff/texts/sms_reminder/es", {"body": long})
    assert response.status_code == 422
    assert "at most 4 are allowed" in response.get_data(as_text=True)
    with app.test_request_context(), pytest.raises(TemplateError, match="1600"):
        check_text_size("sms_reminder", "x" * 1601, None, "en")


def test_the_instructions_editor_refuses_placeholders(admin_client: FlaskClient) -> None:
    body = "Bring your ID, {last_name}."
    response = post(admin_client, "/staff/texts/preconsult_instructions/en", {"body": body})
    assert response.status_code == 422
    assert "Unknown placeholder {last_name}" in response.get_data(as_text=True)

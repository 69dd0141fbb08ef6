"""Every staff route needs a signed-in account; admin routes an admin; every form CSRF."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scheduler.extensions import db
from scheduler.models import InboundMessage, Location, ScheduleException, StaffUser
from tests.conftest import Clock, make_app
from tests.factories import make_appointment, make_slot, seeded_clinic
from tests.staff.conftest import PASSWORD, csrf_token, make_staff, sign_in

PUBLIC = {"staff.login", "staff.login_code", "staff.calendar_feed"}
ADMIN_ONLY = {
    "staff.users",
    "staff.toggle_user",
    "staff.texts",
    "staff.edit_text",
    "staff.preview_text",
    "staff.audit_log",
    "staff.rotate_feed",
    "staff.confirm_feed_off",
    "staff.edit_location",
    "staff.edit_user",
    "staff.reset_user_totp",
}
# Route arguments that name something at one location: a scoped account gets 404 on
# every route taking one that belongs to another location.
LOCATION_ARGUMENTS = {
    "appointment_id",
    "slot_id",
    "slug",
    "rule_id",
    "exception_id",
    "patient_id",
    "message_id",
}
DEFAULT_VALUES = {
    "appointment_id": 1,
    "slot_id": 1,
    "status": "arrived",
    "slug": "boerne",
    "rule_id": 1,
    "exception_id": 1,
    "user_id": 1,
    "patient_id": 1,
    "message_id": 1,
    "action": "block",
    "key": "sms_reminder",
    "language": "en",
    "token": "x" * 20,
}


def staff_routes(app: Flask, values: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(endpoint, method, concrete path) for every staff route in the URL map."""
    values = {**DEFAULT_VALUES, **(values or {})}
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("staff."):
            continue
        args = {name: values[name] for name in rule.arguments if name not in rule.defaults or {}}
        if rule.endpoint == "staff.toggle_user":
            args["action"] = "disable"
        path = app.url_map.bind("localhost").build(rule.endpoint, args)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, path))
    return routes


def test_the_url_map_lists_the_routes_these_tests_cover(app: Flask) -> None:
    endpoints = {endpoint for endpoint, _, _ in staff_routes(app)}
    assert len(endpoints) >= 25
    assert ADMIN_ONLY <= endpoints and PUBLIC <= endpoints


def test_anonymous_visitors_are_sent_to_sign_in_everywhere(app: Flask) -> None:
    seeded_clinic()
    client = app.test_client()
    token = csrf_token(client)  # a valid token for this anonymous session
    for endpoint, method, path in staff_routes(app):
        if endpoint in PUBLIC:
            continue
        response = client.open(path, method=method, data={"csrf_token": token, "version": "1"})
        assert response.status_code == 302, (endpoint, method, response.status_code)
        assert response.headers["Location"].startswith("/staff/login?next="), endpoint


def test_schedulers_cannot_use_admin_routes(app: Flask, staff_client: FlaskClient) -> None:
    seeded_clinic()
    make_staff("other@clinic.test")
    token = csrf_token(staff_client, "/staff/")
    for endpoint, method, path in staff_routes(app):
        if endpoint not in ADMIN_ONLY:
            continue
        response = staff_client.open(path, method=method, data={"csrf_token": token})
        assert response.status_code == 403, (endpoint, method, response.status_code)


def test_schedulers_reach_every_calendar_page(app: Flask, staff_client: FlaskClient) -> None:
    seeded_clinic()
    make_appointment(make_slot(db.session.get(type(seeded_clinic()[0]), 1), days_ahead=3))
    # The recovery codes show once, right after two-step sign-in is turned on.
    elsewhere = {"staff.export_csv", "staff.totp_recovery_codes"}
    for endpoint, method, path in staff_routes(app):
        if method != "GET" or endpoint in ADMIN_ONLY | PUBLIC | elsewhere:
            continue
        response = staff_client.get(path)
        assert response.status_code == 200, (endpoint, path, response.status_code)
        assert response.headers["Cache-Control"] == "no-store"


def test_admins_reach_admin_pages(app: Flask, admin_client: FlaskClient) -> None:
    seeded_clinic()
    for path in ("/staff/users", "/staff/texts", "/staff/audit", "/staff/texts/sms_reminder/es"):
        assert admin_client.get(path).status_code == 200, path


def test_every_staff_form_needs_its_csrf_token(app: Flask, admin_client: FlaskClient) -> None:
    seeded_clinic()
    for endpoint, method, path in staff_routes(app):
        if method != "POST" or endpoint == "staff.login":
            continue
        response = admin_client.post(path, data={"version": "1"})
        assert response.status_code == 400, (endpoint, response.status_code)
        assert "form has expired" in response.get_data(as_text=True)
    # The sign-in form too.
    response = app.test_client().post("/staff/login", data={"email": "a@b.c", "password": "x"})
    assert response.status_code == 400


def test_sign_in_errors_never_tell_whether_an_account_exists(
    app: Flask, scheduler_user: StaffUser
) -> None:
    client = app.test_client()
    wrong_password = sign_in(client, scheduler_user, password="not the password")
    nobody = client.post(
        "/staff/login",
        data={
            "email": "nobody@clinic.test",
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    scheduler_user.is_enabled = False
    db.session.commit()
    disabled = sign_in(client, scheduler_user)
    texts = set()
    for response in (wrong_password, nobody, disabled):
        assert response.status_code == 401
        texts.add(re.search(r'class="error"[^>]*>([^<]+)', response.get_data(as_text=True))[1])
    assert texts == {"That email and password do not match an active account."}


@pytest.mark.parametrize(
    ("next_url", "lands_on"),
    [
        ("/staff/dashboard", "/staff/dashboard"),
        ("https://evil.example/staff/", "/staff/"),
        ("//evil.example/staff/", "/staff/"),
        ("/\\evil.example", "/staff/"),
        ("/manage/x", "/staff/"),
        ("javascript:alert(1)", "/staff/"),
    ],
)
def test_next_redirects_only_inside_the_workspace(
    app: Flask, scheduler_user: StaffUser, next_url: str, lands_on: str
) -> None:
    client = app.test_client()
    response = client.post(
        "/staff/login",
        query_string={"next": next_url},
        data={
            "email": "FRONT@clinic.test ",
            "password": PASSWORD,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == lands_on


def test_session_cookie_flags_and_idle_expiry(app: Flask, scheduler_user: StaffUser) -> None:
    assert app.config["PUBLIC_BASE_URL"].startswith("https://")
    assert app.config["SESSION_COOKIE_SECURE"] is True  # derived from the public address
    plain = make_app(app.config["DATABASE_URL"], PUBLIC_BASE_URL="http://127.0.0.1:5000")
    assert plain.config["SESSION_COOKIE_SECURE"] is False
    client = app.test_client()
    response = sign_in(client, scheduler_user)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert app.permanent_session_lifetime == timedelta(minutes=app.config["STAFF_IDLE_MINUTES"])
    assert "Expires=" in cookie


@pytest.mark.clock(datetime(2026, 12, 1, 15, 0, tzinfo=UTC), tick=False)
def test_an_idle_session_expires(clock: Clock, app: Flask, scheduler_user: StaffUser) -> None:
    client = app.test_client()
    sign_in(client, scheduler_user)
    assert client.get("/staff/dashboard").status_code == 200
    clock.move_to("2026-12-01T15:25:00Z")
    assert client.get("/staff/dashboard").status_code == 200  # activity renews it
    clock.move_to("2026-12-01T15:56:00Z")
    assert client.get("/staff/dashboard").status_code == 302


def test_disabling_an_account_signs_it_out(
    app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    assert staff_client.get("/staff/dashboard").status_code == 200
    user = db.session.get(StaffUser, scheduler_user.id)
    user.is_enabled = False
    db.session.commit()
    assert staff_client.get("/staff/dashboard").status_code == 302


def location_objects(location: Location) -> dict[str, Any]:
    """One of each thing a route can name, at ``location``."""
    slot = make_slot(location, days_ahead=4)
    appt = make_appointment(slot)
    exception = ScheduleException(day=date(2031, 1, 7), kind="closed", reason="test")
    location.exceptions.append(exception)
    reply = InboundMessage(
        provider_sid=f"SM{location.slug.replace('-', ''):0>32}",
        from_phone=appt.patient.phone,
        to_phone="+12105550100",
        body="Running 10 minutes late",
        action="other",
        appointment_id=appt.id,
    )
    db.session.add(reply)
    db.session.commit()
    return {
        "message_id": reply.id,
        "appointment_id": appt.id,
        "slot_id": make_slot(location, days_ahead=5).id,
        "slug": location.slug,
        "rule_id": location.opening_rules[0].id,
        "exception_id": exception.id,
        "patient_id": appt.patient_id,
    }


def location_routes(app: Flask, values: dict[str, Any]) -> list[tuple[str, str, str]]:
    names_location = {
        rule.endpoint for rule in app.url_map.iter_rules() if rule.arguments & LOCATION_ARGUMENTS
    }
    return [
        (endpoint, method, path)
        for endpoint, method, path in staff_routes(app, values)
        if endpoint in names_location and endpoint not in ADMIN_ONLY | PUBLIC
    ]


def test_a_scoped_scheduler_gets_404_on_every_object_of_another_location(
    app: Flask, scheduler_user: StaffUser
) -> None:
    boerne, kerrville, _ = seeded_clinic()
    user = db.session.get(StaffUser, scheduler_user.id)
    user.locations = [boerne]
    db.session.commit()
    own, other = location_objects(boerne), location_objects(kerrville)
    client = app.test_client()
    assert sign_in(client, user).status_code == 302
    token = csrf_token(client, "/staff/")
    form = {"csrf_token": token, "version": "1", "into": str(own["patient_id"])}
    routes = location_routes(app, other)
    assert len({endpoint for endpoint, _, _ in routes}) >= 15
    for endpoint, method, path in routes:
        response = client.open(path, method=method, data=form)
        assert response.status_code == 404, (endpoint, method, path, response.status_code)
    # The same routes on the account's own location are there (the 404s are the scope's).
    for endpoint, method, path in location_routes(app, own):
        if method == "GET":
            response = client.get(path)
            assert response.status_code == 200, (endpoint, path, response.status_code)
    for path in (
        "/staff/calendar?location=kerrville",
        "/staff/calendar?view=week&location=kerrville",
        "/staff/export.csv?location=kerrville",
        f"/staff/appointments/{own['appointment_id']}/reschedule?location=kerrville",
    ):
        assert client.get(path).status_code == 404, path
    assert client.get("/staff/export.csv?location=boerne").status_code == 200
    # Lists leave the other locations out: the calendar, the dashboard, the search.
    for path in ("/staff/calendar", "/staff/calendar?view=week", "/staff/dashboard"):
        html = client.get(path).get_data(as_text=True)
        assert "Boerne" in html and "Kerrville" not in html, path
    found = client.get("/staff/appointments?q=Garza").get_data(as_text=True)
    refs = set(re.findall(r"\b[A-Z]{3}-[0-9A-Z]{4}\b", found))
    assert refs and all(ref.startswith(f"{boerne.code}-") for ref in refs), refs


def test_unscoped_schedulers_and_admins_see_every_location(
    app: Flask, staff_client: FlaskClient, admin_client: FlaskClient, admin_user: StaffUser
) -> None:
    boerne, kerrville, _ = seeded_clinic()
    admin = db.session.get(StaffUser, admin_user.id)
    admin.locations = [boerne]  # ignored: admins see all
    db.session.commit()
    other = location_objects(kerrville)
    for client in (staff_client, admin_client):
        assert client.get(f"/staff/appointments/{other['appointment_id']}").status_code == 200
        assert client.get("/staff/locations/kerrville/availability").status_code == 200
        assert "Kerrville" in client.get("/staff/dashboard").get_data(as_text=True)

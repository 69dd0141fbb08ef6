from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scheduler.extensions import db
from scheduler.models import Appointment, StaffUser
from scheduler.staff.access import new_staff_user
from tests.factories import book, booking_request, days_from_today, local_instant, make_slot

PASSWORD = "correct horse battery staple"


class FreshContextClient(FlaskClient):
    """Each request in its own app context, as in production.

    The ``app`` fixture keeps an app context pushed for the whole test, and a
    request would reuse it: ``g`` (Flask-Login's cached user, Flask-WTF's
    cached token) and the database session would carry over between requests.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(autouse=True)
def fresh_context_client(app: Flask) -> None:
    app.test_client_class = FreshContextClient


CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def make_staff(email: str = "front@clinic.test", role: str = "scheduler") -> StaffUser:
    user = new_staff_user(email, role, PASSWORD)
    db.session.commit()
    return user


def csrf_token(client: FlaskClient, path: str = "/staff/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = CSRF.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client: FlaskClient, user: StaffUser, password: str = PASSWORD) -> Any:
    return client.post(
        "/staff/login",
        data={"email": user.email, "password": password, "csrf_token": csrf_token(client)},
    )


@pytest.fixture
def scheduler_user(app: Flask) -> StaffUser:
    return make_staff()


@pytest.fixture
def admin_user(app: Flask) -> StaffUser:
    return make_staff("admin@clinic.test", "admin")


@pytest.fixture
def staff_client(app: Flask, scheduler_user: StaffUser) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, scheduler_user).status_code == 302
    return client


@pytest.fixture
def admin_client(app: Flask, admin_user: StaffUser) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, admin_user).status_code == 302
    return client


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    """POST a staff form with a valid CSRF token, as the browser would."""
    token = csrf_token(client, "/staff/")
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kw)


def appointment_today(**overrides: Any) -> Appointment:
    """An appointment earlier today (booked a day before): the front desk can mark it."""
    slot = make_slot(starts_at=local_instant(days_from_today(0), time(0, 30)))
    return book(booking_request(slot, **overrides), now=slot.starts_at - timedelta(days=1))

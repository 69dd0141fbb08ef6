"""Staff accounts that hold: own password change and the TOTP second factor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import check_password_hash

from scheduler.extensions import db, limiter
from scheduler.models import AuditEntry, RecoveryCode, StaffUser
from tests.conftest import Clock
from tests.factories import seeded_clinic
from tests.staff.conftest import CSRF, PASSWORD, csrf_token, make_staff, post, sign_in

NEW_PASSWORD = "a different long passphrase"
# Off the 30-second TOTP boundaries, so that a step does not change mid-test.
START = datetime(2026, 12, 1, 15, 0, 5, tzinfo=UTC)


def fresh(user: StaffUser) -> StaffUser:
    db.session.expire_all()
    found = db.session.get(StaffUser, user.id)
    assert found is not None
    return found


def last_audit() -> AuditEntry:
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    return entry


# --- Password -------------------------------------------------------------------------


def change_password(client: FlaskClient, current: str, new: str, again: str | None = None) -> Any:
    return post(
        client,
        "/staff/account/password",
        {"current_password": current, "new_password": new, "confirm_password": again or new},
    )


def test_staff_change_their_own_password_and_other_sessions_end(
    app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    elsewhere = app.test_client()
    assert sign_in(elsewhere, scheduler_user).status_code == 302
    response = change_password(staff_client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert check_password_hash(fresh(scheduler_user).password_hash, NEW_PASSWORD)
    assert staff_client.get("/staff/dashboard").status_code == 200  # this session stays
    assert elsewhere.get("/staff/dashboard").status_code == 302  # the other one ended
    entry = last_audit()
    assert (entry.action, entry.actor, entry.target_label) == (
        "staff.password",
        scheduler_user.email,
        scheduler_user.email,
    )
    assert NEW_PASSWORD not in str(entry.details)


@pytest.mark.parametrize(
    ("current", "new", "again", "message", "field"),
    [
        ("not my password at all", NEW_PASSWORD, None, "not your current password", "current"),
        (PASSWORD, "too short", None, "at least 12 characters", "new"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "not the same", "confirm"),
        (PASSWORD, PASSWORD, None, "other than the current one", "new"),
    ],
)
def test_a_password_change_needs_the_current_password_and_keeps_the_rules(
    app: Flask,
    staff_client: FlaskClient,
    scheduler_user: StaffUser,
    current: str,
    new: str,
    again: str | None,
    message: str,
    field: str,
) -> None:
    response = change_password(staff_client, current, new, again)
    assert response.status_code == 422
    error = re.search(r'<p class="error" id="([a-z_]+)_password-error">([^<]+)', response.text)
    assert error and error.group(1) == field and message in error.group(2)
    assert check_password_hash(fresh(scheduler_user).password_hash, PASSWORD)
    assert staff_client.get("/staff/dashboard").status_code == 200


# --- TOTP -----------------------------------------------------------------------------


def turn_on_totp(client: FlaskClient, user: StaffUser) -> tuple[str, list[str]]:
    """Through the pages: the setup page, a code from the app, the recovery codes."""
    page = client.get("/staff/account/two-step").get_data(as_text=True)
    assert "<svg" in page  # the QR code, inline
    secret = fresh(user).totp_secret
    assert secret and " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in page
    token = CSRF.search(page)
    assert token
    response = client.post(
        "/staff/account/two-step",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": token.group(1)},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/account/two-step/recovery-codes"
    codes_page = client.get("/staff/account/two-step/recovery-codes").get_data(as_text=True)
    codes = re.findall(r"<code>([2-9A-Z]{5}-[2-9A-Z]{5})</code>", codes_page)
    return secret, codes


def enter_code(client: FlaskClient, code: str) -> Any:
    return client.post(
        "/staff/login/code",
        data={"code": code, "csrf_token": csrf_token(client, "/staff/login/code")},
    )


@pytest.mark.clock(START, tick=False)
def test_setting_up_totp_needs_a_code_and_shows_ten_recovery_codes_once(
    clock: Clock, app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    staff_client.get("/staff/account/two-step")
    secret = fresh(scheduler_user).totp_secret
    wrong = post(staff_client, "/staff/account/two-step", {"code": "000000"})
    assert wrong.status_code == 422 and "does not match" in wrong.get_data(as_text=True)
    assert not fresh(scheduler_user).has_totp
    assert fresh(scheduler_user).totp_secret == secret  # a wrong code keeps the setup
    secret, codes = turn_on_totp(staff_client, scheduler_user)
    assert len(codes) == 10 and len(set(codes)) == 10
    user = fresh(scheduler_user)
    assert user.has_totp
    stored = db.session.scalars(
        select(RecoveryCode.code_hash).where(RecoveryCode.staff_user_id == user.id)
    ).all()
    assert len(stored) == 10 and not set(codes) & set(stored)  # hashed, never kept as typed
    again = staff_client.get("/staff/account/two-step/recovery-codes")
    assert again.status_code == 302  # shown once
    assert staff_client.get("/staff/dashboard").status_code == 200  # still signed in here
    assert last_audit().action == "staff.totp_on"


@pytest.mark.clock(START, tick=False)
def test_sign_in_asks_for_the_code_after_the_password_and_accepts_each_code_once(
    clock: Clock, app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    secret, _ = turn_on_totp(staff_client, scheduler_user)
    clock.shift(timedelta(seconds=30))  # the setup's code is used: a new step
    client = app.test_client()
    response = sign_in(client, scheduler_user)
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login/code"
    assert client.get("/staff/dashboard").status_code == 302  # not signed in yet
    assert enter_code(client, "123456").status_code == 401
    code = pyotp.TOTP(secret).now()
    assert enter_code(client, code).status_code == 302
    assert client.get("/staff/dashboard").status_code == 200
    assert fresh(scheduler_user).last_login_at is not None
    # The same code, inside its 30 seconds, in another sign-in: refused (no replay).
    replay = app.test_client()
    sign_in(replay, scheduler_user)
    assert enter_code(replay, code).status_code == 401
    assert replay.get("/staff/dashboard").status_code == 302
    # The next step's code works; the previous one (still in the drift window) does not.
    clock.shift(timedelta(seconds=30))
    assert enter_code(replay, code).status_code == 401
    assert enter_code(replay, pyotp.TOTP(secret).now()).status_code == 302
    assert replay.get("/staff/dashboard").status_code == 200


@pytest.mark.clock(START, tick=False)
def test_a_recovery_code_signs_in_once(
    clock: Clock, app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    _, codes = turn_on_totp(staff_client, scheduler_user)
    client = app.test_client()
    sign_in(client, scheduler_user)
    assert enter_code(client, codes[3].lower().replace("-", " ")).status_code == 302
    again = app.test_client()
    sign_in(again, scheduler_user)
    assert enter_code(again, codes[3]).status_code == 401
    assert enter_code(again, codes[4]).status_code == 302
    assert last_audit().action == "staff.recovery_code_used"
    assert "8 recovery codes left" in again.get("/staff/account").get_data(as_text=True)


@pytest.mark.clock(START, tick=False)
def test_the_code_step_expires_and_needs_the_password_first(
    clock: Clock, app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    secret, _ = turn_on_totp(staff_client, scheduler_user)
    stranger = app.test_client()
    response = stranger.get("/staff/login/code")
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login"
    client = app.test_client()
    sign_in(client, scheduler_user)
    token = csrf_token(client, "/staff/login/code")
    clock.shift(timedelta(minutes=6))
    response = client.post(
        "/staff/login/code", data={"code": pyotp.TOTP(secret).now(), "csrf_token": token}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login"
    assert client.get("/staff/dashboard").status_code == 302


@pytest.mark.clock(START, tick=False)
def test_turning_totp_off_needs_the_password_and_a_code(
    clock: Clock, app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    secret, _ = turn_on_totp(staff_client, scheduler_user)
    clock.shift(timedelta(seconds=30))
    code = pyotp.TOTP(secret).now()
    wrong = post(staff_client, "/staff/account/two-step/off", {"password": "wrong", "code": code})
    assert wrong.status_code == 422 and fresh(scheduler_user).has_totp
    ok = post(staff_client, "/staff/account/two-step/off", {"password": PASSWORD, "code": code})
    assert ok.status_code == 302
    user = fresh(scheduler_user)
    assert not user.has_totp and user.totp_secret is None
    assert db.session.scalar(select(RecoveryCode.id)) is None
    assert last_audit().action == "staff.totp_off"
    client = app.test_client()
    assert sign_in(client, scheduler_user).headers["Location"] == "/staff/"


@pytest.fixture
def app_config(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    config = dict(getattr(request, "param", {}))
    yield config
    if config.get("RATELIMIT_ENABLED"):
        limiter.reset()


@pytest.mark.parametrize("app_config", [{"TOTP_REQUIRED_FOR_ADMINS": True}], indirect=True)
@pytest.mark.clock(START, tick=False)
def test_admins_must_set_up_totp_when_the_setting_says_so(
    clock: Clock, app: Flask, admin_client: FlaskClient, staff_client: FlaskClient
) -> None:
    for path in ("/staff/", "/staff/users", "/staff/account"):
        response = admin_client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] == "/staff/account/two-step"
    assert admin_client.get("/staff/account/two-step").status_code == 200
    assert staff_client.get("/staff/dashboard").status_code == 200  # schedulers: optional
    admin = db.session.scalar(select(StaffUser).where(StaffUser.role == "admin"))
    turn_on_totp(admin_client, admin)
    assert admin_client.get("/staff/users").status_code == 200


@pytest.mark.parametrize(
    "app_config", [{"RATELIMIT_ENABLED": True, "RATELIMIT_LOGIN": "5 per minute"}], indirect=True
)
@pytest.mark.clock(START, tick=False)
def test_the_code_step_is_rate_limited_like_sign_in(clock: Clock, app: Flask) -> None:
    user = make_staff()
    user.totp_secret, user.totp_enabled_at = pyotp.random_base32(), START
    db.session.commit()
    client = app.test_client()
    assert sign_in(client, user).status_code == 302
    statuses = [enter_code(client, "000000").status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert enter_code(client, pyotp.TOTP(user.totp_secret).now()).status_code == 429
    # From another address, the same account's codes are still counted together.
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert sign_in(other, user).status_code == 302
    assert enter_code(other, pyotp.TOTP(user.totp_secret).now()).status_code == 429


def test_admins_scope_accounts_to_locations_on_the_users_page(
    app: Flask, admin_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    boerne, kerrville, _ = seeded_clinic()
    prefix = f"a{scheduler_user.id}"
    response = post(
        admin_client,
        f"/staff/users/{scheduler_user.id}",
        {f"{prefix}-role": "scheduler", f"{prefix}-locations": [str(boerne.id), str(kerrville.id)]},
    )
    assert response.status_code == 302
    assert [loc.name for loc in fresh(scheduler_user).locations] == ["Boerne", "Kerrville"]
    page = admin_client.get("/staff/users").get_data(as_text=True)
    assert f'<input checked id="{prefix}-locations-0"' in page
    log = admin_client.get("/staff/audit").get_data(as_text=True)
    assert "Admin changed front@clinic.test&#39;s account." in log
    assert "locations: all → Boerne, Kerrville" in log
    # Unticking every location gives every location back; an unknown location is refused.
    post(admin_client, f"/staff/users/{scheduler_user.id}", {f"{prefix}-role": "scheduler"})
    assert fresh(scheduler_user).locations == []
    refused = post(
        admin_client,
        f"/staff/users/{scheduler_user.id}",
        {f"{prefix}-role": "scheduler", f"{prefix}-locations": "999"},
    )
    assert refused.status_code == 302 and fresh(scheduler_user).locations == []

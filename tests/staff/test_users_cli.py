"""`flask users create`: the password is prompted for or piped, never an argument."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from werkzeug.security import check_password_hash

from scheduler.extensions import db
from scheduler.models import AuditEntry, StaffUser, utcnow
from tests.factories import seeded_clinic
from tests.staff.conftest import make_staff, sign_in


def test_create_reads_the_password_from_standard_input(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "--email", " Ana.Reyes@FreedomSpine.com ", "--role", "admin"],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert "a long enough password" not in result.output
    user = db.session.scalar(select(StaffUser))
    assert (user.email, user.role, user.is_enabled) == ("ana.reyes@freedomspine.com", "admin", True)
    assert check_password_hash(user.password_hash, "a long enough password")
    entry = db.session.scalar(select(AuditEntry))
    assert (entry.action, entry.actor, entry.target_label) == (
        "staff.create",
        "system (command line)",
        user.email,
    )


def test_create_refuses_short_passwords_duplicates_and_bad_roles(app: Flask) -> None:
    runner = app.test_cli_runner()
    short = runner.invoke(args=["users", "create", "--email", "a@b.com"], input="short\n")
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    ok = runner.invoke(args=["users", "create", "--email", "a@b.com"], input="x" * 12 + "\n")
    assert ok.exit_code == 0 and "created scheduler account a@b.com" in ok.output
    again = runner.invoke(args=["users", "create", "--email", "A@B.com"], input="y" * 12 + "\n")
    assert again.exit_code != 0 and "already an account" in again.output
    role = runner.invoke(args=["users", "create", "--email", "c@b.com", "--role", "owner"])
    assert role.exit_code != 0
    assert "--password" not in runner.invoke(args=["users", "create", "--help"]).output


def test_list_shows_role_enabled_locations_two_step_and_last_sign_in(
    app: Flask, runner: Any
) -> None:
    [boerne, kerrville, _] = seeded_clinic()
    admin = make_staff("boss@clinic.test", "admin")
    front = make_staff("front@clinic.test")
    front.locations = [boerne, kerrville]
    front.last_login_at = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    admin.totp_secret, admin.totp_enabled_at = "JBSWY3DPEHPK3PXP", utcnow()
    away = make_staff("away@clinic.test")
    away.is_enabled = False
    db.session.commit()
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "ENABLED", "LOCATIONS", "2FA", "LAST", "SIGN-IN"]
    by_email = {line.split()[0]: line for line in lines[1:]}
    assert by_email.keys() == {"away@clinic.test", "boss@clinic.test", "front@clinic.test"}
    assert by_email["front@clinic.test"].split()[1:6] == [
        "scheduler",
        "yes",
        "Boerne,",
        "Kerrville",
        "off",
    ]
    assert by_email["front@clinic.test"].endswith("2026-12-01 09:30 CST")  # Central time
    assert by_email["boss@clinic.test"].split()[1:6] == ["admin", "yes", "all", "(admin)", "on"]
    assert by_email["away@clinic.test"].split()[1:3] == ["scheduler", "no"]
    assert by_email["away@clinic.test"].endswith("never")


def test_set_password_from_standard_input_signs_the_account_out(app: Flask, runner: Any) -> None:
    user = make_staff()
    client = app.test_client()
    assert sign_in(client, user).status_code == 302
    assert client.get("/staff/dashboard").status_code == 200
    result = runner.invoke(
        args=["users", "set-password", "FRONT@clinic.test", "--stdin"],
        input="a brand new passphrase\n",
    )
    assert result.exit_code == 0, result.output
    assert "a brand new passphrase" not in result.output
    db.session.expire_all()
    user = db.session.scalar(select(StaffUser))
    assert check_password_hash(user.password_hash, "a brand new passphrase")
    assert client.get("/staff/dashboard").status_code == 302  # the old session is over
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.action, entry.actor, entry.target_label) == (
        "staff.password",
        "system (command line)",
        "front@clinic.test",
    )


def test_set_password_prompts_twice_and_keeps_the_rules(app: Flask, runner: Any) -> None:
    user = make_staff()
    old_hash = user.password_hash
    mismatch = runner.invoke(
        args=["users", "set-password", user.email],
        input="first long password\nsecond long password\nfirst long password\n"
        "first long password\n",
    )
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output.lower()  # asked again, then accepted
    assert "first long password" not in mismatch.output  # hidden input
    db.session.expire_all()
    assert check_password_hash(
        db.session.get(StaffUser, user.id).password_hash, "first long password"
    )
    short = runner.invoke(args=["users", "set-password", user.email, "--stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    nobody = runner.invoke(
        args=["users", "set-password", "nobody@clinic.test", "--stdin"], input="x" * 12 + "\n"
    )
    assert nobody.exit_code != 0 and "no account" in nobody.output
    db.session.expire_all()
    assert db.session.get(StaffUser, user.id).password_hash != old_hash
    assert "--password" not in runner.invoke(args=["users", "set-password", "--help"]).output

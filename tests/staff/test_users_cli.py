"""`flask users create`: the password is prompted for or piped, never an argument."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select
from werkzeug.security import check_password_hash

from scheduler.extensions import db
from scheduler.models import AuditEntry, StaffUser


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

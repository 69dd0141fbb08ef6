"""Commands: flask --app wsgi seed | slots roll | messages dispatch | sms dispatch (its
alias) | waitlist offers | scheduler."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from scheduler.audit import audit
from scheduler.availability.operations import roll_slots_forward
from scheduler.database import unit_of_work
from scheduler.display import display_tz
from scheduler.extensions import current_app_object, db
from scheduler.jobs import run_scheduler
from scheduler.models import StaffRole, StaffUser, utcnow
from scheduler.seed import seed_clinic
from scheduler.sms.dispatch import Dispatcher
from scheduler.staff.access import check_password_problem, new_staff_user
from scheduler.staff.accounts import AccountError, set_password
from scheduler.waitlist.offers import run_offers


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Create the three locations, their default hours and texts, and roll slots forward."""
    done = seed_clinic(current_app.config["CLINIC_PHONE"])
    for line in done:
        click.echo(f"created {line}")
    results = roll_slots_forward()
    created = sum(r.created for r in results.values())
    click.echo(f"seed: {len(done)} records created, {created} slots added")


@click.group("slots")
def slots_group() -> None:
    """Slot maintenance."""


@slots_group.command("roll")
@with_appcontext
def roll_command() -> None:
    """Materialise slots from the weekly rules up to the booking horizon."""
    for slug, result in roll_slots_forward().items():
        click.echo(
            f"{slug}: {result.created} added, {result.removed} removed, "
            f"{len(result.orphaned)} booked slots no longer in the rules"
        )


@click.group("messages")
def messages_group() -> None:
    """Messages to patients: texts and emails."""


@click.group("sms")
def sms_group() -> None:
    """Text messages (``sms dispatch`` is ``messages dispatch``: every channel)."""


@click.command("dispatch")
@click.option(
    "--now",
    "now_text",
    metavar="ISO-8601",
    help="Send what is due as of this moment (with a zone, e.g. 2026-12-01T14:00:00Z).",
)
@with_appcontext
def dispatch_command(now_text: str | None) -> None:
    """Send the texts and emails that are due once, then exit (for cron, operations, tests).

    SIGTERM stops claiming; messages in flight are finished and recorded, waiting up to
    SMS_SHUTDOWN_WAIT_SECONDS for the database if it is away.
    """
    now = parse_instant(now_text) if now_text else None
    with Dispatcher(current_app_object()) as dispatcher:
        main = threading.current_thread() is threading.main_thread()
        previous = (
            signal.signal(signal.SIGTERM, lambda *_: dispatcher.request_stop()) if main else None
        )
        try:
            report = dispatcher.dispatch_due(now)
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
    channels = ", ".join(
        f"{count} {channel}" for channel, count in sorted(report.sent_by_channel.items())
    )
    click.echo(
        f"claimed {report.claimed}, sent {report.sent}"
        + (f" ({channels})" if channels else "")
        + f", retrying {report.retrying}, "
        f"failed {report.failed}, suppressed {report.suppressed}, "
        f"taken back {report.taken_back}, reconciled {report.reconciled}, "
        f"unrecorded {report.unrecorded}"
    )


def parse_instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 date and time") from None
    if instant.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-12-01T08:00:00-06:00 or ...Z")
    return instant.astimezone(UTC)


@click.group("waitlist")
def waitlist_group() -> None:
    """Waitlist offers."""


@waitlist_group.command("offers")
@click.option(
    "--now",
    "now_text",
    metavar="ISO-8601",
    help="Run as of this moment (with a zone, e.g. 2026-12-01T14:00:00Z).",
)
@with_appcontext
def waitlist_offers_command(now_text: str | None) -> None:
    """Run out offers past their time and send the next batch, once (for cron and tests)."""
    now = parse_instant(now_text) if now_text else utcnow()
    result = run_offers(now)
    click.echo(f"expired {result.expired}, taken {result.taken}, offered {result.sent}")


@click.group("users")
def users_group() -> None:
    """Staff accounts."""


@users_group.command("create")
@click.option("--email", required=True, help="The sign-in email.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in StaffRole]),
    default="scheduler",
    show_default=True,
)
@with_appcontext
def create_user_command(email: str, role: str) -> None:
    """Create a staff account. The password is prompted for, or read from standard input."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise click.BadParameter("give an email address", param_hint="--email")
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise click.ClickException(f"there is already an account for {email}")
    password = read_password(from_stdin=not sys.stdin.isatty())
    problem = check_password_problem(password)
    if problem:
        raise click.ClickException(problem)
    with unit_of_work():
        user = new_staff_user(email, role, password)
        db.session.flush()
        audit(
            "staff.create",
            "staff_user",
            user.id,
            email,
            actor_label="system (command line)",
            role=role,
        )
    click.echo(f"created {role} account {email}")


def read_password(from_stdin: bool) -> str:
    """The password, typed twice without echo, or the first line of standard input."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt="Password again"))


@users_group.command("list")
@with_appcontext
def list_users_command() -> None:
    """Every account: email, role, enabled, locations, two-step sign-in, last sign-in."""
    users = db.session.scalars(select(StaffUser).order_by(StaffUser.email)).all()
    rows = [("EMAIL", "ROLE", "ENABLED", "LOCATIONS", "2FA", "LAST SIGN-IN")]
    for user in users:
        if user.is_admin:
            places = "all (admin)"
        else:
            places = ", ".join(loc.name for loc in user.locations) or "all"
        rows.append(
            (
                user.email,
                user.role,
                "yes" if user.is_enabled else "no",
                places,
                "on" if user.has_totp else "off",
                (
                    user.last_login_at.astimezone(display_tz()).strftime("%Y-%m-%d %H:%M %Z")
                    if user.last_login_at
                    else "never"
                ),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())
    if not users:
        click.echo("no accounts yet: flask --app wsgi users create --email ...")


@users_group.command("set-password")
@click.argument("email")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
@with_appcontext
def set_password_command(email: str, from_stdin: bool) -> None:
    """Give an account a new password; every session of the account is signed out."""
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"there is no account for {email.strip().lower()}")
    password = read_password(from_stdin)
    try:
        with unit_of_work():
            set_password(user, password, actor_label="system (command line)")
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"new password set for {user.email}; its sessions are signed out")


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the background jobs (APScheduler) in this process until stopped."""
    run_scheduler(current_app_object())


def register_commands(app: Flask) -> None:
    app.cli.add_command(seed_command)
    app.cli.add_command(slots_group)
    app.cli.add_command(scheduler_command)
    messages_group.add_command(dispatch_command)
    sms_group.add_command(dispatch_command)
    app.cli.add_command(messages_group)
    app.cli.add_command(sms_group)
    app.cli.add_command(users_group)
    app.cli.add_command(waitlist_group)

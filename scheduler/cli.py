"""Commands: flask --app wsgi seed | slots roll | scheduler."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from scheduler.availability.operations import roll_slots_forward
from scheduler.jobs import run_scheduler
from scheduler.seed import seed_clinic


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


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the background jobs (APScheduler) in this process until stopped."""
    run_scheduler(current_app._get_current_object())  # type: ignore[attr-defined]


def register_commands(app: Flask) -> None:
    app.cli.add_command(seed_command)
    app.cli.add_command(slots_group)
    app.cli.add_command(scheduler_command)

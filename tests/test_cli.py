from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from scheduler.content import CONTENT_KEYS
from scheduler.extensions import db
from scheduler.jobs import build_scheduler
from scheduler.models import ContentBlock, Location, OpeningRule, Slot
from scheduler.sms.dispatch import Dispatcher


def snapshot() -> dict[str, object]:
    locations = db.session.scalars(select(Location).order_by(Location.slug)).all()
    return {
        "locations": [(loc.slug, loc.name, loc.code, loc.address, loc.phone) for loc in locations],
        "rules": db.session.scalar(select(func.count(OpeningRule.id))),
        "texts": db.session.scalar(select(func.count(ContentBlock.id))),
        "slots": db.session.scalar(select(func.count(Slot.id))),
        "slot_ids": db.session.scalar(select(func.max(Slot.id))),
    }


def test_seed_creates_the_clinic_and_twice_changes_nothing(app: Flask, runner) -> None:
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    first = snapshot()
    assert [loc[0] for loc in first["locations"]] == ["boerne", "kerrville", "san-antonio"]
    assert [loc[2] for loc in first["locations"]] == ["BRN", "KRV", "SAT"]
    assert all("placeholder" in loc[3] for loc in first["locations"])
    assert all(loc[4] == "+12109208945" for loc in first["locations"])
    assert first["rules"] == 15  # Mon-Fri at three locations
    assert first["texts"] == 2 * len(CONTENT_KEYS)  # every text in English and Spanish
    assert first["slots"] > 3 * 50 * 18  # about 90 days of weekdays
    again = runner.invoke(args=["seed"])
    assert again.exit_code == 0
    assert "0 records created, 0 slots added" in again.output
    assert snapshot() == first


def test_seed_keeps_staff_edits(app: Flask, runner) -> None:
    runner.invoke(args=["seed"])
    location = db.session.scalar(select(Location).where(Location.slug == "boerne"))
    location.address = "100 Main St, Boerne, TX"
    db.session.commit()
    runner.invoke(args=["seed"])
    db.session.expire_all()
    assert db.session.get(Location, location.id).address == "100 Main St, Boerne, TX"


def test_slots_roll_reports_per_location(app: Flask, runner) -> None:
    runner.invoke(args=["seed"])
    result = runner.invoke(args=["slots", "roll"])
    assert result.exit_code == 0
    assert "kerrville: 0 added, 0 removed" in result.output


def test_scheduler_jobs_have_deliberate_settings(app: Flask) -> None:
    with Dispatcher(app) as dispatcher:
        scheduler, _ = build_scheduler(app, dispatcher)
        jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"sms_dispatch", "daily", "waitlist"}
    dispatch, daily, waitlist = jobs["sms_dispatch"], jobs["daily"], jobs["waitlist"]
    assert waitlist.trigger.interval.total_seconds() == app.config["WAITLIST_INTERVAL_SECONDS"]
    assert (waitlist.coalesce, waitlist.max_instances) == (True, 1)
    assert dispatch.trigger.interval.total_seconds() == app.config["SMS_DISPATCH_INTERVAL_SECONDS"]
    assert (dispatch.coalesce, dispatch.max_instances, dispatch.misfire_grace_time) == (
        True,
        1,
        None,
    )
    assert (daily.coalesce, daily.max_instances, daily.misfire_grace_time) == (True, 1, 3600)
    assert str(scheduler.timezone) == "America/Chicago"


@pytest.mark.clock_sensitive
def test_waitlist_offers_runs_offers_out_as_of_now(app: Flask, runner, clock) -> None:
    """``flask waitlist offers --now``: offers past their time run out, the next batch goes."""
    from datetime import timedelta

    from tests.factories import cancel, make_appointment, make_slot
    from tests.waitlist.conftest import join, offers_of

    slot = make_slot(capacity=1)
    appt = make_appointment(slot)
    for _ in range(4):
        join(slot.location)
    cancel(appt)
    assert len(offers_of(slot.id)) == 3
    later = (offers_of(slot.id)[0].expires_at + timedelta(seconds=1)).isoformat()
    result = runner.invoke(args=["waitlist", "offers", "--now", later])
    assert result.exit_code == 0, result.output
    assert "expired 3, taken 0, offered 1" in result.output
    bad = runner.invoke(args=["waitlist", "offers", "--now", "tomorrow"])
    assert bad.exit_code != 0

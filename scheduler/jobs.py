"""The background process: APScheduler 3, run by ``flask --app wsgi scheduler``.

It never runs inside web workers: with several gunicorn workers (or the
reloader) each would run every job. Jobs live in the default memory job
store (a persistent store must not be shared between processes), and each
job is idempotent, so running two of these processes is safe.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask

from scheduler.availability.operations import roll_slots_forward

log = logging.getLogger(__name__)


def in_app_context(app: Flask, job: Callable[[], object]) -> Callable[[], None]:
    @functools.wraps(job)
    def run() -> None:
        with app.app_context():
            try:
                job()
            except Exception:
                log.exception("job %s failed", job.__name__)
                raise

    return run


def roll_slots_job() -> None:
    results = roll_slots_forward()
    log.info(
        "slots rolled forward: %s",
        {slug: r.created for slug, r in results.items()},
    )


def build_scheduler(app: Flask) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=app.config["DISPLAY_TIMEZONE"])
    scheduler.add_job(
        in_app_context(app, roll_slots_job),
        CronTrigger(hour=app.config["SCHEDULER_DAILY_HOUR"], minute=5),
        id="roll_slots",
        # One run is enough after downtime; never two at once; a run missed by
        # up to an hour still happens.
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    return scheduler


def run_scheduler(app: Flask) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    in_app_context(app, roll_slots_job)()
    scheduler = build_scheduler(app)
    log.info("scheduler started with jobs: %s", [job.id for job in scheduler.get_jobs()])
    scheduler.start()

"""The background process: APScheduler 3, run by ``flask --app wsgi scheduler``.

It never runs inside web workers: with several gunicorn workers (or the
reloader) each would run every job. Jobs live in the default memory job
store (a persistent job store must never be shared between processes), and
every job is safe to run in several processes at once: texts and emails are claimed
atomically, slot roll-forward and purge are idempotent.

Besides the interval, a watcher wakes the dispatcher as soon as a text is
queued: PostgreSQL LISTEN/NOTIFY, or SQLite's data_version on the same file;
and the dispatcher's heartbeat wakes it when another dispatcher's lease runs
out (that one died), so its texts are taken back within seconds.
"""

from __future__ import annotations

import functools
import logging
import signal
import sqlite3
import threading
from collections.abc import Callable

import psycopg
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask, current_app
from sqlalchemy.engine import URL, make_url

from scheduler.availability.operations import roll_slots_forward
from scheduler.database import sqlite_file_of
from scheduler.extensions import db
from scheduler.models import utcnow
from scheduler.sms.dispatch import Dispatcher, purge_old_messages
from scheduler.sms.outbox import NOTIFY_CHANNEL
from scheduler.waitlist.offers import run_offers

log = logging.getLogger(__name__)
DISPATCH_JOB = "sms_dispatch"


def in_app_context(app: Flask, job: Callable[[], object]) -> Callable[[], None]:
    @functools.wraps(job)
    def run() -> None:
        with app.app_context():
            try:
                job()
            except Exception:
                log.exception("job %s failed", getattr(job, "__name__", job))
                raise

    return run


def daily_job() -> None:
    results = roll_slots_forward()
    log.info("slots rolled forward: %s", {slug: r.created for slug, r in results.items()})
    purged = purge_old_messages(utcnow(), current_app.config["SMS_RETENTION_DAYS"])
    log.info("purged %d texts past retention", purged)


def waitlist_job() -> None:
    """Run out waitlist offers past their time and send the next batch."""
    result = run_offers(utcnow())
    if result.expired or result.taken or result.sent:
        log.info("waitlist: %s", result)


class DispatchJob:
    """The dispatcher as a job that a wake-up during a run makes run once more."""

    def __init__(self, app: Flask, dispatcher: Dispatcher) -> None:
        self.app = app
        self.dispatcher = dispatcher
        self.again = threading.Event()
        self.running = threading.Event()
        self.__name__ = DISPATCH_JOB

    def __call__(self) -> None:
        self.running.set()
        try:
            with self.app.app_context():
                while True:
                    self.again.clear()
                    report = self.dispatcher.dispatch_due()
                    if report.claimed or report.taken_back or report.unrecorded:
                        log.info("dispatch: %s", report)
                    self.running.clear()
                    # A wake-up that came after the check in wake() is not lost.
                    if not self.again.is_set() or self.dispatcher.stopping.is_set():
                        break
                    self.running.set()
        except Exception:
            log.exception("dispatch failed")
        finally:
            self.running.clear()

    def wake(self, scheduler: BaseScheduler) -> None:
        self.again.set()
        if not self.running.is_set():
            scheduler.modify_job(DISPATCH_JOB, next_run_time=utcnow())


def build_scheduler(app: Flask, dispatcher: Dispatcher) -> tuple[BlockingScheduler, DispatchJob]:
    scheduler = BlockingScheduler(timezone=app.config["DISPLAY_TIMEZONE"])
    dispatch = DispatchJob(app, dispatcher)
    scheduler.add_job(
        dispatch,
        IntervalTrigger(seconds=app.config["SMS_DISPATCH_INTERVAL_SECONDS"]),
        id=DISPATCH_JOB,
        next_run_time=utcnow(),
        # Each run sends everything due, so one catch-up run is enough (coalesce);
        # a slow run is never overlapped here (other processes are safe by claims);
        # a late run is always worth running.
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    scheduler.add_job(
        in_app_context(app, daily_job),
        CronTrigger(hour=app.config["SCHEDULER_DAILY_HOUR"], minute=5),
        id="daily",
        # One run is enough after downtime; never two at once; a run missed by
        # up to an hour still happens (the next day's run covers the rest).
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    scheduler.add_job(
        in_app_context(app, waitlist_job),
        IntervalTrigger(seconds=app.config["WAITLIST_INTERVAL_SECONDS"]),
        id="waitlist",
        next_run_time=utcnow(),
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    # Another dispatcher's lease ran out (it died): take its texts back now.
    dispatcher.on_lease_expired = lambda: dispatch.wake(scheduler)
    return scheduler, dispatch


def watch_outbox(app: Flask, wake: Callable[[], None], stop: threading.Event) -> None:
    """Call ``wake`` soon after another process queues texts; returns when ``stop`` is set."""
    with app.app_context():
        url = make_url(app.config["DATABASE_URL"])
        sqlite_path = sqlite_file_of(db.engine)
    if url.get_backend_name() == "postgresql":
        _listen_postgresql(url.set(drivername="postgresql"), wake, stop)
    elif sqlite_path:
        _poll_sqlite(sqlite_path, wake, stop)


def _listen_postgresql(url: URL, wake: Callable[[], None], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conninfo = url.render_as_string(hide_password=False)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                while not stop.is_set():
                    if any(True for _ in conn.notifies(timeout=2.0, stop_after=1)):
                        wake()
        except psycopg.Error:
            log.warning("outbox watcher lost its connection; retrying in 5 s", exc_info=True)
            stop.wait(5)


def _poll_sqlite(path: str, wake: Callable[[], None], stop: threading.Event) -> None:
    """SQLite's data_version changes when another connection commits to the file."""
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        seen = conn.execute("PRAGMA data_version").fetchone()[0]
        while not stop.wait(0.5):
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != seen:
                seen = version
                wake()
    finally:
        conn.close()


def run_scheduler(app: Flask) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Every 15 s APScheduler would log "Running job" and "executed successfully".
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    in_app_context(app, daily_job)()
    dispatcher = Dispatcher(app)
    scheduler, dispatch = build_scheduler(app, dispatcher)
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_outbox,
        args=(app, lambda: dispatch.wake(scheduler), stop),
        name="outbox-watcher",
        daemon=True,
    )
    watcher.start()
    log.info(
        "scheduler started (SMS backend %s, mail backend %s) with jobs: %s",
        app.config["SMS_BACKEND"],
        app.config["MAIL_BACKEND"],
        [job.id for job in scheduler.get_jobs()],
    )

    def stop_gracefully(signum: int, frame: object) -> None:
        # Finish the texts in flight and record them (waiting a bounded time for the
        # database if it is away); claim nothing more.
        log.info("stopping: finishing the texts in flight")
        dispatcher.request_stop()
        stop.set()
        if scheduler.running:
            scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop_gracefully)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        dispatcher.request_stop()
        if scheduler.running:
            scheduler.shutdown(wait=True)
    finally:
        stop.set()
        dispatcher.close()

"""The scheduler process's wake-up: a queued text wakes the dispatcher at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from flask import Flask

from scheduler.jobs import DISPATCH_JOB, DispatchJob, build_scheduler, watch_outbox
from scheduler.sms.dispatch import Dispatcher
from tests.factories import book, booking_request, make_appointment, make_slot

NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


def test_a_booking_in_another_connection_wakes_the_dispatcher(app: Flask) -> None:
    slot = make_slot(days_ahead=5)
    woken = threading.Event()
    stop = threading.Event()
    watcher = threading.Thread(target=watch_outbox, args=(app, woken.set, stop), daemon=True)
    watcher.start()
    try:
        assert not woken.wait(1.0)  # nothing happened yet
        make_appointment(slot)
        assert woken.wait(5.0)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not watcher.is_alive()


def test_a_wake_during_a_run_makes_the_job_run_again(app: Flask) -> None:
    runs: list[int] = []

    class CountingDispatcher(Dispatcher):
        def dispatch_due(self, now=None):  # type: ignore[no-untyped-def]
            runs.append(1)
            if len(runs) == 1:
                job.wake(scheduler=None)  # type: ignore[arg-type]  # arrives mid-run
            return super().dispatch_due(now)

    with CountingDispatcher(app) as dispatcher:
        job = DispatchJob(app, dispatcher)
        job()
    assert len(runs) == 2
    assert not job.running.is_set()


def test_a_lease_run_out_wakes_the_scheduler_dispatcher_at_once(app: Flask) -> None:
    book(booking_request(make_slot(starts_at=NOW + timedelta(days=5))), now=NOW)
    at = [NOW]
    with Dispatcher(app, worker="dead", clock=lambda: at[0]) as dead:
        assert len(dead.claim(NOW, 10)) == 1  # and it dies
    with Dispatcher(app, clock=lambda: at[0]) as dispatcher:
        scheduler, _ = build_scheduler(app, dispatcher)
        later = datetime(2100, 1, 1, tzinfo=UTC)
        scheduler.modify_job(DISPATCH_JOB, next_run_time=later)
        dispatcher.heartbeat()
        assert scheduler.get_job(DISPATCH_JOB).next_run_time == later  # the lease holds
        at[0] += timedelta(seconds=app.config["SMS_CLAIM_LEASE_SECONDS"] + 1)
        dispatcher.heartbeat()
        assert scheduler.get_job(DISPATCH_JOB).next_run_time < later

"""The scheduler process's wake-up: a queued text wakes the dispatcher at once."""

from __future__ import annotations

import threading

from flask import Flask

from scheduler.jobs import DispatchJob, watch_outbox
from scheduler.sms.dispatch import Dispatcher
from tests.factories import make_appointment, make_slot


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

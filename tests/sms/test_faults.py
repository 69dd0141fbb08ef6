"""Exactly once through faults: the database away mid-dispatch, a stop while it is away,
and a send slower than the lease.

The database "stops" on both engines. PostgreSQL: a server of these tests' own
(tests/sms/private_postgres.py, never the shared one on 5432) is stopped with
``pg_ctl stop -m fast``, which ends every session, and started again. SQLite has no
server: another connection holds the file's write lock (``BEGIN EXCLUSIVE``) and the
app's busy timeout is cut to 0.2 s, so every write fails with "database is locked",
as it would behind a long backup or maintenance transaction. Leases and lookups run on
the real clock (the dispatchers are real, with 2 s leases); texts are dispatched as of
a fixed instant in sending hours.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from scheduler.database import sqlite_file_of
from scheduler.extensions import db
from scheduler.models import MessageAttempt, MessageStatus, OutboundMessage
from scheduler.sms.dispatch import Dispatcher, DispatchReport
from tests.conftest import make_app
from tests.factories import CHICAGO, book, booking_request, make_slot
from tests.sms import private_postgres
from tests.sms.conftest import twilio_settings
from tests.twilio_server import FakeTwilio

BOOKED = datetime(2026, 12, 1, 10, 0, tzinfo=CHICAGO).astimezone(UTC)
LEASE_S = 2
FAULT_SETTINGS = {
    "SMS_CLAIM_LEASE_SECONDS": LEASE_S,
    "SMS_HEARTBEAT_SECONDS": 0.4,
    "SMS_SEND_CONCURRENCY": 10,
    "SMS_READ_TIMEOUT_SECONDS": 5.0,
    "SMS_SHUTDOWN_WAIT_SECONDS": 30.0,
}


@pytest.fixture(scope="module")
def private_pg() -> Iterator[private_postgres.PrivatePostgres]:
    reason = private_postgres.unavailable_reason()
    if reason:
        pytest.skip(f"no private PostgreSQL server: {reason}")
    server = private_postgres.PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@dataclass
class Outage:
    """A database the test can take away and bring back."""

    url: str
    stop: Callable[[], None]
    start: Callable[[], None]


class SqliteWriteLock:
    """Another connection holding the file's write lock: every write of the app fails."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def stop(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.conn.execute("BEGIN EXCLUSIVE")

    def start(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None


@pytest.fixture(params=["sqlite", "postgresql"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "sqlite":
        path = str(tmp_path / "faults.sqlite3")
        lock = SqliteWriteLock(path)
        yield Outage(f"sqlite:///{path}", lock.stop, lock.start)
        lock.start()
        return
    server: private_postgres.PrivatePostgres = request.getfixturevalue("private_pg")
    if not server.running:
        server.start()
    yield Outage(server.create_database(), server.stop, server.start)
    if not server.running:
        server.start()


@pytest.fixture
def fault_app(outage: Outage, twilio: FakeTwilio) -> Iterator[Flask]:
    app = make_app(outage.url, **twilio_settings(twilio, **FAULT_SETTINGS))
    with app.app_context():
        db.create_all()
        if sqlite_file_of(db.engine):

            @event.listens_for(db.engine, "connect")
            def short_busy_timeout(dbapi_connection: Any, record: Any) -> None:
                dbapi_connection.execute("PRAGMA busy_timeout=200")

            db.engine.dispose()
        yield app
        db.session.remove()
        db.engine.dispose()


def queue_confirmations(count: int) -> None:
    slot = make_slot(starts_at=BOOKED + timedelta(days=8), capacity=count)
    for n in range(count):
        book(booking_request(slot, phone=f"+1830257{n:04d}"), now=BOOKED)


def dispatch_in_thread(
    app: Flask, dispatcher: Dispatcher, reports: dict[str, DispatchReport]
) -> threading.Thread:
    def run() -> None:
        with app.app_context():
            reports[dispatcher.worker] = dispatcher.dispatch_due(BOOKED)

    thread = threading.Thread(target=run, name=f"dispatch-{dispatcher.worker}", daemon=True)
    thread.start()
    return thread


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def outbox() -> list[OutboundMessage]:
    db.session.remove()
    return list(db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def assert_each_text_went_exactly_once_and_is_recorded(twilio: FakeTwilio, count: int) -> None:
    rows = outbox()
    assert len(rows) == count
    assert twilio.duplicates() == {}
    assert twilio.accepted_count() == count  # by the provider's own log
    assert {row.status for row in rows} == {MessageStatus.SENT}
    assert not any(row.possible_duplicate for row in rows)
    # Every text the provider took is recorded with the id it was given.
    assert {row.provider_sid for row in rows} == {request.sid for request in twilio.accepted}
    assert {row.to_phone for row in rows} == {request.to for request in twilio.accepted}


def test_the_database_stopped_mid_dispatch_for_longer_than_the_lease(
    fault_app: Flask, outage: Outage, twilio: FakeTwilio
) -> None:
    count = 30
    queue_confirmations(count)
    twilio.delay = 1.0
    reports: dict[str, DispatchReport] = {}
    with Dispatcher(fault_app, worker="A") as first:
        thread = dispatch_in_thread(fault_app, first, reports)
        wait_until(lambda: twilio.stats()["in_flight"] >= 5, 30, "texts are out")
        outage.stop()
        stopped = time.monotonic()
        # The texts in flight come back from the provider: their outcomes are held.
        wait_until(lambda: first.unwritten > 0, 30, "the dispatcher holds outcomes")
        time.sleep(max(0.0, 2 * LEASE_S - (time.monotonic() - stopped)))
        assert thread.is_alive()  # it waits for the database rather than give up
        held = first.unwritten
        in_flight_at_the_provider = twilio.stats()["in_flight"]
        outage.start()
        # A second dispatcher comes in at once: the first one's leases ran out meanwhile.
        with Dispatcher(fault_app, worker="B") as second:
            reports["B"] = second.dispatch_due(BOOKED)
        thread.join(timeout=60)
        assert not thread.is_alive()

    assert held > 0 and in_flight_at_the_provider == 0
    assert reports["A"].unrecorded == reports["B"].unrecorded == 0
    assert_each_text_went_exactly_once_and_is_recorded(twilio, count)
    sent_or_found = db.session.scalars(
        select(MessageAttempt.message_id).where(
            MessageAttempt.outcome.in_(["sent", "reconciled"]),
            MessageAttempt.detail.not_like("lease lost%"),
        )
    ).all()
    assert sorted(sent_or_found) == [row.id for row in outbox()]  # one settling attempt each


def test_a_dispatcher_stopped_while_the_database_is_away_waits_a_bounded_time_and_logs(
    fault_app: Flask, outage: Outage, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    count = 4
    queue_confirmations(count)
    ids = [row.id for row in outbox()]
    twilio.delay = 3.0  # the database goes away while every request is out
    fault_app.config["SMS_SHUTDOWN_WAIT_SECONDS"] = 1.0
    reports: dict[str, DispatchReport] = {}
    caplog.set_level(logging.ERROR, logger="scheduler.sms.dispatch")
    with Dispatcher(fault_app, worker="A") as first:
        thread = dispatch_in_thread(fault_app, first, reports)
        wait_until(lambda: twilio.stats()["in_flight"] == count, 30, "every text is out")
        outage.stop()
        assert twilio.stats()["in_flight"] > 0, "stopping the database took too long"
        wait_until(lambda: first.unwritten == count, 30, "every outcome is held")
        first.request_stop()  # SIGTERM
        thread.join(timeout=30)
        assert not thread.is_alive()  # gave up waiting for the database
    assert reports["A"].unrecorded == count
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text_id in ids:
        assert f"stopping without recording text {text_id}, attempt 1: accepted as" in logged
    for request in twilio.requests:
        assert request.sid in logged

    outage.start()
    # The next dispatcher takes them back when their leases run out, and finds them
    # at the provider: nothing is sent twice.
    total = DispatchReport()
    with Dispatcher(fault_app, worker="B") as second:

        def settled() -> bool:
            report = second.dispatch_due(BOOKED)
            total.taken_back += report.taken_back
            total.reconciled += report.reconciled
            total.sent += report.sent
            return total.reconciled == count

        wait_until(settled, 30, "the texts are taken back and found at the provider")
    assert (total.taken_back, total.sent) == (count, 0)
    assert_each_text_went_exactly_once_and_is_recorded(twilio, count)


@pytest.fixture
def app_config(twilio: FakeTwilio) -> dict[str, Any]:
    return twilio_settings(
        twilio, SMS_CLAIM_LEASE_SECONDS=1, SMS_HEARTBEAT_SECONDS=0.25, SMS_READ_TIMEOUT_SECONDS=10
    )


def test_a_send_slower_than_the_lease_is_never_taken_back_from_a_live_dispatcher(
    app: Flask, twilio: FakeTwilio
) -> None:
    queue_confirmations(1)
    twilio.delay = 3.0  # three leases long
    reports: dict[str, DispatchReport] = {}
    others = DispatchReport()
    with Dispatcher(app, worker="slow") as slow:
        thread = dispatch_in_thread(app, slow, reports)
        wait_until(lambda: twilio.stats()["in_flight"] == 1, 15, "the request is out")
        with Dispatcher(app, worker="other") as other:
            while thread.is_alive():  # another dispatcher keeps looking, all along
                report = other.dispatch_due(BOOKED)
                others.taken_back += report.taken_back
                others.claimed += report.claimed
                time.sleep(0.1)
    assert (others.taken_back, others.claimed) == (0, 0)
    assert reports["slow"].sent == 1
    [row] = outbox()
    assert (row.status, row.in_doubt_since, row.possible_duplicate) == (
        MessageStatus.SENT,
        None,
        False,
    )
    outcomes = db.session.scalars(select(MessageAttempt.outcome)).all()
    assert outcomes == ["sent"]
    assert len(twilio.requests) == 1 and twilio.list_requests == []

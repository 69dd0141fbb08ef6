"""The dispatcher against the suite's Twilio-compatible server, with the real twilio client."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    MessageAttempt,
    MessageStatus,
    OutboundMessage,
    PhoneNumberState,
)
from scheduler.sms.backends import ConsoleBackend, TwilioBackend
from scheduler.sms.dispatch import Dispatcher, purge_old_messages
from scheduler.sms.outbox import opt_out
from scheduler.sms.replies import apply_status_callback
from tests.conftest import make_app
from tests.factories import (
    CHICAGO,
    add_message_schedules,
    book,
    booking_request,
    make_slot,
    texts_of,
)
from tests.sms.conftest import SENDER, twilio_settings
from tests.twilio_server import FakeTwilio

PHONE = "+18302574811"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHICAGO).astimezone(UTC)


BOOKED = local(2026, 12, 1, 10, 0)  # a Tuesday morning
VISIT = local(2026, 12, 9, 10, 0)


@pytest.fixture
def app_config(twilio: FakeTwilio) -> dict[str, Any]:
    return twilio_settings(twilio)


@pytest.fixture
def dispatcher(app: Flask) -> Any:
    with Dispatcher(app) as dispatcher:
        yield dispatcher


def booked_visit(visit: datetime = VISIT, now: datetime = BOOKED, **overrides: Any) -> Appointment:
    return book(booking_request(make_slot(starts_at=visit), **overrides), now=now)


def attempts_of(text: OutboundMessage) -> list[str]:
    return list(
        db.session.scalars(
            select(MessageAttempt.outcome)
            .where(MessageAttempt.message_id == text.id)
            .order_by(MessageAttempt.id)
        )
    )


def test_each_text_goes_out_once_at_its_time(dispatcher: Dispatcher, twilio: FakeTwilio) -> None:
    add_message_schedules()
    appt = booked_visit()
    report = dispatcher.dispatch_due(BOOKED)
    assert (report.claimed, report.sent) == (1, 1)
    [request] = twilio.requests
    texts = texts_of(appt)
    confirmation = texts["confirmation"]
    assert (request.to, request.from_, request.body) == (PHONE, SENDER, confirmation.body)
    assert request.status_callback == "https://book.example.test/sms/status"
    assert confirmation.status == MessageStatus.SENT
    assert confirmation.provider_sid == request.sid
    assert confirmation.attempts == 1
    assert attempts_of(confirmation) == ["sent"]
    assert texts["instructions"].status == MessageStatus.PENDING

    assert dispatcher.dispatch_due(BOOKED + timedelta(hours=1)).claimed == 0
    dispatcher.dispatch_due(VISIT - timedelta(hours=72))
    dispatcher.dispatch_due(VISIT - timedelta(hours=24))
    assert {t.status for t in texts_of(appt).values()} == {MessageStatus.SENT}
    assert twilio.accepted_count() == 3
    assert twilio.duplicates() == {}


def test_console_backend_prints_each_text(app: Flask) -> None:
    out = io.StringIO()
    appt = booked_visit()
    with Dispatcher(app, backend=ConsoleBackend(out)) as dispatcher:
        assert dispatcher.dispatch_due(BOOKED).sent == 1
    printed = out.getvalue()
    assert f"SMS to {PHONE}" in printed
    assert appt.reference in printed
    assert texts_of(appt)["confirmation"].provider_sid.startswith("CONSOLE")


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (429, 20429)])
def test_a_transient_error_is_retried_with_backoff_then_sent(
    dispatcher: Dispatcher, twilio: FakeTwilio, status: int, code: int
) -> None:
    appt = booked_visit()
    twilio.fail_next(1, status)
    report = dispatcher.dispatch_due(BOOKED)
    assert (report.sent, report.retrying) == (0, 1)
    text = texts_of(appt)["confirmation"]
    assert text.status == MessageStatus.PENDING
    assert text.error_code == code
    assert BOOKED + timedelta(seconds=15) <= text.due_at <= BOOKED + timedelta(seconds=30)
    assert dispatcher.dispatch_due(BOOKED + timedelta(seconds=14)).claimed == 0
    assert dispatcher.dispatch_due(text.due_at).sent == 1
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.attempts, text.possible_duplicate) == (MessageStatus.SENT, 2, False)
    assert attempts_of(text) == ["retry", "sent"]
    assert twilio.accepted_count() == 1


def test_a_refused_connection_is_retried(app: Flask) -> None:
    appt = booked_visit()
    backend = TwilioBackend("AC" + "0" * 32, "token", SENDER, None, 2, 0.5, 0.5)
    backend.client.api.base_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    with Dispatcher(app, backend=backend) as dispatcher:
        assert dispatcher.dispatch_due(BOOKED).retrying == 1
    text = texts_of(appt)["confirmation"]
    assert text.status == MessageStatus.PENDING
    assert not text.possible_duplicate  # it never reached Twilio
    assert "ConnectionError" in text.error_message


def test_retries_stop_at_the_limit(dispatcher: Dispatcher, twilio: FakeTwilio, app: Flask) -> None:
    appt = booked_visit()
    twilio.fail_number(PHONE, 20500)
    now = BOOKED
    for _ in range(app.config["SMS_MAX_ATTEMPTS"]):
        dispatcher.dispatch_due(now)
        now = texts_of(appt)["confirmation"].due_at
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.status_reason) == (MessageStatus.FAILED, "retries_exhausted")
    assert text.attempts == app.config["SMS_MAX_ATTEMPTS"]
    assert attempts_of(text) == ["retry"] * (text.attempts - 1) + ["failed"]
    assert dispatcher.dispatch_due(now + timedelta(days=1)).claimed == 0


def test_an_invalid_number_fails_at_once_and_is_marked_unreachable(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    twilio.fail_number(PHONE, 21211)
    dispatcher.dispatch_due(BOOKED)
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.status_reason, text.error_code) == (
        MessageStatus.FAILED,
        "unreachable",
        21211,
    )
    assert text.attempts == 1
    state = db.session.scalar(select(PhoneNumberState).where(PhoneNumberState.phone == PHONE))
    assert state is not None and state.unreachable_code == 21211
    assert not state.is_opted_out


def test_twilio_opt_out_error_suppresses_and_opts_the_number_out(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    add_message_schedules()
    appt = booked_visit()
    twilio.fail_number(PHONE, 21610)
    dispatcher.dispatch_due(BOOKED)
    texts = texts_of(appt)
    assert (texts["confirmation"].status, texts["confirmation"].error_code) == (
        MessageStatus.SUPPRESSED,
        21610,
    )
    assert texts["reminder"].status == MessageStatus.CANCELLED
    twilio.clear_faults()
    dispatcher.dispatch_due(VISIT - timedelta(hours=24))
    assert len(twilio.requests) == 1


def test_a_read_timeout_is_retried_once_and_recorded_as_a_possible_duplicate(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    twilio.hang_next(1, 2.0)  # longer than the 1 s read timeout; Twilio still sends it
    assert dispatcher.dispatch_due(BOOKED).outcomes == {"ambiguous": 1}
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.possible_duplicate) == (MessageStatus.PENDING, True)
    assert dispatcher.dispatch_due(text.due_at).sent == 1
    assert twilio.wait_for_requests(2)
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.possible_duplicate) == (MessageStatus.SENT, True)
    assert attempts_of(text) == ["ambiguous", "sent"]


def test_a_second_read_timeout_fails_the_text_rather_than_risk_a_third_copy(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    twilio.hang_next(2, 2.0)
    dispatcher.dispatch_due(BOOKED)
    dispatcher.dispatch_due(texts_of(appt)["confirmation"].due_at)
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.status_reason) == (MessageStatus.FAILED, "unknown_twice")
    assert dispatcher.dispatch_due(BOOKED + timedelta(hours=2)).claimed == 0
    assert twilio.wait_for_requests(2)
    assert len(twilio.accepted) == 2  # both "timed out" copies did go out: at most one extra


def test_nothing_is_sent_in_quiet_hours(dispatcher: Dispatcher, twilio: FakeTwilio) -> None:
    appt = booked_visit(now=local(2026, 12, 1, 20, 59))
    assert dispatcher.dispatch_due(local(2026, 12, 1, 21, 0)).claimed == 0
    assert dispatcher.dispatch_due(local(2026, 12, 2, 7, 59)).claimed == 0
    assert twilio.requests == []
    assert dispatcher.dispatch_due(local(2026, 12, 2, 8, 0)).sent == 1
    assert texts_of(appt)["confirmation"].status == MessageStatus.SENT


def test_a_text_that_can_no_longer_go_out_before_the_visit_is_dropped(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    add_message_schedules()
    early_visit = local(2026, 12, 9, 8, 0)
    appt = booked_visit(visit=early_visit)
    dispatcher.dispatch_due(BOOKED)
    # The dispatcher was down from the evening before until after the visit.
    report = dispatcher.dispatch_due(local(2026, 12, 8, 21, 30))
    assert report.suppressed == 2
    texts = texts_of(appt)
    for kind in ("instructions", "reminder"):
        assert (texts[kind].status, texts[kind].status_reason) == (
            MessageStatus.SUPPRESSED,
            "visit_passed",
        )
    assert len(twilio.requests) == 1


def test_an_opted_out_number_gets_nothing_even_after_a_restart(
    app: Flask, twilio: FakeTwilio
) -> None:
    add_message_schedules()
    appt = booked_visit()
    opt_out(PHONE, BOOKED)
    db.session.commit()
    later = booked_visit(visit=VISIT + timedelta(days=1), now=BOOKED + timedelta(minutes=5))
    db.session.remove()
    restarted = make_app(app.config["DATABASE_URL"], **twilio_settings(twilio))
    with restarted.app_context(), Dispatcher(restarted) as dispatcher:
        dispatcher.dispatch_due(BOOKED + timedelta(minutes=5))
        dispatcher.dispatch_due(VISIT - timedelta(hours=24))
        db.session.remove()
        db.engine.dispose()
    assert twilio.requests == []
    assert {t.status for t in texts_of(appt).values()} == {MessageStatus.CANCELLED}
    assert {t.status_reason for t in texts_of(later).values()} == {"opted_out"}


class Clock:
    """A settable clock for leases (they follow the real clock, not ``now``)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


def test_a_claim_left_by_a_dead_dispatcher_is_taken_back_once(
    app: Flask, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    clock = Clock()
    with Dispatcher(app, worker="dead", clock=clock) as dead:
        assert len(dead.claim(BOOKED, 10)) == 1  # then it "dies" without sending
    lease = timedelta(seconds=app.config["SMS_CLAIM_LEASE_SECONDS"])
    with Dispatcher(app, clock=clock) as dispatcher:
        clock.at += lease - timedelta(seconds=1)
        assert dispatcher.dispatch_due(BOOKED).claimed == 0
        clock.at += timedelta(seconds=2)
        report = dispatcher.dispatch_due(BOOKED)
    assert (report.taken_back, report.sent) == (1, 1)
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.possible_duplicate, text.attempts) == (MessageStatus.SENT, True, 2)
    assert attempts_of(text) == ["lease_expired", "sent"]


def test_dispatch_as_of_another_time_never_expires_live_claims(
    app: Flask, twilio: FakeTwilio
) -> None:
    booked_visit()
    with Dispatcher(app, worker="alive") as alive:
        alive.claim(BOOKED, 10)  # in flight right now
    with Dispatcher(app) as dispatcher:
        report = dispatcher.dispatch_due(BOOKED + timedelta(days=2))  # `--now` far ahead
    assert (report.taken_back, report.claimed) == (0, 0)


def test_a_text_lost_in_flight_twice_fails(app: Flask) -> None:
    appt = booked_visit()
    lease = timedelta(seconds=app.config["SMS_CLAIM_LEASE_SECONDS"])
    clock = Clock()
    with Dispatcher(app, clock=clock) as dispatcher:
        for _ in range(2):
            with Dispatcher(app, worker="dead", clock=clock) as dead:
                dead.claim(BOOKED, 10)
            clock.at += lease + timedelta(seconds=1)
            dispatcher.take_back_expired(clock(), BOOKED, CHICAGO)
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.status_reason) == (MessageStatus.FAILED, "unknown_twice")
    assert attempts_of(text) == ["lease_expired", "lease_expired"]


def test_dispatchers_racing_in_threads_send_each_text_once(app: Flask, twilio: FakeTwilio) -> None:
    slot = make_slot(starts_at=VISIT, capacity=60)
    for n in range(60):
        book(booking_request(slot, phone=f"+1830257{n:04d}"), now=BOOKED)
    twilio.delay = 0.02
    app.config["SMS_SEND_CONCURRENCY"] = 3
    reports = []
    start = threading.Barrier(4)

    def run(name: str) -> None:
        with app.app_context(), Dispatcher(app, worker=name) as dispatcher:
            start.wait()
            reports.append(dispatcher.dispatch_due(BOOKED))

    threads = [threading.Thread(target=run, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.sent for r in reports) == 60
    assert sum(1 for r in reports if r.claimed) >= 2, [r.claimed for r in reports]
    assert twilio.accepted_count() == 60
    assert twilio.duplicates() == {}
    sent = db.session.scalar(
        select(func.count(OutboundMessage.id)).where(OutboundMessage.status == "sent")
    )
    assert sent == 60


def test_never_more_claimed_than_can_be_sent_at_once(app: Flask, twilio: FakeTwilio) -> None:
    slot = make_slot(starts_at=VISIT, capacity=20)
    for n in range(20):
        book(booking_request(slot, phone=f"+1830257{n:04d}"), now=BOOKED)
    app.config["SMS_SEND_CONCURRENCY"] = 4
    twilio.delay = 0.05
    most_sending = 0

    def count_sending(index: int, form: dict[str, str]) -> None:
        nonlocal most_sending
        with app.app_context():
            sending = db.session.scalar(
                select(func.count(OutboundMessage.id)).where(OutboundMessage.status == "sending")
            )
            db.session.remove()
        most_sending = max(most_sending, sending or 0)

    twilio.responder = count_sending
    with Dispatcher(app) as dispatcher:
        assert dispatcher.dispatch_due(BOOKED).sent == 20
    assert 1 <= most_sending <= 4


def test_a_delivery_report_that_beats_the_dispatcher_is_applied_later(
    app: Flask, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    sid = "SM" + "e" * 32

    def answer(index: int, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # Twilio's callback arrives before the dispatcher records the id.
        with app.app_context():
            assert not apply_status_callback(sid, "undelivered", 30006, BOOKED)
            db.session.remove()
        return 201, {"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]}

    twilio.responder = answer
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due(BOOKED)
    text = texts_of(appt)["confirmation"]
    assert (text.provider_sid, text.status, text.error_code) == (
        sid,
        MessageStatus.UNDELIVERED,
        30006,
    )
    state = db.session.scalar(select(PhoneNumberState).where(PhoneNumberState.phone == PHONE))
    assert state.unreachable_code == 30006


def test_purge_removes_finished_texts_past_retention(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    old = booked_visit()
    dispatcher.dispatch_due(BOOKED)
    recent = booked_visit(visit=VISIT + timedelta(days=210), now=BOOKED + timedelta(days=200))
    assert purge_old_messages(BOOKED + timedelta(days=366), retention_days=365) == 1
    assert texts_of(old) == {}
    assert set(texts_of(recent)) == {"confirmation"}
    assert db.session.scalar(select(func.count(MessageAttempt.id))) == 0

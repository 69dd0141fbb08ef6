"""The dispatcher against the suite's Twilio-compatible server, with the real twilio client."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
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

pytestmark = pytest.mark.clock_sensitive  # sending hours, backoff and leases

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
    values = {"phone": PHONE, **overrides}
    return book(booking_request(make_slot(starts_at=visit), **values), now=now)


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


def attempt_details(text: OutboundMessage) -> list[str]:
    return list(
        db.session.scalars(
            select(MessageAttempt.detail)
            .where(MessageAttempt.message_id == text.id)
            .order_by(MessageAttempt.id)
        )
    )


@pytest.fixture
def impatient(app: Flask) -> Any:
    """A dispatcher that waits 1 s for an answer (read timeout), for tests of timeouts."""
    app.config["SMS_READ_TIMEOUT_SECONDS"] = 1.0
    with Dispatcher(app) as dispatcher:
        yield dispatcher


def test_a_read_timeout_is_looked_up_at_twilio_and_not_sent_again(
    impatient: Dispatcher, twilio: FakeTwilio
) -> None:
    dispatcher = impatient
    appt = booked_visit()
    twilio.hang_next(1, 2.0)  # longer than the 1 s read timeout; Twilio still takes it
    with time_machine.travel(BOOKED, tick=True):
        assert dispatcher.dispatch_due(BOOKED).outcomes == {"ambiguous": 1}
        text = texts_of(appt)["confirmation"]
        assert (text.status, text.possible_duplicate) == (MessageStatus.PENDING, False)
        assert text.in_doubt_since is not None
        assert twilio.wait_for_requests(1)  # the hung request has gone through at Twilio
        report = dispatcher.dispatch_due(text.due_at)
    assert (report.reconciled, report.sent) == (1, 0)
    [request] = twilio.requests
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.provider_sid, text.possible_duplicate) == (
        MessageStatus.SENT,
        request.sid,
        False,
    )
    assert text.in_doubt_since is None
    assert attempts_of(text) == ["ambiguous", "reconciled"]
    assert f"already at the provider as {request.sid}" in attempt_details(text)[1]
    [lookup] = twilio.list_requests
    assert lookup.query["To"] == PHONE
    assert lookup.query["DateSent>"] < request.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert lookup.query["DateSent<"] > request.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_connection_lost_before_twilio_took_the_text_is_sent_once_after_the_lookup(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    twilio.drop_next(1, accept=False)
    with time_machine.travel(BOOKED, tick=True):
        assert dispatcher.dispatch_due(BOOKED).outcomes == {"ambiguous": 1}
        report = dispatcher.dispatch_due(texts_of(appt)["confirmation"].due_at)
    assert (report.reconciled, report.sent) == (0, 1)
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.possible_duplicate) == (MessageStatus.SENT, False)
    assert attempts_of(text) == ["ambiguous", "sent"]
    assert attempt_details(text)[1].endswith("the provider had no copy of it")
    assert twilio.accepted_count() == 1
    assert [r.response_status for r in twilio.list_requests] == [200, 200]  # window, queued


def test_a_text_still_queued_at_twilio_is_found_though_it_has_no_date_sent(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    twilio.queue_seconds = 600  # a busy sender: Twilio holds it in its queue
    twilio.drop_next(1, accept=True)
    with time_machine.travel(BOOKED, tick=True):
        dispatcher.dispatch_due(BOOKED)
        report = dispatcher.dispatch_due(texts_of(appt)["confirmation"].due_at)
    assert report.reconciled == 1
    assert twilio.accepted_count() == 1
    assert texts_of(appt)["confirmation"].provider_sid == twilio.requests[0].sid


def test_a_failing_message_list_sends_and_flags_but_never_risks_a_third_copy(
    impatient: Dispatcher, twilio: FakeTwilio
) -> None:
    dispatcher = impatient
    appt = booked_visit()
    twilio.drop_next(1, accept=False)  # lost on the way: Twilio never had it
    with time_machine.travel(BOOKED, tick=True) as clock:
        dispatcher.dispatch_due(BOOKED)
        twilio.fail_lists(500)
        twilio.hang_next(1, 2.0)  # sent unchecked, and again no answer
        dispatcher.dispatch_due(texts_of(appt)["confirmation"].due_at)
        text = texts_of(appt)["confirmation"]
        assert (text.status, text.possible_duplicate) == (MessageStatus.PENDING, True)
        assert "may have gone twice" in attempt_details(text)[1]
        assert twilio.wait_for_requests(2)

        clock.shift(timedelta(minutes=1))
        report = dispatcher.dispatch_due(text.due_at)  # the list still fails: not sent
        assert (report.sent, report.retrying) == (0, 1)
        assert len(twilio.requests) == 2
        text = texts_of(appt)["confirmation"]
        assert "not sent: a copy may have gone" in text.error_message

        twilio.fail_lists(None)
        report = dispatcher.dispatch_due(text.due_at)
    assert report.reconciled == 1
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.provider_sid) == (MessageStatus.SENT, twilio.requests[1].sid)
    assert attempts_of(text) == ["ambiguous", "ambiguous", "retry", "reconciled"]
    assert twilio.accepted_count() == 1  # flagged, yet it went once


def test_a_failing_message_list_during_a_reconcile_sends_the_text_and_flags_it(
    dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    twilio.drop_next(1, accept=True)  # Twilio took it; the answer was lost
    with time_machine.travel(BOOKED, tick=True):
        dispatcher.dispatch_due(BOOKED)
        twilio.fail_lists(500)
        report = dispatcher.dispatch_due(texts_of(appt)["confirmation"].due_at)
    assert report.sent == 1
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.possible_duplicate) == (MessageStatus.SENT, True)
    assert text.provider_sid == twilio.requests[1].sid
    assert "sent unchecked, may have gone twice" in attempt_details(text)[1]
    assert "message list failed: HTTP 500" in attempt_details(text)[1]
    assert twilio.accepted_count() == 2  # the one case the flag is for: no loss


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
    """A settable clock for leases (they follow the dispatcher's clock, not ``now``)."""

    def __init__(self, at: datetime = BOOKED) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_a_claim_left_by_a_dead_dispatcher_is_taken_back_and_looked_up_before_it_is_sent(
    app: Flask, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    clock = Clock()
    with Dispatcher(app, worker="dead", clock=clock) as dead:
        assert len(dead.claim(BOOKED, 10)) == 1  # then it "dies" before sending
    lease = timedelta(seconds=app.config["SMS_CLAIM_LEASE_SECONDS"])
    with time_machine.travel(BOOKED, tick=True), Dispatcher(app, clock=clock) as dispatcher:
        clock.at += lease - timedelta(seconds=1)
        assert dispatcher.dispatch_due(BOOKED).claimed == 0
        clock.at += timedelta(seconds=2)
        report = dispatcher.dispatch_due(BOOKED)
    assert (report.taken_back, report.sent) == (1, 1)
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.possible_duplicate, text.attempts) == (MessageStatus.SENT, False, 2)
    assert attempts_of(text) == ["lease_expired", "sent"]
    assert len(twilio.list_requests) == 2  # looked up first
    assert twilio.accepted_count() == 1


def test_the_heartbeat_renews_live_leases_and_notices_a_dead_dispatchers(app: Flask) -> None:
    slot = make_slot(starts_at=VISIT, capacity=2)
    for n in range(2):
        book(booking_request(slot, phone=f"+1830257{n:04d}"), now=BOOKED)
    clock = Clock()
    lease = timedelta(seconds=app.config["SMS_CLAIM_LEASE_SECONDS"])
    woken: list[str] = []
    with Dispatcher(app, worker="dead", clock=clock) as dead:
        [gone] = dead.claim(BOOKED, 1)  # then it dies: no more heartbeats
    with (
        Dispatcher(app, worker="alive", clock=clock) as alive,
        Dispatcher(app, clock=clock, on_lease_expired=lambda: woken.append("!")) as watcher,
    ):
        [held] = alive.claim(BOOKED, 1)
        assert alive.holding == {held.id}
        clock.at += lease - timedelta(seconds=1)
        alive.heartbeat()
        watcher.heartbeat()
        assert woken == [] and not watcher.expired_seen.is_set()
        clock.at += timedelta(seconds=2)
        watcher.heartbeat()
        assert woken == ["!"] and watcher.expired_seen.is_set()
        assert watcher.take_back_expired(clock(), BOOKED, CHICAGO) == 1
    rows = {row.id: row for row in db.session.scalars(select(OutboundMessage))}
    assert rows[gone.id].status == MessageStatus.PENDING
    assert rows[gone.id].in_doubt_since == BOOKED
    assert (rows[held.id].status, rows[held.id].claimed_by) == (MessageStatus.SENDING, "alive")
    assert rows[held.id].lease_until == BOOKED + 2 * lease - timedelta(seconds=1)


def test_dispatch_as_of_another_time_never_expires_live_claims(
    app: Flask, twilio: FakeTwilio
) -> None:
    booked_visit()
    with Dispatcher(app, worker="alive") as alive:
        alive.claim(BOOKED, 10)  # in flight right now
    with Dispatcher(app) as dispatcher:
        report = dispatcher.dispatch_due(BOOKED + timedelta(days=2))  # `--now` far ahead
    assert (report.taken_back, report.claimed) == (0, 0)


def test_a_text_whose_dispatchers_keep_dying_is_given_up_at_the_attempt_limit(
    app: Flask, twilio: FakeTwilio
) -> None:
    appt = booked_visit()
    lease = timedelta(seconds=app.config["SMS_CLAIM_LEASE_SECONDS"])
    limit = app.config["SMS_MAX_ATTEMPTS"]
    clock = Clock()
    with time_machine.travel(BOOKED, tick=True), Dispatcher(app, clock=clock) as dispatcher:
        for _ in range(limit):
            with Dispatcher(app, worker="dead", clock=clock) as dead:
                dead.claim(BOOKED, 10)  # and dies
            clock.at += lease + timedelta(seconds=1)
            dispatcher.take_back_expired(clock(), BOOKED, CHICAGO)
        assert texts_of(appt)["confirmation"].status == MessageStatus.PENDING  # still in doubt
        dispatcher.dispatch_due(BOOKED)
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.status_reason) == (MessageStatus.FAILED, "retries_exhausted")
    assert attempts_of(text) == ["lease_expired"] * limit + ["failed"]
    assert twilio.requests == []  # looked up, not there, and not sent at the limit
    assert len(twilio.list_requests) == 2


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

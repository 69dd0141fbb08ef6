"""Sending what is due: claim texts and emails, send them in a bounded pool, record every
attempt. Both channels share the outbox and everything below; an email goes to the mail
backend (SMTP), a text to the SMS backend (Twilio).

Claims are atomic, so any number of dispatchers (threads, processes,
machines on one PostgreSQL) send each text once: ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, one writer at a time on SQLite. A claim is a lease, which the
claiming dispatcher renews while it holds the text (its heartbeat). Texts of a
dispatcher that died are taken back once their lease runs out.

A text Twilio accepted is never sent a second time:

- an attempt whose outcome is unknown (the dispatcher died, the request timed
  out or lost its connection) leaves the text *in doubt*; before it is sent
  again, Twilio's message list is searched for it (by number, date sent and exact
  body). Found: its id and status are recorded ("reconciled") and it is not sent.
  Not found: it is sent. The list itself failing: it is sent and flagged as a
  possible duplicate, once; a flagged text is not sent again unchecked;
- an outcome that cannot be written (the database is away) is kept in memory and
  written as soon as the database answers; meanwhile the dispatcher claims
  nothing, and its heartbeat keeps its leases alive.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from scheduler.database import rows_changed, serialized_writes
from scheduler.extensions import db
from scheduler.mail.backends import MailBackend, mail_backend_from_config
from scheduler.mail.caps import hold_back_over_address_cap
from scheduler.mail.outbox import UNSUBSCRIBED, blocked_by_unsubscribe
from scheduler.models import (
    Channel,
    InboundMessage,
    MessageAttempt,
    MessageStatus,
    OutboundMessage,
    PhoneNumberState,
    utcnow,
)
from scheduler.sms.backends import (
    OPTED_OUT_CODES,
    UNREACHABLE_CODES,
    Accepted,
    FailureKind,
    Found,
    LookupFailure,
    SendFailure,
    SmsBackend,
    backend_from_config,
)
from scheduler.sms.caps import hold_back_over_cap
from scheduler.sms.outbox import mark_unreachable, opt_out, sending_hours
from scheduler.sms.replies import apply_stored_reports
from scheduler.sms.timing import next_sending_moment, retry_delay, sending_time
from scheduler.urls import public_url

log = logging.getLogger(__name__)
T = TypeVar("T")

OM = OutboundMessage
LEASE_LOST = "lease lost: another dispatcher took this text back"
FINAL_STATUSES = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.FAILED,
    MessageStatus.SUPPRESSED,
    MessageStatus.CANCELLED,
)
# The provider's statuses of a text it has, as ours; any other (queued, sending, ...) is sent.
FOUND_STATUS = {
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}
# The search for a text in doubt starts this long before its first doubtful attempt and
# ends this long after now: the provider's clock and ours may differ.
LOOKUP_MARGIN = timedelta(minutes=5)
# Writing held outcomes again: first after this many seconds, doubling up to the most.
WRITE_RETRY_FIRST_SECONDS = 0.5
WRITE_RETRY_MOST_SECONDS = 10.0


def database_unreachable(exc: BaseException) -> bool:
    """Whether an error means the database is away (try again later), not a bug."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass(frozen=True)
class ClaimedText:
    """A claimed message: a text, or an email (``channel``, ``to_email``, ``payload``)."""

    id: int
    to_phone: str | None
    body: str
    attempt: int  # the number of this attempt, 1-based
    possible_duplicate: bool
    send_before: datetime | None
    in_doubt_since: datetime | None = None
    channel: str = Channel.SMS
    to_email: str | None = None
    payload: str | None = None

    @property
    def is_email(self) -> bool:
        return self.channel == Channel.EMAIL


@dataclass(frozen=True)
class AttemptResult:
    text: ClaimedText
    started_at: datetime
    finished_at: datetime
    accepted: Accepted | None = None
    failure: SendFailure | None = None
    # The provider already had the text: it was not sent again.
    found: Found | None = None
    # The lookup before this send failed (its error): the text may have gone twice.
    unchecked: str | None = None

    def describe(self) -> str:
        if self.found is not None:
            return f"found at the provider as {self.found.sid} ({self.found.status})"
        if self.accepted is not None:
            return f"accepted as {self.accepted.sid} ({self.accepted.status})"
        assert self.failure is not None
        return f"{self.failure.kind} failure: {self.failure.detail}"


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    suppressed: int = 0
    taken_back: int = 0
    reconciled: int = 0
    # Outcomes that could not be written before the dispatcher gave up (logged).
    unrecorded: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    # Sent (accepted by the provider or the SMTP server) per channel: sms, email.
    sent_by_channel: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def recorded(self, outcome: str, channel: str = Channel.SMS) -> None:
        """An attempt's outcome, written to its text: counted, and added to its total."""
        self.count(outcome)
        if outcome == "sent":
            self.sent += 1
            self.sent_by_channel[channel] = self.sent_by_channel.get(channel, 0) + 1
        elif outcome == "reconciled":
            self.reconciled += 1
        elif outcome in ("retry", "ambiguous"):
            self.retrying += 1
        elif outcome == "suppressed":
            self.suppressed += 1
        else:
            self.failed += 1


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """One per process: owns the backend (and its connection pool), the send pool and the
    heartbeat thread that renews the leases of the texts it holds."""

    def __init__(
        self,
        app: Flask,
        backend: SmsBackend | None = None,
        worker: str | None = None,
        mailer: MailBackend | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_lease_expired: Callable[[], None] | None = None,
    ) -> None:
        config = app.config
        self.app = app
        self.backend = backend or backend_from_config(config)
        self.mailer = mailer or mail_backend_from_config(config)
        self.worker = worker or worker_name()
        self.concurrency: int = config["SMS_SEND_CONCURRENCY"]
        self.lease = timedelta(seconds=config["SMS_CLAIM_LEASE_SECONDS"])
        self.heartbeat_seconds: float = config["SMS_HEARTBEAT_SECONDS"]
        self.shutdown_wait: float = config["SMS_SHUTDOWN_WAIT_SECONDS"]
        self.max_attempts: int = config["SMS_MAX_ATTEMPTS"]
        # Leases and bookkeeping follow the real clock even when ``now`` is given,
        # so a dispatch "as of" another time never lets live claims expire early.
        self.clock = clock
        # Called from the heartbeat thread when it sees another dispatcher's lease run out.
        self.on_lease_expired = on_lease_expired
        self.stopping = threading.Event()
        self.expired_seen = threading.Event()
        self._stop_deadline: float | None = None
        self._lock = threading.Lock()
        self._holding: set[int] = set()  # claimed, outcome not written yet
        self._unwritten: list[AttemptResult] = []  # outcomes the database did not take yet
        self._closed = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="sms-send")
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"sms-heartbeat-{self.worker}", daemon=True
        )
        self._heartbeat.start()

    def request_stop(self) -> None:
        """Claim nothing more; finish the texts in flight, and wait a bounded time
        (``SMS_SHUTDOWN_WAIT_SECONDS``) for the database to take their outcomes."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.shutdown_wait
        self.stopping.set()

    def close(self) -> None:
        self.request_stop()
        self.pool.shutdown(wait=True)
        self._closed.set()
        self._heartbeat.join()
        self.mailer.close()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def unwritten(self) -> int:
        """Outcomes known but not written yet (the database did not take them)."""
        return len(self._unwritten)

    @property
    def holding(self) -> set[int]:
        """Ids of the texts this dispatcher has claimed and not yet recorded."""
        with self._lock:
            return set(self._holding)

    # -- heartbeat ---------------------------------------------------------------------------

    def _beat(self) -> None:
        wait_s = self.heartbeat_seconds
        with self.app.app_context():
            while not self._closed.wait(wait_s):
                try:
                    until = self.heartbeat()
                finally:
                    db.session.remove()  # no connection kept between beats
                # Beat again when the next lease of another dispatcher runs out, if sooner.
                wait_s = self.heartbeat_seconds
                if until is not None:
                    wait_s = min(wait_s, until + 0.05)

    def heartbeat(self) -> float | None:
        """Renew the leases of the texts held here; notice leases that others let run out.

        Runs in its own thread (its own session) every ``SMS_HEARTBEAT_SECONDS``;
        a failure (the database away) is logged and tried again at the next beat.
        Returns the seconds until another dispatcher's lease runs out (None: none
        is held, or one has run out and the dispatcher was woken).
        """
        clock = self.clock()
        try:
            if self.holding:
                with serialized_writes():
                    db.session.execute(
                        update(OM)
                        .where(OM.status == MessageStatus.SENDING, OM.claimed_by == self.worker)
                        .values(lease_until=clock + self.lease),
                        execution_options={"synchronize_session": False},
                    )
                    db.session.commit()
            earliest = db.session.scalar(
                select(func.min(OM.lease_until)).where(
                    OM.status == MessageStatus.SENDING, OM.claimed_by != self.worker
                )
            )
            db.session.rollback()
        except Exception as exc:
            db.session.rollback()
            log.warning("heartbeat of %s failed: %s", self.worker, exc)
            return None
        if earliest is None:
            return None
        if earliest >= clock:
            return (earliest - clock).total_seconds()
        self.expired_seen.set()
        if self.on_lease_expired is not None:
            try:
                self.on_lease_expired()
            except Exception:
                log.exception("waking the dispatcher for expired leases failed")
        return None

    # -- the dispatch loop -------------------------------------------------------------------

    def dispatch_due(self, now: datetime | None = None) -> DispatchReport:
        """Send every text due as of ``now`` (the clock when None); needs an app context.

        Texts are claimed only as send slots free up, so every claimed text is
        in flight at once: a dispatcher that dies leaves at most
        ``SMS_SEND_CONCURRENCY`` texts in doubt. Each result is recorded as
        soon as it is known; one the database does not take is held and written
        again with backoff, and nothing new is claimed meanwhile. Returns when
        nothing is in flight or held (or, after ``request_stop``, when the wait
        for the database is over: what could not be written is logged).
        """
        report = DispatchReport()
        tz = ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])
        hours = sending_hours()
        status_callback = (
            public_url("sms.status_callback")
            if current_app.config["SMS_STATUS_CALLBACKS"]
            else None
        )
        moment = now or self.clock()
        self.expired_seen.clear()
        taken = self._safely(self.take_back_expired, self.clock(), moment, tz)
        dropped = self._safely(suppress_unsendable, moment, tz)
        if taken is None or dropped is None:
            return report  # the database is away: nothing claimed, nothing held
        report.taken_back += taken
        report.suppressed += dropped
        in_flight: set[Future[AttemptResult]] = set()
        more = True
        retry_in = WRITE_RETRY_FIRST_SECONDS
        retry_at = 0.0
        while True:
            if self._unwritten and time.monotonic() >= retry_at:
                if self._write_unwritten(report, now):
                    retry_in = WRITE_RETRY_FIRST_SECONDS
                    more = True  # the database is back: claim again
                else:
                    retry_at = time.monotonic() + retry_in
                    retry_in = min(retry_in * 2, WRITE_RETRY_MOST_SECONDS)
            stopping = self.stopping.is_set()
            if self.expired_seen.is_set() and not self._unwritten and not stopping:
                more = self._take_back_expired_leases(moment, tz, report) or more
            moment = now or self.clock()
            free = self.concurrency - len(in_flight)
            if (
                more
                and free > 0
                and not self._unwritten
                and not stopping
                and hours.contains(moment, tz)
            ):
                claimed = self._safely(self.claim, moment, free)
                more = claimed is not None and len(claimed) == free
                report.claimed += len(claimed or ())
                in_flight |= {
                    self.pool.submit(self._attempt, text, status_callback) for text in claimed or ()
                }
            if not in_flight and not self._unwritten:
                break
            if not in_flight and self._waited_long_enough():
                self._give_up_unwritten(report)
                break
            in_flight = self._wait_for_sends(in_flight, retry_at, report, now)
        return report

    def _take_back_expired_leases(
        self, moment: datetime, tz: ZoneInfo, report: DispatchReport
    ) -> bool:
        """After the heartbeat saw another dispatcher's lease run out: take its texts back.
        Whether any came back (they can be claimed again)."""
        self.expired_seen.clear()
        taken = self._safely(self.take_back_expired, self.clock(), moment, tz)
        if not taken:
            return False
        report.taken_back += taken
        return True

    def _wait_for_sends(
        self,
        in_flight: set[Future[AttemptResult]],
        retry_at: float,
        report: DispatchReport,
        now: datetime | None,
    ) -> set[Future[AttemptResult]]:
        """Wait until a send finishes (its outcome is recorded) or, with outcomes held, until
        it is time to write them again or to give up; the sends still in flight."""
        timeout = None
        if self._unwritten:
            timeout = max(0.0, retry_at - time.monotonic())
            if self._stop_deadline is not None:
                timeout = min(timeout, max(0.0, self._stop_deadline - time.monotonic()))
        if not in_flight:
            time.sleep(timeout or 0.0)
            return in_flight
        done, pending = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            self._record_or_hold(future.result(), report, now)
        return pending

    def _safely(self, step: Callable[..., T], *args: Any) -> T | None:
        """A claim or take-back; None (nothing done) when the database is away."""
        try:
            return step(*args)
        except Exception as exc:
            db.session.rollback()
            if not database_unreachable(exc):
                raise
            log.warning("database unreachable, nothing claimed or taken back: %s", exc)
            return None

    def _waited_long_enough(self) -> bool:
        if not self.stopping.is_set():
            return False
        if self._stop_deadline is None:  # stopping set directly rather than by request_stop
            self._stop_deadline = time.monotonic() + self.shutdown_wait
        return time.monotonic() >= self._stop_deadline

    def _record_or_hold(
        self, result: AttemptResult, report: DispatchReport, now: datetime | None
    ) -> None:
        """Record one result; if the database is away, hold it to be written later.

        Any other error loses only this record: the text's lease runs out and the
        next dispatcher looks it up at the provider before sending it again.
        """
        if self._unwritten:  # the database is still away: keep the order, skip the wait
            self._unwritten.append(result)
            return
        try:
            self.record(result, report, now)
        except Exception as exc:
            db.session.rollback()
            if database_unreachable(exc):
                log.warning(
                    "database unreachable: holding the outcome of text %s (%s) to write it "
                    "later: %s",
                    result.text.id,
                    result.describe(),
                    exc,
                )
                self._unwritten.append(result)
                return
            log.exception("could not record the result of text %s", result.text.id)
            self._release(result.text.id)
            report.unrecorded += 1
            report.count("unrecorded")

    def _write_unwritten(self, report: DispatchReport, now: datetime | None) -> bool:
        """Write the held outcomes in order; False when the database is still away."""
        while self._unwritten:
            result = self._unwritten[0]
            try:
                self.record(result, report, now)
            except Exception as exc:
                db.session.rollback()
                if database_unreachable(exc):
                    return False
                log.exception("could not record the result of text %s", result.text.id)
                self._release(result.text.id)
                report.unrecorded += 1
                report.count("unrecorded")
            else:
                log.info("wrote the held outcome of text %s", result.text.id)
            self._unwritten.pop(0)
        return True

    def _give_up_unwritten(self, report: DispatchReport) -> None:
        for result in self._unwritten:
            log.error(
                "stopping without recording text %s, attempt %d: %s; its lease runs out and "
                "it is looked up at the provider before it is sent again",
                result.text.id,
                result.text.attempt,
                result.describe(),
            )
            self._release(result.text.id)
            report.unrecorded += 1
            report.count("unrecorded")
        self._unwritten.clear()

    def _release(self, text_id: int) -> None:
        with self._lock:
            self._holding.discard(text_id)

    # -- claims, attempts, records -----------------------------------------------------------

    def claim(self, now: datetime, limit: int) -> list[ClaimedText]:
        """Atomically take up to ``limit`` due texts for this dispatcher, under a lease.

        Texts over their number's daily cap are suppressed as they are taken
        (scheduler/sms/caps.py), and others are taken in their place.
        """
        claimed: list[ClaimedText] = []
        while len(claimed) < limit:
            wanted = limit - len(claimed)
            allowed, taken = self._claim_batch(now, wanted)
            claimed += allowed
            if taken < wanted:
                break
        return sorted(claimed, key=lambda text: text.id)

    def _claim_batch(self, now: datetime, limit: int) -> tuple[list[ClaimedText], int]:
        """Up to ``limit`` due texts: those the cap lets go out, and how many were taken."""
        clock = self.clock()
        opted_out = select(PhoneNumberState.phone).where(PhoneNumberState.opted_out_at.is_not(None))
        due = (
            select(OM.id)
            .where(
                OM.status == MessageStatus.PENDING,
                OM.due_at <= now,
                or_(OM.channel == Channel.EMAIL, OM.to_phone.not_in(opted_out)),
                ~blocked_by_unsubscribe(),
            )
            .order_by(OM.due_at, OM.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(OM)
            .where(OM.id.in_(due.scalar_subquery()))
            .values(
                status=MessageStatus.SENDING,
                claimed_by=self.worker,
                claimed_at=clock,
                lease_until=clock + self.lease,
                attempts=OM.attempts + 1,
                updated_at=clock,
            )
            .returning(
                OM.id,
                OM.to_phone,
                OM.body,
                OM.attempts,
                OM.possible_duplicate,
                OM.send_before,
                OM.in_doubt_since,
                OM.channel,
                OM.to_email,
                OM.payload,
            )
        )
        with serialized_writes():
            rows = db.session.execute(statement).all()
            sms = [row for row in rows if row.channel != Channel.EMAIL]
            emails = [row for row in rows if row.channel == Channel.EMAIL]
            # Texts have a cap per number (SMS pumping), emails one per address.
            allowed = sorted(
                hold_back_over_cap(sms, clock) + hold_back_over_address_cap(emails, clock),
                key=lambda row: row.id,
            )
            db.session.commit()
        claimed = [ClaimedText(*row) for row in allowed]
        with self._lock:
            self._holding.update(message.id for message in claimed)
        return claimed, len(rows)

    def _attempt(self, text: ClaimedText, status_callback: str | None) -> AttemptResult:
        """Look a text in doubt up at the provider, then send it unless it is there."""
        started = self.clock()
        unchecked = None
        address = (text.to_email if text.is_email else text.to_phone) or ""
        if text.in_doubt_since is not None:
            try:
                lookup = self.mailer.find_sent if text.is_email else self.backend.find_sent
                found = lookup(
                    address,
                    text.body,
                    text.in_doubt_since - LOOKUP_MARGIN,
                    started + LOOKUP_MARGIN,
                )
            except Exception as exc:
                if not isinstance(exc, LookupFailure):
                    log.exception("looking text %s up failed unexpectedly", text.id)
                    exc = LookupFailure(f"{type(exc).__name__}: {exc}")
                if text.possible_duplicate or text.attempt > self.max_attempts:
                    # Sent unchecked once already: not a third copy. Ask again later.
                    failure = SendFailure(
                        FailureKind.TRANSIENT,
                        f"not sent: a copy may have gone and {exc.detail}",
                        exc.http_status,
                    )
                    return AttemptResult(text, started, self.clock(), failure=failure)
                unchecked = exc.detail
            else:
                if found is not None:
                    return AttemptResult(text, started, self.clock(), found=found)
                if text.attempt > self.max_attempts:
                    failure = SendFailure(
                        FailureKind.TRANSIENT,
                        "not sent: the attempt limit is reached and the provider has no copy",
                    )
                    return AttemptResult(text, started, self.clock(), failure=failure)
        try:
            if text.is_email:
                accepted = self.mailer.send(address, text.payload or "")
            else:
                accepted = self.backend.send(address, text.body, status_callback)
        except SendFailure as refused:
            return AttemptResult(text, started, self.clock(), failure=refused, unchecked=unchecked)
        except Exception as exc:  # a bug before the request went out: retry, keep the detail
            log.exception("sending text %s failed unexpectedly", text.id)
            failure = SendFailure(FailureKind.TRANSIENT, f"{type(exc).__name__}: {exc}")
            return AttemptResult(text, started, self.clock(), failure=failure, unchecked=unchecked)
        return AttemptResult(text, started, self.clock(), accepted=accepted, unchecked=unchecked)

    def record(
        self, result: AttemptResult, report: DispatchReport, now: datetime | None = None
    ) -> None:
        text, failure = result.text, result.failure
        finished = result.finished_at
        outcome, sid, values = self._new_row_values(result, now or finished)
        mine = and_(OM.status == MessageStatus.SENDING, OM.claimed_by == self.worker)
        if sid is not None:
            # Taken back meanwhile (the database was away longer than the lease) and not
            # claimed again yet: what the provider said still settles it.
            mine = or_(
                mine, and_(OM.status == MessageStatus.PENDING, OM.in_doubt_since.is_not(None))
            )
        with serialized_writes():
            code = failure.error_code if failure and text.to_phone else None
            if outcome == "suppressed" and code in OPTED_OUT_CODES and text.to_phone:
                opt_out(text.to_phone, finished, reason="opted_out_at_provider")
            if outcome == "failed" and code in UNREACHABLE_CODES and text.to_phone and code:
                mark_unreachable(text.to_phone, code, finished)

            updated = rows_changed(update(OM).where(OM.id == text.id, mine).values(**values))
            db.session.execute(
                insert(MessageAttempt).values(
                    message_id=text.id,
                    number=text.attempt,
                    worker=self.worker,
                    started_at=result.started_at,
                    finished_at=finished,
                    outcome=outcome,
                    http_status=failure.http_status if failure else None,
                    error_code=failure.error_code if failure else None,
                    detail=_attempt_detail(result) if updated else LEASE_LOST,
                )
            )
            if sid is not None and updated:
                # A delivery report may have come in before this id was recorded.
                apply_stored_reports(sid, finished)
            db.session.commit()
        self._release(text.id)
        report.recorded(outcome, text.channel)

    def _new_row_values(
        self, result: AttemptResult, due_base: datetime
    ) -> tuple[str, str | None, dict[str, object]]:
        """The attempt's outcome, the provider's id of the text (None after a failure) and
        the row's new values. A failed text comes due again from ``due_base``."""
        finished = result.finished_at
        values: dict[str, object] = {
            "updated_at": finished,
            "claimed_by": None,
            "lease_until": None,
        }
        if result.found is not None:
            sid = result.found.sid
            values |= {
                "status": FOUND_STATUS.get(result.found.status, MessageStatus.SENT),
                "status_reason": None,
                "provider_sid": sid,
                "sent_at": result.found.sent_at or finished,
                "error_code": result.found.error_code,
                "error_message": None,
                "in_doubt_since": None,
            }
            return "reconciled", sid, values
        if result.accepted is not None:
            sid = result.accepted.sid
            values |= {
                "status": MessageStatus.SENT,
                "status_reason": None,
                "provider_sid": sid,
                "sent_at": finished,
                "error_code": None,
                "error_message": None,
                "in_doubt_since": None,
            }
            if result.unchecked:
                values["possible_duplicate"] = True
            return "sent", sid, values
        failure = result.failure
        assert failure is not None
        outcome, more = self._after_failure(result.text, failure, due_base)
        values |= more
        if failure.kind is FailureKind.AMBIGUOUS:
            values["in_doubt_since"] = result.text.in_doubt_since or result.started_at
            if result.unchecked:
                values["possible_duplicate"] = True
        return outcome, None, values

    def _after_failure(
        self, text: ClaimedText, failure: SendFailure, now: datetime
    ) -> tuple[str, dict[str, object]]:
        """The outcome name and the row's new values after a failed attempt."""
        error = {"error_code": failure.error_code, "error_message": failure.detail}
        if failure.kind is FailureKind.PERMANENT:
            if text.is_email:
                status, reason, outcome = MessageStatus.FAILED, "rejected", "failed"
            elif failure.error_code in OPTED_OUT_CODES:
                status, reason, outcome = MessageStatus.SUPPRESSED, "opted_out", "suppressed"
            elif failure.error_code in UNREACHABLE_CODES:
                status, reason, outcome = MessageStatus.FAILED, "unreachable", "failed"
            else:
                status, reason, outcome = MessageStatus.FAILED, "rejected", "failed"
            return outcome, {**error, "status": status, "status_reason": reason}
        if text.attempt >= self.max_attempts:
            return "failed", {
                **error,
                "status": MessageStatus.FAILED,
                "status_reason": "retries_exhausted",
            }
        config = current_app.config
        delay = retry_delay(
            text.attempt, config["SMS_RETRY_BASE_SECONDS"], config["SMS_RETRY_MAX_SECONDS"]
        )
        tz = ZoneInfo(config["DISPLAY_TIMEZONE"])
        again = sending_time(now + delay, tz, sending_hours(), text.send_before)
        if again is None:
            return "suppressed", {
                **error,
                "status": MessageStatus.SUPPRESSED,
                "status_reason": "visit_passed",
            }
        more: dict[str, object] = {**error, "status": MessageStatus.PENDING, "due_at": again}
        ambiguous = failure.kind is FailureKind.AMBIGUOUS
        return ("ambiguous" if ambiguous else "retry"), more

    def take_back_expired(self, clock: datetime, now: datetime, tz: ZoneInfo) -> int:
        """Texts whose claimer stopped renewing their lease (it died) go back to pending.

        The provider may have accepted them before the claimer died, so they are
        in doubt: looked up before they are sent again. Each lost attempt is
        recorded. Texts this dispatcher holds itself are never taken back.
        """
        held = self.holding
        with serialized_writes():
            query = select(
                OM.id, OM.attempts, OM.claimed_by, OM.claimed_at, OM.lease_until, OM.in_doubt_since
            ).where(OM.status == MessageStatus.SENDING, OM.lease_until < clock)
            if held:
                query = query.where(OM.id.not_in(held))
            expired = db.session.execute(query.with_for_update(skip_locked=True)).all()
            if not expired:
                db.session.rollback()
                return 0
            again = next_sending_moment(now, tz, sending_hours())
            rows = [(row, row.claimed_at or row.lease_until - self.lease) for row in expired]
            db.session.execute(
                update(OM),
                [
                    {
                        "id": row.id,
                        "status": MessageStatus.PENDING,
                        "status_reason": None,
                        "in_doubt_since": row.in_doubt_since or started,
                        "claimed_by": None,
                        "lease_until": None,
                        "due_at": again,
                        "updated_at": clock,
                    }
                    for row, started in rows
                ],
            )
            db.session.execute(
                insert(MessageAttempt),
                [
                    {
                        "message_id": row.id,
                        "number": row.attempts,
                        "worker": row.claimed_by or "",
                        "started_at": started,
                        "finished_at": clock,
                        "outcome": "lease_expired",
                        "detail": "the dispatcher stopped while sending; the provider is "
                        "asked before it is sent again",
                    }
                    for row, started in rows
                ],
            )
            db.session.commit()
        log.warning("took back %d texts from stopped dispatchers", len(expired))
        return len(expired)


def _attempt_detail(result: AttemptResult) -> str:
    if result.found is not None:
        return (
            f"already at the provider as {result.found.sid} ({result.found.status}): not sent again"
        )
    if result.failure is not None:
        detail = result.failure.detail
    else:
        assert result.accepted is not None
        detail = f"accepted as {result.accepted.sid}"
    if result.unchecked:
        detail = f"{detail}; sent unchecked, may have gone twice ({result.unchecked})"
    elif result.text.in_doubt_since is not None:
        detail = f"{detail}; the provider had no copy of it"
    return detail[:255]


def suppress_unsendable(now: datetime, tz: ZoneInfo) -> int:
    """Pending texts that must not go out are dropped, and say why.

    Texts to a number that opted out after they were queued, and texts that
    can no longer go out before their visit.
    """
    next_moment = next_sending_moment(now, tz, sending_hours())
    opted_out = select(PhoneNumberState.phone).where(PhoneNumberState.opted_out_at.is_not(None))
    with serialized_writes():
        dropped = rows_changed(
            update(OM)
            .where(OM.status == MessageStatus.PENDING, OM.to_phone.in_(opted_out))
            .values(status=MessageStatus.SUPPRESSED, status_reason="opted_out", updated_at=now),
        )
        dropped += rows_changed(
            update(OM)
            .where(OM.status == MessageStatus.PENDING, blocked_by_unsubscribe())
            .values(status=MessageStatus.SUPPRESSED, status_reason=UNSUBSCRIBED, updated_at=now),
        )
        dropped += rows_changed(
            update(OM)
            .where(
                OM.status == MessageStatus.PENDING,
                OM.send_before.is_not(None),
                OM.send_before <= next_moment,
            )
            .values(status=MessageStatus.SUPPRESSED, status_reason="visit_passed", updated_at=now),
        )
        db.session.commit()
    return dropped


def purge_old_messages(now: datetime, retention_days: int) -> int:
    """Delete finished texts, their attempts and inbound texts older than the retention."""
    cutoff = now - timedelta(days=retention_days)
    old = select(OM.id).where(OM.created_at < cutoff, OM.status.in_(FINAL_STATUSES))
    with serialized_writes():
        db.session.execute(delete(MessageAttempt).where(MessageAttempt.message_id.in_(old)))
        purged = rows_changed(delete(OM).where(OM.id.in_(old.scalar_subquery())))
        purged += rows_changed(delete(InboundMessage).where(InboundMessage.received_at < cutoff))
        db.session.commit()
    return purged

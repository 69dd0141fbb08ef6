"""Sending what is due: claim texts, send them in a bounded pool, record every attempt.

Claims are atomic, so any number of dispatchers (threads, processes,
machines on one PostgreSQL) send each text once: ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, one writer at a time on SQLite. A claim is a lease: texts a
dispatcher claimed but never finished (it was killed) are taken back once
the lease runs out, sent at most once more, and marked as possible duplicates.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import case, delete, insert, select, update

from scheduler.database import serialized_writes
from scheduler.extensions import db
from scheduler.models import (
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


@dataclass(frozen=True)
class ClaimedText:
    id: int
    to_phone: str
    body: str
    attempt: int  # the number of this attempt, 1-based
    possible_duplicate: bool
    send_before: datetime | None


@dataclass(frozen=True)
class AttemptResult:
    text: ClaimedText
    started_at: datetime
    finished_at: datetime
    accepted: Accepted | None = None
    failure: SendFailure | None = None


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    suppressed: int = 0
    taken_back: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """One per process: owns the backend (and its connection pool) and the send pool."""

    def __init__(
        self,
        app: Flask,
        backend: SmsBackend | None = None,
        worker: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        config = app.config
        self.backend = backend or backend_from_config(config)
        self.worker = worker or worker_name()
        self.concurrency: int = config["SMS_SEND_CONCURRENCY"]
        self.lease = timedelta(seconds=config["SMS_CLAIM_LEASE_SECONDS"])
        self.max_attempts: int = config["SMS_MAX_ATTEMPTS"]
        # Leases and bookkeeping follow the real clock even when ``now`` is given,
        # so a dispatch "as of" another time never lets live claims expire early.
        self.clock = clock
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="sms-send")

    def close(self) -> None:
        self.stopping.set()
        self.pool.shutdown(wait=True)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dispatch_due(self, now: datetime | None = None) -> DispatchReport:
        """Send every text due as of ``now`` (the clock when None); needs an app context.

        Texts are claimed only as send slots free up, so every claimed text is
        in flight at once: a dispatcher that dies leaves at most
        ``SMS_SEND_CONCURRENCY`` texts in doubt. Each result is recorded as
        soon as it is known.
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
        report.taken_back += self.take_back_expired(self.clock(), moment, tz)
        report.suppressed += suppress_unsendable(moment, tz)
        in_flight: set[Future[AttemptResult]] = set()
        more = True
        while True:
            moment = now or self.clock()
            free = self.concurrency - len(in_flight)
            if more and free > 0 and not self.stopping.is_set() and hours.contains(moment, tz):
                claimed = self.claim(moment, free)
                more = len(claimed) == free
                report.claimed += len(claimed)
                in_flight |= {
                    self.pool.submit(self._attempt, text, status_callback) for text in claimed
                }
            if not in_flight:
                break
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                self._record_safely(future.result(), report, now)
        return report

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
                OM.to_phone.not_in(opted_out),
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
                lease_until=clock + self.lease,
                attempts=OM.attempts + 1,
                updated_at=clock,
            )
            .returning(
                OM.id, OM.to_phone, OM.body, OM.attempts, OM.possible_duplicate, OM.send_before
            )
        )
        with serialized_writes():
            rows = db.session.execute(statement).all()
            allowed = hold_back_over_cap(rows, clock)
            db.session.commit()
        return [ClaimedText(*row) for row in allowed], len(rows)

    def _attempt(self, text: ClaimedText, status_callback: str | None) -> AttemptResult:
        started = self.clock()
        try:
            accepted = self.backend.send(text.to_phone, text.body, status_callback)
        except SendFailure as failure:
            return AttemptResult(text, started, self.clock(), failure=failure)
        except Exception as exc:  # a bug before the request went out: retry, keep the detail
            log.exception("sending text %s failed unexpectedly", text.id)
            failure = SendFailure(FailureKind.TRANSIENT, f"{type(exc).__name__}: {exc}")
            return AttemptResult(text, started, self.clock(), failure=failure)
        return AttemptResult(text, started, self.clock(), accepted=accepted)

    def _record_safely(
        self, result: AttemptResult, report: DispatchReport, now: datetime | None
    ) -> None:
        """Record one result; a database error loses only this record (the lease brings the
        text back as a possible duplicate) and never the rest of the batch."""
        try:
            self.record(result, report, now)
        except Exception:
            db.session.rollback()
            log.exception("could not record the result of text %s", result.text.id)
            report.count("unrecorded")

    def record(
        self, result: AttemptResult, report: DispatchReport, now: datetime | None = None
    ) -> None:
        text, failure = result.text, result.failure
        finished = result.finished_at
        due_base = now or finished
        values: dict[str, object] = {
            "updated_at": finished,
            "claimed_by": None,
            "lease_until": None,
        }
        if result.accepted is not None:
            outcome = "sent"
            values |= {
                "status": MessageStatus.SENT,
                "provider_sid": result.accepted.sid,
                "sent_at": finished,
                "error_code": None,
                "error_message": None,
            }
        else:
            assert failure is not None
            outcome, more = self._after_failure(text, failure, due_base)
            values |= more
        with serialized_writes():
            if outcome == "suppressed" and failure and failure.error_code in OPTED_OUT_CODES:
                opt_out(text.to_phone, finished, reason="opted_out_at_provider")
            if outcome == "failed" and failure and failure.error_code in UNREACHABLE_CODES:
                mark_unreachable(text.to_phone, failure.error_code, finished)

            updated = db.session.execute(
                update(OM)
                .where(
                    OM.id == text.id,
                    OM.status == MessageStatus.SENDING,
                    OM.claimed_by == self.worker,
                )
                .values(**values),
                execution_options={"synchronize_session": False},
            ).rowcount
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
            if result.accepted is not None and updated:
                # A delivery report may have come in before this id was recorded.
                apply_stored_reports(result.accepted.sid, finished)
            db.session.commit()
        report.count(outcome)
        if outcome == "sent":
            report.sent += 1
        elif outcome in ("retry", "ambiguous"):
            report.retrying += 1
        elif outcome == "suppressed":
            report.suppressed += 1
        else:
            report.failed += 1

    def _after_failure(
        self, text: ClaimedText, failure: SendFailure, now: datetime
    ) -> tuple[str, dict[str, object]]:
        """The outcome name and the row's new values after a failed attempt."""
        error = {"error_code": failure.error_code, "error_message": failure.detail}
        if failure.kind is FailureKind.PERMANENT:
            if failure.error_code in OPTED_OUT_CODES:
                status, reason, outcome = MessageStatus.SUPPRESSED, "opted_out", "suppressed"
            elif failure.error_code in UNREACHABLE_CODES:
                status, reason, outcome = MessageStatus.FAILED, "unreachable", "failed"
            else:
                status, reason, outcome = MessageStatus.FAILED, "rejected", "failed"
            return outcome, {**error, "status": status, "status_reason": reason}
        ambiguous = failure.kind is FailureKind.AMBIGUOUS
        if ambiguous and text.possible_duplicate:
            return "failed", {
                **error,
                "status": MessageStatus.FAILED,
                "status_reason": "unknown_twice",
            }
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
        if ambiguous:
            more["possible_duplicate"] = True
        return ("ambiguous" if ambiguous else "retry"), more

    def take_back_expired(self, clock: datetime, now: datetime, tz: ZoneInfo) -> int:
        """Texts whose claimer died mid-send go back to pending, once; a second time they fail.

        The provider may have accepted them before the claimer died, so they
        are marked as possible duplicates, and each lost attempt is recorded.
        """
        with serialized_writes():
            expired = db.session.execute(
                select(OM.id, OM.attempts, OM.claimed_by, OM.lease_until, OM.possible_duplicate)
                .where(OM.status == MessageStatus.SENDING, OM.lease_until < clock)
                .with_for_update(skip_locked=True)
            ).all()
            if not expired:
                db.session.rollback()
                return 0
            again = next_sending_moment(now, tz, sending_hours())
            db.session.execute(
                update(OM)
                .where(OM.id.in_([row.id for row in expired]))
                .values(
                    status=case(
                        (OM.possible_duplicate, MessageStatus.FAILED),
                        else_=MessageStatus.PENDING,
                    ),
                    status_reason=case((OM.possible_duplicate, "unknown_twice"), else_=None),
                    possible_duplicate=True,
                    claimed_by=None,
                    lease_until=None,
                    due_at=again,
                    updated_at=clock,
                ),
                execution_options={"synchronize_session": False},
            )
            db.session.execute(
                insert(MessageAttempt),
                [
                    {
                        "message_id": row.id,
                        "number": row.attempts,
                        "worker": row.claimed_by or "",
                        "started_at": row.lease_until - self.lease,
                        "finished_at": clock,
                        "outcome": "lease_expired",
                        "detail": "the dispatcher stopped while sending; the text may have gone",
                    }
                    for row in expired
                ],
            )
            db.session.commit()
        log.warning("took back %d texts from stopped dispatchers", len(expired))
        return len(expired)


def _attempt_detail(result: AttemptResult) -> str:
    if result.failure is not None:
        return result.failure.detail
    assert result.accepted is not None
    return f"accepted as {result.accepted.sid}"


def suppress_unsendable(now: datetime, tz: ZoneInfo) -> int:
    """Pending texts that must not go out are dropped, and say why.

    Texts to a number that opted out after they were queued, and texts that
    can no longer go out before their visit.
    """
    next_moment = next_sending_moment(now, tz, sending_hours())
    opted_out = select(PhoneNumberState.phone).where(PhoneNumberState.opted_out_at.is_not(None))
    with serialized_writes():
        dropped = db.session.execute(
            update(OM)
            .where(OM.status == MessageStatus.PENDING, OM.to_phone.in_(opted_out))
            .values(status=MessageStatus.SUPPRESSED, status_reason="opted_out", updated_at=now),
            execution_options={"synchronize_session": False},
        ).rowcount
        dropped += db.session.execute(
            update(OM)
            .where(
                OM.status == MessageStatus.PENDING,
                OM.send_before.is_not(None),
                OM.send_before <= next_moment,
            )
            .values(status=MessageStatus.SUPPRESSED, status_reason="visit_passed", updated_at=now),
            execution_options={"synchronize_session": False},
        ).rowcount
        db.session.commit()
    return dropped


def purge_old_messages(now: datetime, retention_days: int) -> int:
    """Delete finished texts, their attempts and inbound texts older than the retention."""
    cutoff = now - timedelta(days=retention_days)
    old = select(OM.id).where(OM.created_at < cutoff, OM.status.in_(FINAL_STATUSES))
    with serialized_writes():
        db.session.execute(delete(MessageAttempt).where(MessageAttempt.message_id.in_(old)))
        purged = db.session.execute(
            delete(OM).where(OM.id.in_(old.scalar_subquery())),
            execution_options={"synchronize_session": False},
        ).rowcount
        purged += db.session.execute(
            delete(InboundMessage).where(InboundMessage.received_at < cutoff),
            execution_options={"synchronize_session": False},
        ).rowcount
        db.session.commit()
    return purged

"""Putting texts in the outbox, and taking them out again, inside the caller's transaction.

Nothing here commits: the booking operations call these before their own
commit, so a booking and its texts are saved together or not at all. A
booking's texts are one INSERT of several rows; the templates and the cadence
come from the process's copy (``staff_edits``), not a query per booking.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.content import contents_for, default_text
from scheduler.database import connection, rows_changed, table_of
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    Channel,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    PhoneNumberState,
)
from scheduler.sms.texts import (
    TEMPLATE_OF_KIND,
    TemplateError,
    appointment_values,
    fill_template,
)
from scheduler.sms.timing import (
    SendingHours,
    next_sending_moment,
    scheduled_due_time,
    sending_time,
)
from scheduler.staff_edits import staff_edits

log = logging.getLogger(__name__)
# PostgreSQL channel a queued text or email is announced on, so dispatchers wake at once.
NOTIFY_CHANNEL = "sms_outbox"
DEFAULT_SCHEDULES = (
    # kind, hours before the visit, sent at once when booked later than that
    (MessageKind.INSTRUCTIONS, 72, True),
    (MessageKind.REMINDER, 24, False),
)


def sending_hours() -> SendingHours:
    start, _, end = current_app.config["SMS_SENDING_HOURS"].partition("-")
    return SendingHours(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))


def planned_messages(
    appt: Appointment, now: datetime, moved: bool
) -> list[tuple[MessageKind, datetime]]:
    """Which messages an appointment gets and when each is due (before sending hours apply):
    the cadence, the same for texts and emails."""
    first = MessageKind.RESCHEDULED if moved else MessageKind.CONFIRMATION
    planned = [(first, now)]
    follow_up = now + timedelta(seconds=current_app.config["SMS_FOLLOW_UP_DELAY_SECONDS"])
    for schedule in staff_edits().schedules:
        due = scheduled_due_time(
            appt.slot.starts_at, schedule.hours_before, now, schedule.send_if_late
        )
        if due is not None:
            planned.append((MessageKind(schedule.kind), max(due, follow_up)))
    return planned


# A booking's texts in one statement. On PostgreSQL, RETURNING makes the rows one
# INSERT ... VALUES (...), (...) (SQLAlchemy's "insertmanyvalues"), not a pipeline of
# statements, and the same statement announces the texts (delivered on commit, and only
# then; one notification made several times in a transaction is delivered once).
# SQLite's executemany is one call into the database already.
INSERT_MESSAGES = {
    "postgresql": insert(table_of(OutboundMessage)).returning(
        OutboundMessage.id, func.pg_notify(NOTIFY_CHANNEL, "")
    ),
    "sqlite": insert(table_of(OutboundMessage)),
}


def _add_texts(
    appt: Appointment,
    planned: list[tuple[MessageKind, datetime]],
    now: datetime,
    stored_kind: str | None = None,
) -> None:
    patient = appt.patient
    location = appt.slot.location
    visit = appt.slot.starts_at
    tz = ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])  # the dispatcher's zone too
    hours = sending_hours()
    templates = contents_for(
        [TEMPLATE_OF_KIND[kind] for kind, _ in planned], location, patient.language
    )
    values = appointment_values(appt)
    rows = []
    for kind, due in planned:
        key = TEMPLATE_OF_KIND[kind]
        moment = sending_time(due, tz, hours, send_before=visit)
        rows.append(
            {
                "appointment_id": appt.id,
                "kind": str(stored_kind or kind),
                "to_phone": patient.phone,
                "language": patient.language,
                "body": _text_from(key, templates[key], values, patient.language),
                "status": MessageStatus.PENDING if moment else MessageStatus.SUPPRESSED,
                "status_reason": None if moment else "visit_before_sending_hours",
                "due_at": moment or due,
                "send_before": visit,
                "created_at": now,
                "updated_at": now,
            }
        )
    conn = connection()
    conn.execute(INSERT_MESSAGES[conn.dialect.name], rows)


def _text_from(key: str, template: str, values: dict[str, str], language: str) -> str:
    """The text from staff's template; from the shipped default if that one cannot be filled.

    A broken template is refused when saved; this guards rows edited by other
    means, so that a bad template never stops a booking.
    """
    try:
        return fill_template(key, template, values)
    except TemplateError:
        log.error("template %s (%s) cannot be filled; using the default text", key, language)
        return fill_template(key, default_text(key, language), values)


def queue_appointment_texts(appt: Appointment, now: datetime, moved: bool = False) -> None:
    """The confirmation (or moved-to notice), instructions and reminder of a new booking.

    Only with SMS consent. A number that has opted out is checked when each
    text is due: its texts are then suppressed, never sent.
    """
    if not appt.patient.sms_consent:
        return
    _add_texts(appt, planned_messages(appt, now, moved), now)


def queue_text_again(appt: Appointment, kind: MessageKind, stored_kind: str, now: datetime) -> None:
    """One more text of a kind (staff resending instructions), stored under its own kind."""
    _add_texts(appt, [(kind, now)], now, stored_kind=stored_kind)


# A staff reply still waiting this long after it was due (the dispatcher was down)
# no longer goes out: an answer that late would confuse more than help.
STAFF_REPLY_GOOD_FOR = timedelta(days=1)


def queue_staff_reply(
    appt: Appointment, body: str, stored_kind: str, author_id: int, now: datetime
) -> datetime:
    """A text staff wrote to the patient, due now or at the next opening of sending hours
    (a reply written at 22:00 waits for the morning); returns when it is due.

    Consent, opt-out and the per-number cap are the caller's to check first; the
    dispatcher checks opt-out and the cap again when the text goes out.
    """
    tz = ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])
    due = next_sending_moment(now, tz, sending_hours())
    conn = connection()
    conn.execute(
        INSERT_MESSAGES[conn.dialect.name],
        [
            {
                "appointment_id": appt.id,
                "kind": stored_kind,
                "to_phone": appt.patient.phone,
                "language": appt.patient.language,
                "body": body,
                "status": MessageStatus.PENDING,
                "status_reason": None,
                "due_at": due,
                "send_before": due + STAFF_REPLY_GOOD_FOR,
                "author_id": author_id,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    return due


def queue_cancellation_text(appt: Appointment, now: datetime) -> None:
    cancel_pending_texts(appt.id, "appointment_cancelled", now)
    if appt.patient.sms_consent:
        _add_texts(appt, [(MessageKind.CANCELLATION, now)], now)


def queue_offer_text(
    offer_id: int,
    phone: str,
    language: str,
    body: str,
    due: datetime,
    send_before: datetime,
    now: datetime,
) -> None:
    """A waitlist offer's text; ``due`` is inside sending hours already (the offer's
    ``sent_at``), and it never goes at or after ``send_before`` (the place's minimum notice)."""
    row = {
        "appointment_id": None,
        "waitlist_offer_id": offer_id,
        "kind": str(MessageKind.WAITLIST_OFFER),
        "to_phone": phone,
        "language": language,
        "body": body,
        "status": MessageStatus.PENDING,
        "status_reason": None,
        "due_at": due,
        "send_before": send_before,
        "created_at": now,
        "updated_at": now,
    }
    conn = connection()
    conn.execute(INSERT_MESSAGES[conn.dialect.name], [row])


def cancel_offer_texts(offer_ids: list[int], reason: str, now: datetime) -> int:
    """Offer texts not sent yet never go out (the offer was taken, ran out or withdrawn)."""
    if not offer_ids:
        return 0
    return cancel_pending(OutboundMessage.waitlist_offer_id.in_(offer_ids), reason, now)


def is_opted_out(phone: str) -> bool:
    return (
        db.session.scalar(
            select(PhoneNumberState.id).where(
                PhoneNumberState.phone == phone, PhoneNumberState.opted_out_at.is_not(None)
            )
        )
        is not None
    )


def cancel_pending_texts(
    appointment_id: int, reason: str, now: datetime, channel: Channel = Channel.SMS
) -> int:
    """Texts (or emails) of an appointment that has changed never go out; returns how many
    were stopped.

    Staff's replies still go: a person wrote them, after reading the patient's words,
    and "see you soon" waiting for the morning is not made wrong by a move (a STOP, or
    consent withdrawn, stops them as it stops every text).
    """
    return cancel_pending(
        and_(
            OutboundMessage.appointment_id == appointment_id,
            OutboundMessage.author_id.is_(None),
        ),
        reason,
        now,
        channel=channel,
    )


def cancel_pending_texts_of_patient(patient_id: int, reason: str, now: datetime) -> int:
    """Every text still waiting for any of the patient's appointments (consent withdrawn);
    emails are not texts: SMS consent does not govern them."""
    appointments = select(Appointment.id).where(Appointment.patient_id == patient_id)
    return cancel_pending(OutboundMessage.appointment_id.in_(appointments), reason, now)


def cancel_pending(
    which: ColumnElement[bool],
    reason: str,
    now: datetime,
    channel: Channel = Channel.SMS,
    status: MessageStatus = MessageStatus.CANCELLED,
) -> int:
    return rows_changed(
        update(OutboundMessage)
        .where(
            which,
            OutboundMessage.status == MessageStatus.PENDING,
            OutboundMessage.channel == channel,
        )
        .values(status=status, status_reason=reason, updated_at=now),
    )


def _upsert_number_state(phone: str, now: datetime, **values: object) -> None:
    """Insert or update one number's row atomically (two webhooks may race)."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(PhoneNumberState).values(phone=phone, updated_at=now, **values)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[PhoneNumberState.phone], set_={"updated_at": now, **values}
        )
    )


def opt_out(phone: str, now: datetime, reason: str = "opted_out") -> int:
    """Stop every text to the number at once; returns how many pending texts were stopped."""
    _upsert_number_state(phone, now, opted_out_at=now)
    return cancel_pending(OutboundMessage.to_phone == phone, reason, now)


def opt_in(phone: str, now: datetime) -> None:
    _upsert_number_state(phone, now, opted_out_at=None, opted_in_at=now)


def mark_unreachable(phone: str, error_code: int, now: datetime) -> None:
    _upsert_number_state(phone, now, unreachable_code=error_code, unreachable_at=now)

"""Putting emails in the outbox beside texts, inside the caller's transaction.

An email row is built whole when it is queued (MIME: subject, plain text,
HTML, the .ics), addressed to the patient's email address at that moment,
and sent later by the dispatcher that sends texts, under the same claims,
leases, retries and attempt log. The cadence is the texts' (confirmation at
once, instructions and reminder so many hours before the visit, within
sending hours). SMS consent plays no part: an address given is an address
to write to, until it is unsubscribed.

Unsubscribed (one click in any email): no email of any kind goes to the
address any more, pending ones are suppressed at once (and any queued later,
by the dispatcher, which never claims them), with one exception: the
confirmation of a booking made *after* unsubscribing (the patient typed the
address into that booking; the form says so). A booking's emails are one
INSERT, like its texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.content import contents_for, default_text
from scheduler.database import connection
from scheduler.extensions import db
from scheduler.mail.messages import (
    EMAIL_TEMPLATE_OF_KIND,
    WITH_CALENDAR_FILE,
    build_email,
    email_values,
    rendered_in_language,
)
from scheduler.models import (
    Appointment,
    Channel,
    EmailAddressState,
    Location,
    MessageKind,
    MessageStatus,
    OutboundMessage,
)
from scheduler.sms.outbox import (
    INSERT_MESSAGES,
    cancel_pending,
    planned_messages,
    sending_hours,
)
from scheduler.sms.timing import sending_time

OM = OutboundMessage
UNSUBSCRIBED = "unsubscribed"
# Sent even to an unsubscribed address, if queued after the unsubscribe (the booking
# the patient just made, with that address typed in).
TRANSACTIONAL_KINDS = frozenset({MessageKind.CONFIRMATION})


def email_address_of(appt: Appointment) -> str | None:
    address = (appt.patient.email or "").strip().lower()
    return address or None


def unsubscribed_at(address: str) -> datetime | None:
    return db.session.scalar(
        select(EmailAddressState.unsubscribed_at).where(EmailAddressState.email == address)
    )


@dataclass(frozen=True)
class EmailAbout:
    """What an email is about and whom it goes to: an appointment, or a waitlist offer
    (which has no appointment)."""

    address: str
    language: str
    location: Location
    # In the unsubscribe link: the appointment's reference, or the waitlist request's.
    reference: str
    # The placeholders' values, in ``language``.
    values: Mapping[str, str]
    # Never sent at or after this (the visit, or the offered place's minimum notice).
    send_before: datetime
    appointment: Appointment | None = None
    waitlist_offer_id: int | None = None
    given_for: str = "appointment"


def about_appointment(
    appt: Appointment,
    address: str,
    extra_values: Mapping[str, str] | None = None,
    send_before: datetime | None = None,
) -> EmailAbout:
    return EmailAbout(
        address=address,
        language=appt.patient.language,
        location=appt.slot.location,
        reference=appt.reference,
        values={**email_values(appt), **(extra_values or {})},
        send_before=send_before or appt.slot.starts_at,
        appointment=appt,
    )


def queue_email(
    appt: Appointment,
    kind: MessageKind,
    now: datetime,
    *,
    due: datetime | None = None,
    stored_kind: str | None = None,
    values: Mapping[str, str] | None = None,
    send_before: datetime | None = None,
    status_reason: str | None = None,
) -> bool:
    """Queue one email of ``kind`` about ``appt`` to the patient's address, in the caller's
    transaction; False (nothing queued) when the patient gave no address.

    The entry point for other features (closure notices). The email is the kind's
    template (``EMAIL_TEMPLATE_OF_KIND``; a new kind adds its key there, in
    ``EMAIL_TEMPLATE_FIELDS`` and ``EMAIL_TEMPLATE_KEYS``, with default files in
    scheduler/content/) filled with the appointment's values plus ``values`` (say an
    ``offer_url``). It goes out at ``due`` (now when None) within sending hours, never at
    or after ``send_before`` (the visit when None), exactly once, unless the address has
    unsubscribed. ``stored_kind`` names the row when one appointment may get several of
    a kind ("offer#3"): the outbox keeps one per appointment, kind and channel, and the
    database refuses a second (IntegrityError: queue it in a savepoint if that can happen).
    ``status_reason`` stores the row suppressed for that reason (it never goes out, and
    says why: "unsubscribed").
    """
    address = email_address_of(appt)
    if address is None:
        return False
    about = about_appointment(appt, address, values, send_before)
    _add_emails(about, [(kind, due or now)], now, stored_kind, status_reason)
    return True


def queue_offer_email(about: EmailAbout, due: datetime, now: datetime) -> None:
    """A waitlist offer's email (``about.waitlist_offer_id``; no appointment); ``due`` is
    inside sending hours already (the offer's ``sent_at``)."""
    _add_emails(about, [(MessageKind.WAITLIST_OFFER, due)], now)


def queue_appointment_emails(appt: Appointment, now: datetime, moved: bool = False) -> None:
    """The confirmation (or moved-to notice), instructions and reminder of a new booking."""
    address = email_address_of(appt)
    if address is not None:
        _add_emails(about_appointment(appt, address), planned_messages(appt, now, moved), now)


def queue_cancellation_email(appt: Appointment, now: datetime) -> None:
    cancel_pending_emails(appt.id, "appointment_cancelled", now)
    address = email_address_of(appt)
    if address is not None:
        _add_emails(about_appointment(appt, address), [(MessageKind.CANCELLATION, now)], now)


def cancel_pending_emails(appointment_id: int, reason: str, now: datetime) -> int:
    return cancel_pending(OM.appointment_id == appointment_id, reason, now, channel=Channel.EMAIL)


def cancel_offer_emails(offer_ids: list[int], reason: str, now: datetime) -> int:
    """Offer emails not sent yet never go out (the offer was taken, ran out or withdrawn)."""
    if not offer_ids:
        return 0
    return cancel_pending(OM.waitlist_offer_id.in_(offer_ids), reason, now, channel=Channel.EMAIL)


def _add_emails(
    about: EmailAbout,
    planned: list[tuple[MessageKind, datetime]],
    now: datetime,
    stored_kind: str | None = None,
    status_reason: str | None = None,
) -> None:
    language = about.language
    tz = ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])
    hours = sending_hours()
    keys = [EMAIL_TEMPLATE_OF_KIND[kind] for kind, _ in planned]
    templates = contents_for(keys, about.location, language)
    appt = about.appointment
    rows = []
    with force_locale(language):
        for kind, due in planned:
            key = EMAIL_TEMPLATE_OF_KIND[kind]
            rendered = rendered_in_language(
                key, templates[key], about.values, language, default_text(key, language)
            )
            message = build_email(
                rendered,
                about.address,
                now,
                reference=about.reference,
                language=language,
                calendar_of=appt if kind in WITH_CALENDAR_FILE else None,
                given_for=about.given_for,
            )
            moment = sending_time(due, tz, hours, send_before=about.send_before)
            # An unsubscribed address is not looked up here (one statement less per
            # booking): the dispatcher never claims its emails and suppresses them.
            reason = status_reason or (None if moment else "visit_before_sending_hours")
            rows.append(
                {
                    "appointment_id": appt.id if appt is not None else None,
                    "waitlist_offer_id": about.waitlist_offer_id,
                    "kind": str(stored_kind or kind),
                    "channel": Channel.EMAIL,
                    "to_phone": None,
                    "to_email": about.address,
                    "language": language,
                    "subject": rendered.subject,
                    "body": rendered.text,
                    "payload": message.as_string(),
                    "status": MessageStatus.SUPPRESSED if reason else MessageStatus.PENDING,
                    "status_reason": reason,
                    "due_at": moment or due,
                    "send_before": about.send_before,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    conn = connection()
    conn.execute(INSERT_MESSAGES[conn.dialect.name], rows)


# -- unsubscribing -------------------------------------------------------------------------


def blocked_by_unsubscribe() -> ColumnElement[bool]:
    """An email row whose address unsubscribed and which is not a later confirmation."""
    return and_(
        OM.channel == Channel.EMAIL,
        exists().where(
            EmailAddressState.email == OM.to_email,
            EmailAddressState.unsubscribed_at.is_not(None),
            or_(
                OM.kind.not_in([str(kind) for kind in TRANSACTIONAL_KINDS]),
                OM.created_at <= EmailAddressState.unsubscribed_at,
            ),
        ),
    )


def unsubscribe(address: str, now: datetime) -> int:
    """No more emails to the address (idempotent); returns how many pending were stopped."""
    address = address.strip().lower()
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(
        insert(EmailAddressState)
        .values(email=address, unsubscribed_at=now, updated_at=now)
        .on_conflict_do_update(
            index_elements=[EmailAddressState.email],
            set_={"updated_at": now, "unsubscribed_at": now},
            where=EmailAddressState.unsubscribed_at.is_(None),
        )
    )
    return cancel_pending(
        OM.to_email == address,
        UNSUBSCRIBED,
        now,
        channel=Channel.EMAIL,
        status=MessageStatus.SUPPRESSED,
    )

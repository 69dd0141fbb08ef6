"""Patients' free-text replies: the staff inbox, marking them handled, and answering them.

A reply that is not a keyword (STOP, HELP, C, R, ...) is filed under the visit it is
about (``sms.replies.appointment_for_reply``), so under that visit's location; replies
about no visit are "unmatched", seen only by accounts that see every location. Staff
answer from the appointment's text thread, through the outbox, under the same rules as
every other text: consent, STOP, sending hours and the per-number cap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import ColumnElement, Select, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from scheduler.appointments.errors import BookingError
from scheduler.audit import audit
from scheduler.database import LOCK_TEXTS_TO_PHONE, lock_for_transaction, rows_changed
from scheduler.display import display_tz
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    InboundMessage,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    PhoneNumberState,
    Slot,
    StaffUser,
)
from scheduler.sms.caps import WINDOW, texts_to_number_since
from scheduler.sms.outbox import queue_staff_reply, sending_hours
from scheduler.sms.reply_warnings import ReplyWarning, reply_warnings
from scheduler.sms.segments import segment_count
from scheduler.sms.timing import next_sending_moment

FREE_TEXT = "other"  # InboundMessage.action of a reply that is no keyword
UNMATCHED = "unmatched"  # the inbox's name for replies about no visit
INBOX_LIMIT = 200
# A staff reply: at most this many SMS segments (3 x 153 GSM-7 characters, 3 x 67 UCS-2).
MAX_REPLY_SEGMENTS = 3
STAFF_REPLY_KINDS = f"{MessageKind.STAFF_REPLY}#%"
Scope = frozenset[int] | None


class StaleReply(BookingError):
    """Someone else changed the reply's state since the page was shown."""


class ReplyRefused(BookingError):
    """A rule stops this answer from going out; the message says which, and what to do."""


# Below, ``allowed`` is an account's scope, ``scopes.location_ids_for(user)``: the ids of
# the locations it sees, or None for every location (and the replies about no visit).


def sees_unmatched(allowed: Scope) -> bool:
    """Replies about no visit belong to no location: only accounts that see all see them."""
    return allowed is None


def _scope_condition(allowed: Scope) -> ColumnElement[bool]:
    """Replies the scope covers (the query joins Appointment and Slot, outer)."""
    if allowed is None:
        return true()
    return Slot.location_id.in_(sorted(allowed))


def _free_text(allowed: Scope) -> Select[InboundMessage]:
    base = select(InboundMessage).where(InboundMessage.action == FREE_TEXT)
    if allowed is None:
        return base
    return (
        base.join(Appointment, InboundMessage.appointment_id == Appointment.id)
        .join(Slot, Appointment.slot_id == Slot.id)
        .where(_scope_condition(allowed))
    )


def unread_count(allowed: Scope) -> int:
    """Replies nobody has handled, of the locations the account sees: one COUNT."""
    query = _free_text(allowed).where(InboundMessage.handled_at.is_(None))
    return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def unread_by_location(allowed: Scope) -> dict[int | None, int]:
    """Unhandled replies per location id (None: unmatched), for the inbox's tabs."""
    rows = db.session.execute(
        select(Slot.location_id, func.count(InboundMessage.id))
        .select_from(InboundMessage)
        .outerjoin(Appointment, InboundMessage.appointment_id == Appointment.id)
        .outerjoin(Slot, Appointment.slot_id == Slot.id)
        .where(
            InboundMessage.action == FREE_TEXT,
            InboundMessage.handled_at.is_(None),
            _scope_condition(allowed),
        )
        .group_by(Slot.location_id)
    ).all()
    return {location_id: count for location_id, count in rows}


def inbox_replies(allowed: Scope, location_id: int | str | None) -> list[InboundMessage]:
    """Replies of one location (``UNMATCHED``: about no visit; None: all the account
    sees), unhandled first, newest first; at most ``INBOX_LIMIT``."""
    query = (
        select(InboundMessage)
        .outerjoin(Appointment, InboundMessage.appointment_id == Appointment.id)
        .outerjoin(Slot, Appointment.slot_id == Slot.id)
        .options(
            joinedload(InboundMessage.appointment).joinedload(Appointment.patient),
            joinedload(InboundMessage.appointment)
            .joinedload(Appointment.slot)
            .joinedload(Slot.location),
            joinedload(InboundMessage.handled_by),
        )
        .where(InboundMessage.action == FREE_TEXT, _scope_condition(allowed))
        .order_by(
            InboundMessage.handled_at.is_not(None),
            InboundMessage.received_at.desc(),
            InboundMessage.id.desc(),
        )
        .limit(INBOX_LIMIT)
    )
    if location_id == UNMATCHED:
        query = query.where(InboundMessage.appointment_id.is_(None))
    elif location_id is not None:
        query = query.where(Slot.location_id == location_id)
    return list(db.session.scalars(query).unique())


def reply_visible(allowed: Scope, message: InboundMessage) -> bool:
    if message.action != FREE_TEXT:
        return False
    if allowed is None:
        return True
    return message.appointment is not None and message.appointment.slot.location_id in allowed


def _label(message: InboundMessage) -> str:
    return message.appointment.reference if message.appointment else "reply about no visit"


def set_handled(
    message: InboundMessage, handled: bool, expected_version: int, user: StaffUser, now: datetime
) -> bool:
    """Mark a reply handled (or back to unread); True if this call changed it.

    Idempotent: a reply already in the asked state is left alone and not audited
    again, so two colleagues clicking at once both see it handled. A reply changed
    the other way since the page was shown raises StaleReply.
    """
    if (message.handled_at is not None) == handled:
        return False
    changed = rows_changed(
        update(InboundMessage)
        .where(InboundMessage.id == message.id, InboundMessage.version == expected_version)
        .values(
            handled_at=now if handled else None,
            handled_by_id=user.id if handled else None,
            version=InboundMessage.version + 1,
        )
    )
    db.session.refresh(message)
    if not changed:
        if (message.handled_at is not None) == handled:
            return False
        raise StaleReply(
            "Someone changed this reply since your page was loaded; it is shown as it is now."
        )
    audit(
        "inbox.reply_handled" if handled else "inbox.reply_unhandled",
        "inbound_message",
        message.id,
        _label(message),
        appointment_id=message.appointment_id,
    )
    return True


def unread_replies_of(appt: Appointment) -> list[InboundMessage]:
    return list(
        db.session.scalars(
            select(InboundMessage)
            .where(
                InboundMessage.appointment_id == appt.id,
                InboundMessage.action == FREE_TEXT,
                InboundMessage.handled_at.is_(None),
            )
            .order_by(InboundMessage.id)
        )
    )


def normalized_reply(body: str) -> str:
    """Line breaks as \\n, no trailing spaces, no control characters."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    text = "\n".join(line.rstrip() for line in lines).strip()
    return "".join(ch for ch in text if ch == "\n" or ch.isprintable())


def warnings_for(appt: Appointment, body: str) -> list[ReplyWarning]:
    return reply_warnings(body, appt.patient.date_of_birth)


def reply_digest(body: str) -> str:
    """Names the exact text staff were warned about: an edited text is checked again."""
    return hashlib.sha256(normalized_reply(body).encode()).hexdigest()[:32]


def _waiting_replies(phone: str, now: datetime) -> int:
    """Staff replies to the number still queued: the cap counts them before they go (those
    being sent, and sent, are in ``texts_to_number_since`` already)."""
    return (
        db.session.scalar(
            select(func.count(OutboundMessage.id)).where(
                OutboundMessage.to_phone == phone,
                OutboundMessage.kind.like(STAFF_REPLY_KINDS),
                OutboundMessage.status == MessageStatus.PENDING,
                OutboundMessage.created_at >= now - WINDOW,
            )
        )
        or 0
    )


def reply_waits_until(now: datetime) -> datetime | None:
    """When a reply written now would go out, if not at once (outside sending hours)."""
    due = next_sending_moment(now, display_tz(), sending_hours())
    return due if due > now else None


def refusal_for(appt: Appointment, body: str, now: datetime) -> str | None:
    """Why this answer cannot go out (None: it can); checked again when it is sent."""
    patient = appt.patient
    if not body:
        return "Write the reply first."
    count = segment_count(body)
    if count.segments > MAX_REPLY_SEGMENTS:
        return (
            f"The reply is {count.segments} text messages long ({count.characters} characters,"
            f" {count.encoding}); {MAX_REPLY_SEGMENTS} at most. Shorten it, or call the patient."
        )
    if not patient.sms_consent:
        return "This patient did not agree to texts: call them instead."
    opted_out = db.session.scalar(
        select(PhoneNumberState.opted_out_at.is_not(None)).where(
            PhoneNumberState.phone == patient.phone
        )
    )
    if opted_out:
        return "This number replied STOP: it gets no texts until it sends START. Call instead."
    cap = current_app.config["SMS_MAX_PER_NUMBER_PER_DAY"]
    lock_for_transaction(LOCK_TEXTS_TO_PHONE, patient.phone)
    texts = texts_to_number_since(patient.phone, now - WINDOW)
    if texts + _waiting_replies(patient.phone, now) >= cap:
        return (
            f"This number has had its {cap} texts for the last 24 hours (the limit per number):"
            " call the patient instead, or answer tomorrow."
        )
    return None


@dataclass(frozen=True)
class QueuedReply:
    due_at: datetime
    segments: int
    handled: int  # unread replies marked handled with it


def answer_patient(
    appt: Appointment, body: str, user: StaffUser, now: datetime, mark_handled: bool = True
) -> QueuedReply:
    """Queue staff's answer to the patient through the outbox, audited.

    Raises ReplyRefused (the page says why) when a rule stops it. With
    ``mark_handled`` the appointment's unread replies are marked handled too.
    """
    text = normalized_reply(body)
    refusal = refusal_for(appt, text, now)
    if refusal is not None:
        raise ReplyRefused(refusal)
    earlier = db.session.scalar(
        select(func.count(OutboundMessage.id)).where(
            OutboundMessage.appointment_id == appt.id,
            OutboundMessage.kind.like(STAFF_REPLY_KINDS),
        )
    )
    kind = f"{MessageKind.STAFF_REPLY}#{(earlier or 0) + 1}"
    try:
        with db.session.begin_nested():
            due = queue_staff_reply(appt, text, kind, user.id, now)
    except IntegrityError:
        raise ReplyRefused(
            "A colleague answered this patient at the same moment: reload to see it."
        ) from None
    count = segment_count(text)
    audit(
        "appointment.text_reply",
        "appointment",
        appt.id,
        appt.reference,
        segments=count.segments,
        characters=count.characters,
        due_at=due.isoformat(),
    )
    handled = 0
    if mark_handled:
        for message in unread_replies_of(appt):
            handled += set_handled(message, True, message.version, user, now)
    return QueuedReply(due_at=due, segments=count.segments, handled=handled)

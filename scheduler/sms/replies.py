"""What patients text back (STOP, HELP, C, R, ...) and what the provider reports about delivery."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from scheduler.appointments.errors import BookingError
from scheduler.appointments.lifecycle import PATIENT_TEXT, change_status
from scheduler.content import contents_for
from scheduler.database import serialized_writes, unit_of_work
from scheduler.extensions import db
from scheduler.models import (
    CHANGEABLE,
    STATUS_RANK,
    Appointment,
    AppointmentStatus,
    InboundMessage,
    MessageStatus,
    OutboundMessage,
    Patient,
    PhoneNumberState,
    Slot,
    StatusReport,
)
from scheduler.sms.backends import OPTED_OUT_CODES, UNREACHABLE_CODES
from scheduler.sms.caps import may_reply
from scheduler.sms.outbox import mark_unreachable, opt_in, opt_out
from scheduler.sms.texts import appointment_values, clinic_values, fill_template

# Carrier and Twilio opt-out vocabulary (CTIA); never ask a patient to reply CANCEL.
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
CONFIRM_WORDS = frozenset({"C", "CONFIRM"})
RESCHEDULE_WORDS = frozenset({"R", "RESCHEDULE"})

# Twilio's message statuses, as ours. Statuses before "sent" change nothing we track.
PROVIDER_STATUS = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.CANCELLED,
}


def keyword_of(body: str) -> str:
    """The reply as a keyword: NFKC (full-width "ＳＴＯＰ" is STOP), letters and digits only,
    upper case (" stop. " is STOP)."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", body)).upper()


def action_of(body: str) -> str:
    word = keyword_of(body)
    for action, words in (
        ("opt_out", OPT_OUT_WORDS),
        ("opt_in", OPT_IN_WORDS),
        ("help", HELP_WORDS),
        ("confirm", CONFIRM_WORDS),
        ("reschedule", RESCHEDULE_WORDS),
    ):
        if word in words:
            return action
    return "other"


@dataclass(frozen=True)
class Inbound:
    sid: str
    from_phone: str  # E.164 when the sender is a number we text (``sender_accepted``)
    to_phone: str
    body: str
    # A number the service may text (PHONE_REGIONS, no premium or personal numbers):
    # anyone else's text is stored, and only a STOP from it is acted on.
    sender_accepted: bool = True


def next_appointment_of(phone: str, now: datetime) -> Appointment | None:
    """The sender's next visit that can still be confirmed or changed."""
    return db.session.scalar(
        select(Appointment)
        .join(Appointment.patient)
        .join(Appointment.slot)
        .options(joinedload(Appointment.patient), joinedload(Appointment.slot))
        .where(
            Patient.phone == phone,
            # Only bookings whose patient agreed to texts at this number: a number typed
            # into someone else's booking must not confirm it or get its manage link.
            Patient.sms_consent.is_(True),
            Appointment.status.in_(CHANGEABLE),
            Slot.starts_at > now,
        )
        .order_by(Slot.starts_at, Appointment.id)
        .limit(1)
    )


# A free-text reply with no visit ahead is filed under a visit this recent ("thank you").
RECENT_VISIT = timedelta(days=14)


def appointment_for_reply(phone: str, now: datetime) -> Appointment | None:
    """The visit a free-text reply is about, for the staff inbox: the number's next
    visit still ahead, else its latest visit of the last two weeks; None files it as
    unmatched. Nothing about the visit goes back to the sender, so consent is not asked.
    """
    base = (
        select(Appointment)
        .join(Appointment.patient)
        .join(Appointment.slot)
        .options(joinedload(Appointment.patient), joinedload(Appointment.slot))
        .where(Patient.phone == phone)
        .limit(1)
    )
    ahead = db.session.scalar(
        base.where(Appointment.status.in_(CHANGEABLE), Slot.starts_at > now).order_by(
            Slot.starts_at, Appointment.id
        )
    )
    if ahead is not None:
        return ahead
    return db.session.scalar(
        base.where(Slot.starts_at <= now, Slot.starts_at > now - RECENT_VISIT).order_by(
            Slot.starts_at.desc(), Appointment.id.desc()
        )
    )


def _language_of(phone: str, appt: Appointment | None) -> str:
    if appt is not None:
        return appt.patient.language
    latest = db.session.scalar(
        select(Patient.language).where(Patient.phone == phone).order_by(Patient.id.desc()).limit(1)
    )
    return latest or "en"


def _reply_text(key: str, phone: str, appt: Appointment | None) -> str:
    language = _language_of(phone, appt)
    location = appt.slot.location if appt is not None else None
    template = contents_for([key], location, language)[key]
    values = appointment_values(appt) if appt is not None else clinic_values()
    return fill_template(key, template, values)


def _confirm(appt: Appointment, now: datetime) -> bool:
    """The patient's C: booked becomes confirmed (through the lifecycle, like every change)."""
    try:
        change_status(
            appt, AppointmentStatus.CONFIRMED, PATIENT_TEXT, now, note="patient replied C"
        )
    except BookingError:
        return False
    return True


def _act(message: Inbound, action: str, now: datetime) -> tuple[str | None, Appointment | None]:
    """Do what the text asks; returns the reply (None: no reply) and the appointment concerned."""
    phone = message.from_phone
    answer_opt_words = current_app.config["SMS_ANSWER_OPT_OUT_WORDS"]
    if action == "opt_out":
        opt_out(phone, now)
        return (_reply_text("sms_opt_out_reply", phone, None) if answer_opt_words else None), None
    if action == "opt_in":
        opt_in(phone, now)
        return (_reply_text("sms_opt_in_reply", phone, None) if answer_opt_words else None), None
    if action == "help":
        return _reply_text("sms_help_reply", phone, None), None
    if action in ("confirm", "reschedule"):
        appt = next_appointment_of(phone, now)
        if appt is None:
            return _reply_text("sms_no_appointment_reply", phone, None), None
        if action == "confirm":
            if not _confirm(appt, now):
                db.session.refresh(appt)
                if appt.status != AppointmentStatus.CONFIRMED:  # cancelled or moved meanwhile
                    return _reply_text("sms_no_appointment_reply", phone, None), appt
            return _reply_text("sms_confirmed_reply", phone, appt), appt
        return _reply_text("sms_reschedule_reply", phone, appt), appt
    return _reply_text("sms_other_reply", phone, None), appointment_for_reply(phone, now)


def _is_opted_out(phone: str) -> bool:
    return bool(
        db.session.scalar(
            select(PhoneNumberState.opted_out_at.is_not(None)).where(
                PhoneNumberState.phone == phone
            )
        )
    )


def handle_inbound(message: Inbound, now: datetime) -> str | None:
    """Store and act on one incoming text, once per provider id; returns the reply to send.

    The stored row and the action's effects commit together, so a webhook
    retried (even concurrently) acts once and gets the same reply.
    """
    earlier = _stored_reply(message.sid)
    if earlier is not None:
        return earlier[0]
    action = action_of(message.body)
    try:
        with unit_of_work():
            if message.sender_accepted:
                reply, appt = _act(message, action, now)
            else:
                if action == "opt_out":
                    opt_out(message.from_phone, now)
                reply, appt = None, None
            if action not in ("opt_out", "opt_in", "help") and _is_opted_out(message.from_phone):
                reply = None  # the provider would refuse it; an opted-out number gets nothing
            if reply is not None and not may_reply(message.from_phone, now):
                reply = None  # the number had its texts for today (SMS_MAX_PER_NUMBER_PER_DAY)
            db.session.add(
                InboundMessage(
                    provider_sid=message.sid,
                    from_phone=message.from_phone,
                    to_phone=message.to_phone,
                    body=message.body,
                    received_at=now,
                    action=action,
                    appointment_id=appt.id if appt is not None else None,
                    reply=reply,
                )
            )
    except IntegrityError:
        earlier = _stored_reply(message.sid)  # the same text, handled by a concurrent retry
        return earlier[0] if earlier else None
    return reply


def _stored_reply(sid: str) -> tuple[str | None] | None:
    row = db.session.execute(
        select(InboundMessage.reply).where(InboundMessage.provider_sid == sid)
    ).first()
    return (row.reply,) if row is not None else None


def apply_status_callback(
    sid: str, provider_status: str, error_code: int | None, now: datetime
) -> bool:
    """Record a delivery report and apply it to its text; True if a text moved.

    The report is kept: one that arrives before the dispatcher recorded the
    text's provider id is applied when it does (``apply_stored_reports``).
    """
    status = PROVIDER_STATUS.get(provider_status.lower())
    if status is None:
        return False
    with serialized_writes():
        report = StatusReport(
            provider_sid=sid, status=status, error_code=error_code, received_at=now
        )
        db.session.add(report)
        db.session.flush()
        moved = _apply_report(sid, status, error_code, now)
        known = moved or db.session.scalar(
            select(OutboundMessage.id).where(OutboundMessage.provider_sid == sid)
        )
        report.applied = bool(known)
        db.session.commit()
    return moved


def apply_stored_reports(sid: str, now: datetime) -> None:
    """Apply reports that came in before the text's provider id was recorded (caller commits)."""
    reports = db.session.scalars(
        select(StatusReport)
        .where(StatusReport.provider_sid == sid, StatusReport.applied.is_(False))
        .order_by(StatusReport.id)
    ).all()
    for report in reports:
        _apply_report(sid, MessageStatus(report.status), report.error_code, now)
        report.applied = True


def _apply_report(sid: str, status: MessageStatus, error_code: int | None, now: datetime) -> bool:
    """Move the text forward only: a repeated or late report never moves it back."""
    lower = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    values: dict[str, object] = {"status": status, "updated_at": now}
    if status is MessageStatus.DELIVERED:
        values["delivered_at"] = now
    if error_code is not None:
        values["error_code"] = error_code
    row = db.session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.provider_sid == sid, OutboundMessage.status.in_(lower))
        .values(**values)
        .returning(OutboundMessage.to_phone)
    ).first()
    if row is not None and error_code in OPTED_OUT_CODES:
        opt_out(row.to_phone, now, reason="opted_out_at_provider")
    elif row is not None and error_code in UNREACHABLE_CODES:
        mark_unreachable(row.to_phone, error_code, now)
    return row is not None

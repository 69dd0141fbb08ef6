"""What the confirmation and manage pages say about text messages: which will come and when.

Read from the appointment's own rows in the outbox, so the page says what the
dispatcher will actually do (sending hours included), never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext, ngettext
from sqlalchemy import select

from scheduler.display import clock_hour, local_clock, local_day, to_local
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    Channel,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    PhoneNumberState,
)

# Kinds in the order a patient gets them.
KIND_ORDER = [
    MessageKind.CONFIRMATION,
    MessageKind.RESCHEDULED,
    MessageKind.INSTRUCTIONS,
    MessageKind.REMINDER,
    MessageKind.CANCELLATION,
    MessageKind.CLOSURE_NOTICE,
]
WAITING = {MessageStatus.PENDING, MessageStatus.SENDING}
GONE_OUT = {MessageStatus.SENT, MessageStatus.DELIVERED}
NOT_DELIVERED = {MessageStatus.FAILED, MessageStatus.UNDELIVERED}
# A text due this soon is "on its way": the dispatcher looks every few seconds.
ON_ITS_WAY = timedelta(minutes=2)


@dataclass(frozen=True)
class TextPlan:
    kind: MessageKind
    state: str  # on_its_way, later, sent, not_delivered
    due_at: datetime


@dataclass(frozen=True)
class TextsNotice:
    consent: bool
    opted_out: bool
    texts: list[TextPlan]


def texts_notice(appt: Appointment, now: datetime) -> TextsNotice:
    patient = appt.patient
    if not patient.sms_consent:
        return TextsNotice(consent=False, opted_out=False, texts=[])
    state = db.session.scalar(
        select(PhoneNumberState).where(PhoneNumberState.phone == patient.phone)
    )
    rows = db.session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.appointment_id == appt.id, OutboundMessage.channel == Channel.SMS)
        .order_by(OutboundMessage.id)
    ).all()
    latest: dict[MessageKind, OutboundMessage] = {}
    for message in rows:  # a resent text ("instructions#2") stands for its kind
        base = message.kind.split("#")[0]
        if base in MessageKind.__members__.values():
            latest[MessageKind(base)] = message
    texts = []
    for kind in KIND_ORDER:
        row = latest.get(kind)
        if row is None:
            continue
        if row.status in WAITING:
            soon = row.due_at <= now + ON_ITS_WAY
            texts.append(TextPlan(kind, "on_its_way" if soon else "later", row.due_at))
        elif row.status in GONE_OUT:
            texts.append(TextPlan(kind, "sent", row.sent_at or row.due_at))
        elif row.status in NOT_DELIVERED:
            texts.append(TextPlan(kind, "not_delivered", row.due_at))
    return TextsNotice(
        consent=True, opted_out=state is not None and state.is_opted_out, texts=texts
    )


def text_name(kind: MessageKind) -> str:
    return {
        MessageKind.CONFIRMATION: gettext("confirmation text"),
        MessageKind.RESCHEDULED: gettext("text with your new time"),
        MessageKind.INSTRUCTIONS: gettext("text with the visit instructions"),
        MessageKind.REMINDER: gettext("reminder text"),
        MessageKind.CANCELLATION: gettext("cancellation text"),
        MessageKind.CLOSURE_NOTICE: gettext("text asking you to choose a new time"),
    }[kind]


def arrival(moment: datetime, now: datetime) -> str:
    """ "after 8:00 AM on Tuesday, March 3" or "today after 2:30 PM"."""
    hour = clock_hour(moment)  # Spanish says "la 1:00" but "las 8:00"
    if to_local(moment).date() == to_local(now).date():
        return ngettext(
            "today after %(time)s", "today after %(time)s", hour, time=local_clock(moment)
        )
    day = local_day(moment)
    return ngettext(
        "after %(time)s on %(day)s",
        "after %(time)s on %(day)s",
        hour,
        time=local_clock(moment),
        day=day,
    )


def describe(plan: TextPlan, now: datetime) -> str:
    """One sentence about one text, in the page's language."""
    name = text_name(plan.kind)
    if plan.state == "on_its_way":
        return gettext("Your %(text)s is on its way.", text=name)
    if plan.state == "later":
        return gettext(
            "Your %(text)s will arrive %(when)s.", text=name, when=arrival(plan.due_at, now)
        )
    if plan.state == "sent":
        return gettext("Your %(text)s was sent.", text=name)
    return gettext("Your %(text)s could not be delivered.", text=name)

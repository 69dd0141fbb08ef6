"""Messages to patients: the outbox (texts and emails), its send attempts, what patients
reply by text, per-number and per-address state."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scheduler.extensions import Model
from scheduler.models.appointments import Appointment
from scheduler.models.staff import StaffUser
from scheduler.models.types import UTCDateTime, utcnow


class MessageStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a dispatcher; its lease says until when
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # not sent on purpose: opted out, visit passed, ...
    CANCELLED = "cancelled"  # the appointment changed, so the text no longer applies


# A status never moves to one of a lower rank (late or repeated callbacks).
STATUS_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.SUPPRESSED: 3,
    MessageStatus.CANCELLED: 3,
}


class Channel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"


class MessageKind(enum.StrEnum):
    CONFIRMATION = "confirmation"
    RESCHEDULED = "rescheduled"  # the confirmation of an appointment moved from another
    INSTRUCTIONS = "instructions"
    REMINDER = "reminder"
    CANCELLATION = "cancellation"
    # Written by staff in answer to a patient's text; stored as "staff_reply#N".
    STAFF_REPLY = "staff_reply"
    CLOSURE_NOTICE = "closure_notice"  # the visit's time was closed: choose another
    WAITLIST_OFFER = "waitlist_offer"


class MessageSchedule(Model):
    """When a timed text goes out: so many hours before the visit (the cadence, as data).

    ``send_if_late``: a booking made after the moment still gets the text at
    once (the instructions); otherwise the text is skipped (a 24-hour reminder
    is pointless right after the confirmation).
    """

    __tablename__ = "message_schedules"
    __table_args__ = (
        CheckConstraint("hours_before > 0", name="positive_hours_before"),
        CheckConstraint("kind IN ('instructions', 'reminder')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), unique=True)
    hours_before: Mapped[int] = mapped_column(Integer)
    send_if_late: Mapped[bool] = mapped_column(Boolean, default=False)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class OutboundMessage(Model):
    """One text or email in the outbox, written in the same transaction as the change that
    causes it. One of each kind per appointment and channel."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        UniqueConstraint("appointment_id", "kind", "channel"),
        Index("ix_outbound_messages_status_due_at", "status", "due_at"),
        CheckConstraint(
            "(channel = 'sms' AND to_phone IS NOT NULL) OR "
            "(channel = 'email' AND to_email IS NOT NULL AND payload IS NOT NULL)",
            name="addressed",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for a text that is not about a booking (a waitlist offer).
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    waitlist_offer_id: Mapped[int | None] = mapped_column(
        ForeignKey("waitlist_offers.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(5), default=Channel.SMS, server_default="sms")
    # A text's number; None for an email.
    to_phone: Mapped[str | None] = mapped_column(String(20), index=True)
    # An email's address (the patient's at queue time, lowercased); None for a text.
    to_email: Mapped[str | None] = mapped_column(String(254), index=True)
    language: Mapped[str] = mapped_column(String(2))
    # A text's words; an email's plain-text part (what staff read on the thread).
    body: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(String(255))
    # An email as it goes out (MIME: plain text, HTML, the .ics), built when queued.
    payload: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=MessageStatus.PENDING)
    # Why a text was suppressed, cancelled or failed: opted_out, visit_passed, ...
    status_reason: Mapped[str | None] = mapped_column(String(40))
    # The next moment it may go out: always inside sending hours.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Never sent at or after this (the visit's start).
    send_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # It went out while an earlier attempt of unknown outcome could not be checked with
    # the provider (its message list failed): the patient may have it twice.
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    # The start of the first attempt whose outcome is unknown (the dispatcher died, or
    # the request timed out or lost its connection): before the text is sent again, the
    # provider's message list is searched from here on. None once the outcome is known.
    in_doubt_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Renewed by the claiming dispatcher's heartbeat while it holds the text.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who wrote it, for a text staff wrote (a reply to the patient); None for the service's.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    appointment: Mapped[Appointment | None] = relationship()
    author: Mapped[StaffUser | None] = relationship()
    attempt_log: Mapped[list[MessageAttempt]] = relationship(
        back_populates="message", order_by="MessageAttempt.id", passive_deletes=True
    )


class MessageAttempt(Model):
    """One try at handing a text to the provider, whatever came of it."""

    __tablename__ = "message_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbound_messages.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # sent, retry, ambiguous, failed, suppressed, lease_expired, reconciled (found at the
    # provider after an attempt of unknown outcome: recorded, not sent again)
    outcome: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(255), default="")

    message: Mapped[OutboundMessage] = relationship(back_populates="attempt_log")


class PhoneNumberState(Model):
    """What we know about a number: opted out (STOP) or unreachable (for staff to fix)."""

    __tablename__ = "phone_number_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unreachable_code: Mapped[int | None] = mapped_column(Integer)
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def is_opted_out(self) -> bool:
        return self.opted_out_at is not None


class StatusReport(Model):
    """A delivery report from the provider, kept until it could be applied to its text.

    A report can arrive before the dispatcher has recorded the provider's id
    of the text it just sent; it is applied as soon as that id is recorded.
    """

    __tablename__ = "status_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    applied: Mapped[bool] = mapped_column(Boolean, default=False)


class InboundMessage(Model):
    """A text a patient sent us; the provider's MessageSid makes a retried webhook count once.

    Free-text replies (action "other") wait in the staff inbox until someone marks them
    handled; ``version`` makes two colleagues marking at once agree instead of erring.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_action_handled_at", "action", "handled_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_phone: Mapped[str] = mapped_column(String(20), index=True)
    to_phone: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # opt_out, opt_in, help, confirm, reschedule, other
    action: Mapped[str] = mapped_column(String(20))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    reply: Mapped[str | None] = mapped_column(Text)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    appointment: Mapped[Appointment | None] = relationship()
    handled_by: Mapped[StaffUser | None] = relationship()


class EmailAddressState(Model):
    """What we know about an email address: unsubscribed (one click in any email)."""

    __tablename__ = "email_address_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lowercased
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

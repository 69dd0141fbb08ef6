"""Telling the patients a closure affects: one action sends each a link to choose a new time.

The link is the patient's own manage link. Each channel in ``CHANNELS`` gets every
affected booking still waiting in the closed time and says what it did. The SMS
channel puts a text in the outbox like any other text, so consent, opt-out,
sending hours and the per-number cap all apply (the dispatcher checks the last
three when the text is due). The email channel emails patients who gave an
address, through the same outbox (sending hours, the per-address cap); an
unsubscribed address gets a row stored suppressed, so the board and a second
click know it was tried. A booking is told once per channel: a second click only
reaches those added since. The caller's unit of work commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from scheduler.audit import audit
from scheduler.availability.closures import NOTICE_KIND, AffectedBooking, bookings_of_closure
from scheduler.extensions import db
from scheduler.mail.outbox import UNSUBSCRIBED, email_address_of, queue_email, unsubscribed_at
from scheduler.models import MessageKind, PhoneNumberState, ScheduleException
from scheduler.sms.outbox import queue_text_again

# What a channel did for one booking.
SENT = "sent"  # queued to go out (when sending hours allow)
ALREADY = "already"  # this booking was told already
NO_CONSENT = "no_consent"  # the patient did not agree to this channel: call them
OPTED_OUT = "opted_out"  # the number replied STOP: call them
NOT_AHEAD = "not_ahead"  # the visit's time has passed
NO_ADDRESS = "no_address"  # the patient gave no email address
# UNSUBSCRIBED (the outbox's "unsubscribed"): the address asked for no more emails.
# What a channel did that reached the patient.
REACHED = frozenset({SENT, ALREADY})

Channel = Callable[[AffectedBooking, datetime], str]


def text_reschedule_link(booking: AffectedBooking, now: datetime) -> str:
    """Queue the closure text with the patient's manage link, if texts may go to them."""
    appt = booking.appointment
    patient = appt.patient
    if not patient.sms_consent:
        return NO_CONSENT
    if booking.notice is not None:
        return ALREADY
    number = db.session.scalar(
        select(PhoneNumberState).where(PhoneNumberState.phone == patient.phone)
    )
    if number is not None and number.is_opted_out:
        return OPTED_OUT
    try:
        with db.session.begin_nested():  # a colleague's click at the same moment queued it
            queue_text_again(appt, MessageKind.CLOSURE_NOTICE, NOTICE_KIND, now)
    except IntegrityError:
        return ALREADY
    return SENT


def email_reschedule_link(booking: AffectedBooking, now: datetime) -> str:
    """Queue the closure email with the patient's manage link, if they gave an address."""
    appt = booking.appointment
    address = email_address_of(appt)
    if address is None:
        return NO_ADDRESS
    if booking.email_notice is not None:
        told = booking.email_notice.status_reason != UNSUBSCRIBED
        return ALREADY if told else UNSUBSCRIBED
    unsubscribed = unsubscribed_at(address) is not None
    try:
        with db.session.begin_nested():  # a colleague's click at the same moment queued it
            queue_email(
                appt,
                MessageKind.CLOSURE_NOTICE,
                now,
                stored_kind=NOTICE_KIND,
                status_reason=UNSUBSCRIBED if unsubscribed else None,
            )
    except IntegrityError:
        return ALREADY
    return UNSUBSCRIBED if unsubscribed else SENT


CHANNELS: dict[str, Channel] = {"sms": text_reschedule_link, "email": email_reschedule_link}


def register_channel(name: str, channel: Channel) -> None:
    """Add a way to reach patients (email, for one); it is asked for every booking."""
    CHANNELS[name] = channel


@dataclass
class NoticeOutcome:
    # Per channel, per outcome: the references of the bookings.
    results: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def references(self, channel: str, outcome: str) -> list[str]:
        return self.results.get(channel, {}).get(outcome, [])

    @property
    def sent_count(self) -> int:
        return sum(len(by.get(SENT, [])) for by in self.results.values())

    @property
    def unreached(self) -> list[str]:
        """Bookings ahead that no channel reached, now or before: staff call them."""
        seen: dict[str, bool] = {}
        for by in self.results.values():
            for result, refs in by.items():
                for ref in refs:
                    if result == NOT_AHEAD:
                        seen[ref] = True
                    else:
                        seen[ref] = seen.get(ref, False) or result in REACHED
        return [ref for ref, reached in seen.items() if not reached]


def notify_closure(closure: ScheduleException, now: datetime) -> NoticeOutcome:
    """Send every booking still in the closed time a way to choose a new time; audited."""
    bookings = bookings_of_closure(closure)
    outcome = NoticeOutcome()
    for booking in bookings.waiting:
        appt = booking.appointment
        if not appt.is_changeable:  # arrived, completed, no-show: nothing to move
            continue
        for name, channel in CHANNELS.items():
            result = NOT_AHEAD if appt.slot.starts_at <= now else channel(booking, now)
            outcome.results.setdefault(name, {}).setdefault(result, []).append(appt.reference)
    location = closure.location
    audit(
        "closure.notified",
        "location",
        location.id,
        location.name,
        day=closure.day.isoformat(),
        reason=closure.reason,
        closure_id=closure.id,
        **{
            f"{name}_{result}": refs
            for name, by in outcome.results.items()
            for result, refs in by.items()
        },
    )
    return outcome

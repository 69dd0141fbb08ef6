"""How an offer reaches a patient: one entry per channel, in one table.

A channel says whether the patient asked for it, why it cannot reach them
now (no consent, opted out, over the cap), how to queue the offer's message
in the outbox and how to withdraw messages not sent yet: texts (SMS consent,
not opted out, under the per-number cap) and emails (an address given, not
unsubscribed, under the per-address cap). A patient who asked for both gets both,
and both are withdrawn together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from scheduler.content import content_for
from scheduler.display import public_address
from scheduler.mail.caps import emails_to_address_since
from scheduler.mail.messages import email_date, email_time
from scheduler.mail.outbox import (
    EmailAbout,
    cancel_offer_emails,
    queue_offer_email,
    unsubscribed_at,
)
from scheduler.models import WaitlistEntry, WaitlistOffer
from scheduler.sms.caps import WINDOW, texts_to_number_since
from scheduler.sms.outbox import cancel_offer_texts, is_opted_out, queue_offer_text
from scheduler.sms.segments import gsm_safe
from scheduler.sms.texts import clinic_values, fill_template, text_name, visit_date, visit_time
from scheduler.waitlist.links import offer_url


@dataclass(frozen=True)
class OfferChannel:
    name: str
    # The patient asked for offers this way.
    wanted: Callable[[WaitlistEntry], bool]
    # Why this channel cannot reach them now (None: it can).
    refusal: Callable[[WaitlistEntry, datetime], str | None]
    # Put the offer's message in the outbox (the caller's transaction).
    queue: Callable[[WaitlistOffer, datetime], None]
    # Messages of these offers not sent yet never go out.
    withdraw: Callable[[list[int], str, datetime], int]


def minimum_notice() -> timedelta:
    return timedelta(minutes=current_app.config["MIN_NOTICE_MINUTES"])


def offer_values(offer: WaitlistOffer) -> dict[str, str]:
    """What an offer's message says: the minimum necessary, in the patient's language."""
    entry, slot = offer.entry, offer.slot
    location = slot.location
    local = slot.starts_at.astimezone(ZoneInfo(location.timezone))
    return {
        **clinic_values(),
        "first_name": text_name(entry.patient.first_name),
        "location": gsm_safe(location.name),
        "date": visit_date(local, entry.language),
        "time": visit_time(local, entry.language),
        "offer_url": offer_url(offer),
        "minutes": str(current_app.config["WAITLIST_OFFER_MINUTES"]),
    }


def _text_refusal(entry: WaitlistEntry, now: datetime) -> str | None:
    patient = entry.patient
    if not patient.sms_consent:
        return "no_sms_consent"
    if is_opted_out(patient.phone):
        return "opted_out"
    cap = current_app.config["SMS_MAX_PER_NUMBER_PER_DAY"]
    if texts_to_number_since(patient.phone, now - WINDOW) >= cap:
        return "number_daily_cap"
    return None


def _queue_text(offer: WaitlistOffer, now: datetime) -> None:
    entry = offer.entry
    template = content_for("sms_waitlist_offer", offer.slot.location, entry.language)
    queue_offer_text(
        offer.id,
        entry.patient.phone,
        entry.language,
        fill_template("sms_waitlist_offer", template, offer_values(offer)),
        offer.sent_at,
        offer.slot.starts_at - minimum_notice(),
        now,
    )


TEXT = OfferChannel(
    name="sms",
    wanted=lambda entry: entry.by_text,
    refusal=_text_refusal,
    queue=_queue_text,
    withdraw=cancel_offer_texts,
)


def email_address_of_entry(entry: WaitlistEntry) -> str | None:
    address = (entry.patient.email or "").strip().lower()
    return address or None


def offer_email_values(offer: WaitlistOffer) -> dict[str, str]:
    """What an offer's email says: the text's minimum necessary, with the long date and
    the location's address (no reference, no booking: there is none yet)."""
    entry, slot = offer.entry, offer.slot
    location = slot.location
    local = slot.starts_at.astimezone(ZoneInfo(location.timezone))
    return {
        **clinic_values(),
        "first_name": entry.patient.first_name,
        "location": location.name,
        "address": public_address(location),
        "date": email_date(local, entry.language),
        "time": email_time(local, entry.language),
        "offer_url": offer_url(offer),
        "minutes": str(current_app.config["WAITLIST_OFFER_MINUTES"]),
    }


def _email_refusal(entry: WaitlistEntry, now: datetime) -> str | None:
    address = email_address_of_entry(entry)
    if address is None:
        return "no_email_address"
    if unsubscribed_at(address) is not None:
        return "unsubscribed"
    cap = current_app.config["MAIL_MAX_PER_ADDRESS_PER_DAY"]
    if emails_to_address_since(address, now - WINDOW) >= cap:
        return "address_daily_cap"
    return None


def _queue_email(offer: WaitlistOffer, now: datetime) -> None:
    entry = offer.entry
    address = email_address_of_entry(entry)
    assert address is not None  # the refusal said so
    about = EmailAbout(
        address=address,
        language=entry.language,
        location=offer.slot.location,
        reference=entry.reference,
        values=offer_email_values(offer),
        send_before=offer.slot.starts_at - minimum_notice(),
        waitlist_offer_id=offer.id,
        given_for="waitlist",
    )
    queue_offer_email(about, offer.sent_at, now)


EMAIL = OfferChannel(
    name="email",
    wanted=lambda entry: entry.by_email,
    refusal=_email_refusal,
    queue=_queue_email,
    withdraw=cancel_offer_emails,
)
OFFER_CHANNELS: dict[str, OfferChannel] = {TEXT.name: TEXT, EMAIL.name: EMAIL}


def channels_reaching(entry: WaitlistEntry, now: datetime) -> list[OfferChannel]:
    """The channels an offer to this patient would go by now (none: no offer)."""
    return [
        channel
        for channel in OFFER_CHANNELS.values()
        if channel.wanted(entry) and channel.refusal(entry, now) is None
    ]


def withdraw_messages(offer_ids: list[int], reason: str, now: datetime) -> None:
    for channel in OFFER_CHANNELS.values():
        channel.withdraw(offer_ids, reason, now)

"""How an offer reaches a patient: one entry per channel, in one table.

A channel says whether the patient asked for it, why it cannot reach them
now (no consent, opted out, over the cap), how to queue the offer's message
in the outbox and how to withdraw messages not sent yet. A second channel
(email) is one more entry in ``OFFER_CHANNELS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from scheduler.content import content_for
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
OFFER_CHANNELS: dict[str, OfferChannel] = {TEXT.name: TEXT}


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

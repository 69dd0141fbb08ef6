"""Helpers for waitlist tests: a location with a full slot, and patients joining its list."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from scheduler.appointments.lifecycle import PATIENT_WEB
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import (
    Location,
    OutboundMessage,
    WaitlistEntry,
    WaitlistOffer,
    utcnow,
)
from scheduler.waitlist.entries import WaitlistRequest, join_waitlist
from tests.factories import CHICAGO, new_phone

_names = iter(range(1, 100_000))


def join(
    location: Location,
    earliest: date | None = None,
    latest: date | None = None,
    now: datetime | None = None,
    **overrides: Any,
) -> WaitlistEntry:
    """A patient joins the list (dates default to today .. 30 days on), one second apart."""
    now = now or utcnow()
    today = now.astimezone(CHICAGO).date()
    n = next(_names)
    values: dict[str, Any] = {
        "location_id": location.id,
        "first_name": f"Wait{chr(65 + n % 26)}{chr(65 + (n // 26) % 26)}",
        "last_name": "Flores",
        "phone": new_phone(),
        "email": None,
        "date_of_birth": date(1960, 1, 1 + n % 28),
        "language": "en",
        "sms_consent": True,
        "sms_consent_text": "consent",
        "earliest": earliest or today,
        "latest": latest or today + timedelta(days=30),
    }
    values.update(overrides)
    with unit_of_work():
        entry = join_waitlist(WaitlistRequest(**values), location, PATIENT_WEB, now)
    return entry


def offers_of(slot_id: int) -> list[WaitlistOffer]:
    return list(
        db.session.scalars(
            select(WaitlistOffer)
            .where(WaitlistOffer.slot_id == slot_id)
            .order_by(WaitlistOffer.id)
            .execution_options(populate_existing=True)
        )
    )


def offer_texts() -> list[OutboundMessage]:
    return list(
        db.session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.waitlist_offer_id.is_not(None))
            .order_by(OutboundMessage.id)
            .execution_options(populate_existing=True)
        )
    )

"""At most ``MAIL_MAX_PER_ADDRESS_PER_DAY`` emails to one address in any 24 hours.

Anyone can type anyone's address into a booking form; the cap bounds what a
stranger can make the clinic send to one inbox (bookings are capped per phone,
not per address). Emails over it are suppressed with the reason
``address_daily_cap``, as texts over theirs are (``scheduler/sms/caps.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select

from scheduler.database import LOCK_EMAILS_TO_ADDRESS
from scheduler.extensions import db
from scheduler.models import Channel, MessageStatus, OutboundMessage
from scheduler.sms.caps import hold_back_over

OM = OutboundMessage
CAP_REASON = "address_daily_cap"


def emails_to_address_since(address: str, since: datetime, besides: Sequence[int] = ()) -> int:
    """Emails handed to the server for ``address`` since then, and those in flight."""
    count = db.session.scalar(
        select(func.count(OM.id)).where(
            OM.to_email == address,
            OM.channel == Channel.EMAIL,
            or_(OM.status == MessageStatus.SENDING, OM.sent_at >= since),
            OM.id.not_in(besides),
        )
    )
    return count or 0


def hold_back_over_address_cap(claimed: Sequence[Any], clock: datetime) -> list[Any]:
    """Of emails just claimed (rows with ``id`` and ``to_email``), those the cap lets go out;
    the others are suppressed in the caller's transaction (as texts over theirs are)."""
    if not claimed:
        return []
    return hold_back_over(
        claimed,
        clock,
        cap=current_app.config["MAIL_MAX_PER_ADDRESS_PER_DAY"],
        reason=CAP_REASON,
        recipient=attrgetter("to_email"),
        lock_namespace=LOCK_EMAILS_TO_ADDRESS,
        sent_since=emails_to_address_since,
    )

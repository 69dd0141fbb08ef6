"""At most ``MAIL_MAX_PER_ADDRESS_PER_DAY`` emails to one address in any 24 hours.

Anyone can type anyone's address into a booking form; the cap bounds what a
stranger can make the clinic send to one inbox (bookings are capped per phone,
not per address). Emails over it are suppressed with the reason
``address_daily_cap``, as texts over theirs are (``scheduler/sms/caps.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update

from scheduler.database import LOCK_EMAILS_TO_ADDRESS, lock_for_transaction
from scheduler.extensions import db
from scheduler.models import Channel, MessageStatus, OutboundMessage

OM = OutboundMessage
CAP_REASON = "address_daily_cap"
WINDOW = timedelta(hours=24)


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
    the others are suppressed in the caller's transaction. Each address is counted under
    its own lock, so dispatchers claiming at once cannot both send the last allowed one."""
    if not claimed:
        return []
    cap = current_app.config["MAIL_MAX_PER_ADDRESS_PER_DAY"]
    ids = [row.id for row in claimed]
    allowed: list[Any] = []
    over: list[int] = []
    ordered = sorted(claimed, key=lambda row: (row.to_email, row.id))
    for address, rows in groupby(ordered, key=lambda row: row.to_email):
        emails = list(rows)
        lock_for_transaction(LOCK_EMAILS_TO_ADDRESS, address)
        room = max(cap - emails_to_address_since(address, clock - WINDOW, besides=ids), 0)
        allowed += emails[:room]
        over += [row.id for row in emails[room:]]
    if over:
        db.session.execute(
            update(OM)
            .where(OM.id.in_(over))
            .values(
                status=MessageStatus.SUPPRESSED,
                status_reason=CAP_REASON,
                claimed_by=None,
                lease_until=None,
                attempts=OM.attempts - 1,
                updated_at=clock,
            ),
            execution_options={"synchronize_session": False},
        )
    return allowed

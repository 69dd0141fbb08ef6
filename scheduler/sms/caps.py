"""At most ``SMS_MAX_PER_NUMBER_PER_DAY`` texts to one number in any 24 hours.

SMS pumping makes a service text numbers an attacker is paid for, over and
over; a cap per number bounds what any one number can cost. Texts over the
cap are suppressed with the reason ``number_daily_cap`` (staff see it on the
appointment's thread); replies to incoming texts count and are capped too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import groupby
from operator import attrgetter
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update

from scheduler.database import LOCK_TEXTS_TO_PHONE, lock_for_transaction
from scheduler.extensions import db
from scheduler.models import InboundMessage, MessageStatus, OutboundMessage

OM = OutboundMessage
CAP_REASON = "number_daily_cap"
WINDOW = timedelta(hours=24)


def texts_to_number_since(phone: str, since: datetime, besides: Sequence[int] = ()) -> int:
    """Texts handed to the provider for ``phone`` since then, those in flight, and replies."""
    outbound = db.session.scalar(
        select(func.count(OM.id)).where(
            OM.to_phone == phone,
            or_(OM.status == MessageStatus.SENDING, OM.sent_at >= since),
            OM.id.not_in(besides),
        )
    )
    replies = db.session.scalar(
        select(func.count(InboundMessage.id)).where(
            InboundMessage.from_phone == phone,
            InboundMessage.reply.is_not(None),
            InboundMessage.received_at >= since,
        )
    )
    return (outbound or 0) + (replies or 0)


def hold_back_over_cap(claimed: Sequence[Any], clock: datetime) -> list[Any]:
    """Of texts just claimed (rows with ``id`` and ``to_phone``), those the cap lets go out;
    the others are suppressed in the same transaction (the caller commits)."""
    return hold_back_over(
        claimed,
        clock,
        cap=current_app.config["SMS_MAX_PER_NUMBER_PER_DAY"],
        reason=CAP_REASON,
        recipient=attrgetter("to_phone"),
        lock_namespace=LOCK_TEXTS_TO_PHONE,
        sent_since=texts_to_number_since,
    )


def hold_back_over(
    claimed: Sequence[Any],
    clock: datetime,
    *,
    cap: int,
    reason: str,
    recipient: Callable[[Any], str],
    lock_namespace: int,
    sent_since: Callable[..., int],
) -> list[Any]:
    """Of messages just claimed, those a per-recipient cap over ``WINDOW`` lets go out, in
    id order; the others are suppressed with ``reason`` in the caller's transaction.

    Each recipient is counted under its own lock, so dispatchers claiming at once cannot
    both send the last allowed message (texts per number, emails per address).
    """
    ids = [row.id for row in claimed]
    allowed: list[Any] = []
    over: list[int] = []
    ordered = sorted(claimed, key=lambda row: (recipient(row), row.id))
    for address, rows in groupby(ordered, key=recipient):
        batch = list(rows)
        lock_for_transaction(lock_namespace, address)
        room = max(cap - sent_since(address, clock - WINDOW, besides=ids), 0)
        allowed += batch[:room]
        over += [row.id for row in batch[room:]]
    if over:
        db.session.execute(
            update(OM)
            .where(OM.id.in_(over))
            .values(
                status=MessageStatus.SUPPRESSED,
                status_reason=reason,
                claimed_by=None,
                lease_until=None,
                attempts=OM.attempts - 1,
                updated_at=clock,
            ),
            execution_options={"synchronize_session": False},
        )
    return sorted(allowed, key=lambda row: row.id)


def may_reply(phone: str, now: datetime) -> bool:
    """Whether one more reply to an incoming text stays within the cap (caller holds no lock)."""
    lock_for_transaction(LOCK_TEXTS_TO_PHONE, phone)
    cap = current_app.config["SMS_MAX_PER_NUMBER_PER_DAY"]
    return texts_to_number_since(phone, now - WINDOW) < cap

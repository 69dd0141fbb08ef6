"""Changing opening hours, closures, extra sessions and single slots, in the caller's unit of
work, without silently dropping bookings.

A change is applied, the slots are synced, and the appointments in slots the
new rules no longer produce are listed. Unless the scheduler has seen that
list and chosen to keep them, ``BookingsLeftOut`` is raised and the unit of
work rolls everything back: nothing is saved before the scheduler knows whom
it affects. Kept appointments stay in their slot (blocked for new bookings)
for the scheduler to call and reschedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import contains_eager, joinedload

from scheduler.appointments.lifecycle import Actor, ActorKind, FreedBy, announce_place_freed
from scheduler.audit import audit
from scheduler.availability.operations import location_tz, sync_slots
from scheduler.extensions import db
from scheduler.models import CHANGEABLE, HOLDS_SLOT, Appointment, Location, Slot, utcnow


@dataclass
class ChangeOutcome:
    saved: bool
    orphans: list[Appointment] = field(default_factory=list)
    created: int = 0
    removed: int = 0

    @property
    def orphan_ids(self) -> str:
        """What the confirmation form sends back: exactly the appointments listed."""
        return ",".join(str(a.id) for a in sorted(self.orphans, key=lambda a: a.id))


class BookingsLeftOut(Exception):
    """The change would leave out bookings the scheduler has not been shown and kept."""

    def __init__(self, orphans: list[Appointment]) -> None:
        super().__init__(f"{len(orphans)} bookings left out")
        self.outcome = ChangeOutcome(saved=False, orphans=orphans)


def parse_ids(raw: str | None) -> frozenset[int]:
    parts = (raw or "").split(",")
    return frozenset(int(p) for p in parts if p.isdigit() and len(p) < 10)


def _future_bookings(location: Location) -> list[Appointment]:
    return list(
        db.session.scalars(
            select(Appointment)
            .join(Appointment.slot)
            .options(joinedload(Appointment.patient), contains_eager(Appointment.slot))
            .where(
                Slot.location_id == location.id,
                Slot.starts_at > utcnow(),
                Appointment.status.in_(CHANGEABLE),
            )
            .order_by(Slot.starts_at)
        )
    )


def change_availability(
    location: Location,
    apply: Callable[[], None],
    keep_ids: frozenset[int],
    action: str,
    **details: Any,
) -> ChangeOutcome:
    """Apply ``apply`` (model edits), sync the slots, and save only if no booking is left
    out, or if every booking left out was listed to the scheduler and kept (``keep_ids``).

    Bookings already kept by an earlier change (their slot is blocked as outside the
    hours) are not asked about again. Closing a location for booking leaves out
    every booking still ahead there.
    """
    was_active = location.is_active
    already_kept = set(
        db.session.scalars(
            select(Slot.id).where(
                Slot.location_id == location.id,
                Slot.is_blocked.is_(True),
                Slot.blocked_by_schedule.is_(True),
            )
        )
    )
    apply()
    db.session.flush()
    today = utcnow().astimezone(location_tz(location)).date()
    config = current_app.config
    horizon = today + timedelta(
        days=config["BOOKING_HORIZON_DAYS"] + config["SLOT_ROLL_MARGIN_DAYS"]
    )
    result = sync_slots(location, today, horizon)
    orphan_slot_ids = [s.id for s in result.orphaned if s.id not in already_kept]
    orphans = (
        list(
            db.session.scalars(
                select(Appointment)
                .options(joinedload(Appointment.patient), joinedload(Appointment.slot))
                .where(
                    Appointment.slot_id.in_(orphan_slot_ids),
                    Appointment.status.in_(HOLDS_SLOT),
                )
                .order_by(Appointment.slot_id)
            )
        )
        if orphan_slot_ids
        else []
    )
    if was_active and not location.is_active:
        orphans = _future_bookings(location)
    if orphans and not {a.id for a in orphans} <= keep_ids:
        raise BookingsLeftOut(orphans)
    audit(
        action,
        "location",
        location.id,
        location.name,
        kept_appointments=[a.reference for a in orphans],
        **details,
    )
    if location.is_active and result.opened:
        db.session.flush()
        now = utcnow()
        for slot, cause in result.opened:
            announce_place_freed(slot.id, FreedBy(cause), STAFF_CHANGE, now)
    return ChangeOutcome(True, orphans, result.created, result.removed)


# Availability changes are made by staff (the account is in the audit entry).
STAFF_CHANGE = Actor(ActorKind.STAFF)


def set_slot_blocked(slot: Slot, blocked: bool, reason: str) -> None:
    """Close one slot to new bookings (its appointments stay), or open it again."""
    db.session.execute(
        update(Slot).where(Slot.id == slot.id).values(is_blocked=blocked, block_reason=reason),
        execution_options={"synchronize_session": False},
    )
    action = "block" if blocked else "unblock"
    audit(f"slot.{action}", "slot", slot.id, slot.starts_at.isoformat(), reason=reason)
    if not blocked:
        announce_place_freed(slot.id, FreedBy.UNBLOCKED, STAFF_CHANGE, utcnow())

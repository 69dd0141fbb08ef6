"""Changing opening hours, closures and extra sessions without silently dropping bookings.

A change is applied, the slots are synced, and the appointments in slots the
new rules no longer produce are listed. Unless the scheduler has seen that
list and chosen to keep them, everything is rolled back: nothing is saved
before the scheduler knows whom it affects. Kept appointments stay in their
slot (blocked for new bookings) for the scheduler to call and reschedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from scheduler.availability.operations import location_tz, sync_slots
from scheduler.database import serialized_writes
from scheduler.extensions import db
from scheduler.models import HOLDS_SLOT, Appointment, Location, utcnow
from scheduler.staff.audit import audit


@dataclass
class ChangeOutcome:
    saved: bool
    orphans: list[Appointment] = field(default_factory=list)
    created: int = 0
    removed: int = 0


def change_availability(
    location: Location,
    apply: Callable[[], None],
    keep_orphans: bool,
    action: str,
    **details: Any,
) -> ChangeOutcome:
    """Apply ``apply`` (model edits), sync the slots, and save only if no booking is left
    out or the scheduler chose to keep those listed."""
    with serialized_writes():
        apply()
        db.session.flush()
        today = utcnow().astimezone(location_tz(location)).date()
        config = current_app.config
        horizon = today + timedelta(
            days=config["BOOKING_HORIZON_DAYS"] + config["SLOT_ROLL_MARGIN_DAYS"]
        )
        result = sync_slots(location, today, horizon)
        orphan_slot_ids = [slot.id for slot in result.orphaned]
        orphans = (
            db.session.scalars(
                select(Appointment)
                .options(joinedload(Appointment.patient), joinedload(Appointment.slot))
                .where(
                    Appointment.slot_id.in_(orphan_slot_ids),
                    Appointment.status.in_(HOLDS_SLOT),
                )
                .order_by(Appointment.slot_id)
            ).all()
            if orphan_slot_ids
            else []
        )
        if orphans and not keep_orphans:
            db.session.rollback()
            return ChangeOutcome(saved=False, orphans=list(orphans))
        audit(
            action,
            "location",
            location.id,
            location.name,
            kept_appointments=[a.reference for a in orphans],
            **details,
        )
        db.session.commit()
    return ChangeOutcome(True, list(orphans), result.created, result.removed)

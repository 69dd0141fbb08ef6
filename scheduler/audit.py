"""Writing the audit log, in the same transaction as the change it records; and reading
it back, narrowed to a person, dates, a location or an appointment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_login import current_user
from sqlalchemy import ColumnElement, and_, insert, or_, select

from scheduler.database import connection, table_of
from scheduler.extensions import db
from scheduler.models import Appointment, AuditEntry, ContentBlock, Slot, utcnow

_INSERT_ENTRY = insert(table_of(AuditEntry))


def audit_values(
    action: str,
    target_type: str,
    target_id: int | None = None,
    label: str = "",
    note: str = "",
    *,
    actor_id: int | None = None,
    actor_label: str | None = None,
    at: datetime | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The audit entry's row, by default for the signed-in staff member.

    ``details`` must name things (references, times, setting values), never
    carry tokens, passwords or patient records.
    """
    if actor_label is None:
        user = current_user if current_user and current_user.is_authenticated else None
        actor_id = user.id if user else None
        actor_label = user.email if user else "system"
    return {
        "at": at or utcnow(),
        "actor_id": actor_id,
        "actor": actor_label,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "target_label": label[:120],
        "details": details,
        "note": note[:2000],
    }


def audit(*args: Any, **kwargs: Any) -> None:
    """Add an audit entry (arguments as ``audit_values``); written with the caller's
    next flush, so it is kept only if the caller commits."""
    db.session.add(AuditEntry(**audit_values(*args, **kwargs)))


def audit_now(*args: Any, **kwargs: Any) -> None:
    """Write an audit entry at once, in the caller's unit of work (for the hot paths:
    no ORM object, no flush)."""
    connection().execute(_INSERT_ENTRY, audit_values(*args, **kwargs))


@dataclass(frozen=True)
class AuditFilter:
    """What the log is narrowed to; None means any."""

    actor_id: int | None = None
    start: datetime | None = None  # UTC, inclusive
    end: datetime | None = None  # UTC, exclusive
    location_id: int | None = None
    appointment_id: int | None = None


def audit_conditions(chosen: AuditFilter) -> list[ColumnElement[bool]]:
    """SQL conditions on AuditEntry; a location covers the location itself, its slots, its
    appointments and its own texts."""
    conditions: list[ColumnElement[bool]] = []
    if chosen.actor_id is not None:
        conditions.append(AuditEntry.actor_id == chosen.actor_id)
    if chosen.start is not None:
        conditions.append(AuditEntry.at >= chosen.start)
    if chosen.end is not None:
        conditions.append(AuditEntry.at < chosen.end)
    if chosen.appointment_id is not None:
        conditions.append(
            and_(
                AuditEntry.target_type == "appointment",
                AuditEntry.target_id == chosen.appointment_id,
            )
        )
    if chosen.location_id is not None:
        at_location = select(Slot.id).where(Slot.location_id == chosen.location_id)
        conditions.append(
            or_(
                and_(
                    AuditEntry.target_type == "location",
                    AuditEntry.target_id == chosen.location_id,
                ),
                and_(AuditEntry.target_type == "slot", AuditEntry.target_id.in_(at_location)),
                and_(
                    AuditEntry.target_type == "appointment",
                    AuditEntry.target_id.in_(
                        select(Appointment.id).where(Appointment.slot_id.in_(at_location))
                    ),
                ),
                and_(
                    AuditEntry.target_type == "content_block",
                    AuditEntry.target_id.in_(
                        select(ContentBlock.id).where(
                            ContentBlock.location_id == chosen.location_id
                        )
                    ),
                ),
            )
        )
    return conditions


def find_entries(chosen: AuditFilter, offset: int, limit: int) -> list[AuditEntry]:
    """Newest first."""
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(*audit_conditions(chosen))
            .order_by(AuditEntry.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )

"""Writing the audit log, in the same transaction as the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_login import current_user
from sqlalchemy import insert

from scheduler.database import connection, table_of
from scheduler.extensions import db
from scheduler.models import AuditEntry, utcnow

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

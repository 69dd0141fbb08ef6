"""Writing the audit log, in the same transaction as the change it records."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from scheduler.extensions import db
from scheduler.models import AuditEntry, utcnow


def audit(
    action: str,
    target_type: str,
    target_id: int | None = None,
    label: str = "",
    note: str = "",
    **details: Any,
) -> None:
    """Add an audit entry for the signed-in staff member; the caller commits.

    ``details`` must name things (references, times, setting values), never
    carry tokens, passwords or patient records.
    """
    user = current_user if current_user and current_user.is_authenticated else None
    db.session.add(
        AuditEntry(
            at=utcnow(),
            actor_id=user.id if user else None,
            actor=user.email if user else "system",
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=label[:120],
            details=details,
            note=note[:2000],
        )
    )

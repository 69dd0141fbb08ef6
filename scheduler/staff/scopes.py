"""Which locations a staff account may see and act at.

Every staff view that lists or changes something tied to a location asks here, so that
scoping accounts to locations is one rule in one place. Admins see every location.
"""

from __future__ import annotations

from flask import abort

from scheduler.models import StaffUser


def location_ids_for(user: StaffUser) -> frozenset[int] | None:
    """The ids of the locations this account may see, or None for every location.

    Accounts are not scoped yet: everyone sees every location. Scoped accounts (issue 13)
    return their locations here, admins keep None.
    """
    return None


def may_act_at(user: StaffUser, location_id: int) -> bool:
    allowed = location_ids_for(user)
    return allowed is None or location_id in allowed


def require_location(user: StaffUser, location_id: int) -> None:
    """404 for a location outside the account's scope, as if it did not exist."""
    if not may_act_at(user, location_id):
        abort(404)

"""Which locations a staff account may see and act at.

Every staff view that lists or changes something tied to a location asks here, so that
scoping accounts to locations is one rule in one place. Admins see every location; a
scheduler scoped to some locations sees only those (their calendars, appointments,
patients, availability and exports); a scheduler with no scope sees every location.
Anything outside the scope answers 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from flask import abort, g
from sqlalchemy import ColumnElement, exists, select

from scheduler.extensions import db
from scheduler.models import Appointment, Location, Slot, StaffUser, staff_user_locations

L = TypeVar("L", bound=Location)


def scoped_location_ids(user_id: int) -> frozenset[int]:
    """The locations an account is scoped to, from the database (empty: not scoped)."""
    return frozenset(
        db.session.scalars(
            select(staff_user_locations.c.location_id).where(
                staff_user_locations.c.staff_user_id == user_id
            )
        )
    )


def location_ids_for(user: StaffUser) -> frozenset[int] | None:
    """The ids of the locations this account may see, or None for every location.

    Read once per request (kept in ``g``): views ask several times.
    """
    if user.is_admin:
        return None
    cache: dict[int, frozenset[int]] = g.setdefault("staff_scopes", {})
    if user.id not in cache:
        cache[user.id] = scoped_location_ids(user.id)
    return cache[user.id] or None


def may_act_at(user: StaffUser, location_id: int) -> bool:
    allowed = location_ids_for(user)
    return allowed is None or location_id in allowed


def require_location(user: StaffUser, location_id: int) -> None:
    """404 for a location outside the account's scope, as if it did not exist."""
    if not may_act_at(user, location_id):
        abort(404)


def visible_locations(user: StaffUser, locations: Iterable[L]) -> list[L]:
    """These locations, less those outside the account's scope (order kept)."""
    allowed = location_ids_for(user)
    return [loc for loc in locations if allowed is None or loc.id in allowed]


def slot_location_condition(user: StaffUser) -> ColumnElement[bool] | None:
    """A SQL condition on ``Slot.location_id`` for this account, or None when unscoped."""
    allowed = location_ids_for(user)
    return None if allowed is None else Slot.location_id.in_(sorted(allowed))


def patient_visible_condition(user: StaffUser, patient_id: object) -> ColumnElement[bool] | None:
    """A patient is visible to a scoped account when one of their appointments is in scope."""
    allowed = location_ids_for(user)
    if allowed is None:
        return None
    return exists().where(
        Appointment.patient_id == patient_id,
        Appointment.slot_id == Slot.id,
        Slot.location_id.in_(sorted(allowed)),
    )


def require_patient(user: StaffUser, patient_id: int) -> None:
    """404 for a patient with no appointment inside the account's scope."""
    condition = patient_visible_condition(user, patient_id)
    if condition is not None and not db.session.scalar(select(condition)):
        abort(404, description="No such patient.")

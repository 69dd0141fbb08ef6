"""Finding people and their appointments: each person once, their appointments beneath."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import selectinload

from scheduler.extensions import db
from scheduler.models import Appointment, Patient, Slot

PATIENTS_SHOWN = 50


@dataclass(frozen=True)
class PersonFound:
    patient: Patient
    appointments: list[Appointment]  # soonest first


def search_conditions(query: str) -> list[ColumnElement[bool]]:
    """SQL conditions on a patient for a search by name, phone or reference."""
    text = query.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    conditions: list[ColumnElement[bool]] = []
    if len(digits) >= 4:
        conditions.append(Patient.phone.contains(digits[-10:]))
    if text:
        like = f"%{text.lower()}%"
        conditions.append(db.func.lower(Patient.first_name + " " + Patient.last_name).like(like))
        conditions.append(
            exists().where(
                Appointment.patient_id == Patient.id, Appointment.reference == text.upper()
            )
        )
    return conditions


def find_people(
    query: str,
    day_bounds: tuple[datetime, datetime] | None,
    location_ids: frozenset[int] | None = None,
) -> list[PersonFound]:
    """People whose name, phone or a reference matches, with a visit in ``day_bounds`` if given.

    With ``location_ids``, only people with a visit at those locations, and only those visits.
    """
    statement = (
        select(Patient)
        .options(selectinload(Patient.appointments).joinedload(Appointment.slot))
        .order_by(Patient.last_name, Patient.first_name, Patient.id)
        .limit(PATIENTS_SHOWN)
    )
    if query.strip():
        statement = statement.where(or_(*search_conditions(query)))
    if day_bounds is not None:
        start, end = day_bounds
        statement = statement.where(
            exists()
            .where(Appointment.patient_id == Patient.id, Appointment.slot_id == Slot.id)
            .where(Slot.starts_at >= start, Slot.starts_at < end)
        )
    if location_ids is not None:
        statement = statement.where(
            exists()
            .where(Appointment.patient_id == Patient.id, Appointment.slot_id == Slot.id)
            .where(Slot.location_id.in_(sorted(location_ids)))
        )
    people = db.session.scalars(statement).all()
    return [
        PersonFound(
            p,
            _soonest_first(
                [
                    a
                    for a in p.appointments
                    if location_ids is None or a.slot.location_id in location_ids
                ]
            ),
        )
        for p in people
    ]


def _soonest_first(appointments: Sequence[Appointment]) -> list[Appointment]:
    return sorted(appointments, key=lambda a: (a.slot.starts_at, a.id))

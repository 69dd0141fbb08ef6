"""One patient record per person: bookings find the person's record, staff merge the rest.

A booking belongs to an existing patient when the phone, the date of birth
and the last name match, the name compared without case, accents or extra
spaces ("García-Ramírez" is "garcia-ramirez"). The record then takes the new
booking's contact details and consent, and the change is audited.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from scheduler.appointments.lifecycle import Actor
from scheduler.audit import audit, audit_now
from scheduler.database import as_loaded, connection, insert_unless_taken, rows_changed
from scheduler.extensions import db
from scheduler.models import Appointment, Patient

_PATIENT_WITH_KEY = select(*Patient.__table__.columns).where(
    Patient.match_key == bindparam("match_key")
)


def normalised_name(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.replace("’", "'"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def match_key(phone: str, last_name: str, date_of_birth: date | None) -> str | None:
    """What makes two bookings one person's; None without a birth date (never matched)."""
    if date_of_birth is None:
        return None
    return f"{phone}|{date_of_birth.isoformat()}|{normalised_name(last_name)}"


@dataclass(frozen=True)
class PatientDetails:
    """What a booking says about the person."""

    first_name: str
    last_name: str
    phone: str
    email: str | None
    date_of_birth: date | None
    language: str
    sms_consent: bool
    sms_consent_text: str | None
    source: str


@dataclass(frozen=True)
class PatientFound:
    patient: Patient
    consent_withdrawn: bool = False


def patient_for_booking(details: PatientDetails, actor: Actor, now: datetime) -> PatientFound:
    """The person's record, updated with this booking's details, or a new one.

    Two first bookings of one person racing each other: the second insert finds
    the key taken (on PostgreSQL once the first has committed) and takes that record.
    """
    key = match_key(details.phone, details.last_name, details.date_of_birth)
    existing = _patient_with_key(key)
    if existing is None:
        patient = _new_patient(details, key, now)
        if patient is not None:
            return PatientFound(patient)
        existing = _patient_with_key(key)
        assert existing is not None  # the key was taken by a committed record
    withdrawn = existing.sms_consent and not details.sms_consent
    changed = _update_contact(existing, details, now)
    if changed:
        audit_now(
            "patient.updated",
            "patient",
            existing.id,
            f"patient #{existing.id}",
            actor_id=actor.staff_id,
            actor_label=actor.audit_label,
            at=now,
            fields=changed,
        )
    return PatientFound(existing, consent_withdrawn=withdrawn)


def _patient_with_key(key: str | None) -> Patient | None:
    if key is None:
        return None
    row = connection().execute(_PATIENT_WITH_KEY, {"match_key": key}).mappings().first()
    return as_loaded(Patient, row) if row is not None else None


def _new_patient(details: PatientDetails, key: str | None, now: datetime) -> Patient | None:
    """Insert the person's record; None if another record has this match key already."""
    values = {
        "first_name": details.first_name,
        "last_name": details.last_name,
        "phone": details.phone,
        "email": details.email,
        "date_of_birth": details.date_of_birth,
        "match_key": key,
        "language": details.language,
        "created_at": now,
        **_consent_values(details, now),
    }
    conn = connection()
    insert = insert_unless_taken(Patient.__table__, conn.dialect.name, Patient.id)
    patient_id = conn.execute(insert, values).scalar()
    return as_loaded(Patient, {"id": patient_id, **values}) if patient_id is not None else None


def _consent_values(details: PatientDetails, now: datetime) -> dict[str, Any]:
    given = details.sms_consent
    return {
        "sms_consent": given,
        "sms_consent_at": now if given else None,
        "sms_consent_source": details.source if given else None,
        "sms_consent_text": details.sms_consent_text if given else None,
    }


def _update_contact(patient: Patient, details: PatientDetails, now: datetime) -> list[str]:
    """Take this booking's contact details and consent; returns the names of what changed.

    An email left out this time is not a change: the one given before stays.
    """
    changed = []
    if details.email and details.email != patient.email:
        patient.email = details.email
        changed.append("email")
    if details.language != patient.language:
        patient.language = details.language
        changed.append("language")
    if details.sms_consent != patient.sms_consent or (
        details.sms_consent and details.sms_consent_text != patient.sms_consent_text
    ):
        for name, value in _consent_values(details, now).items():
            setattr(patient, name, value)
        changed.append("sms_consent")
    return changed


class SamePatient(ValueError):
    pass


def merge_patients(keep: Patient, duplicate: Patient, actor: Actor, now: datetime) -> Patient:
    """Move the duplicate's appointments to ``keep`` and delete the duplicate; audited.

    ``keep`` keeps its own details; the caller's unit of work commits.
    """
    if keep.id == duplicate.id:
        raise SamePatient("A record cannot be merged into itself.")
    moved = rows_changed(
        update(Appointment)
        .where(Appointment.patient_id == duplicate.id)
        .values(patient_id=keep.id),
    )
    if keep.email is None and duplicate.email:
        keep.email = duplicate.email
    removed_id = duplicate.id
    db.session.execute(delete(Patient).where(Patient.id == removed_id))
    db.session.expunge(duplicate)
    audit(
        "patient.merged",
        "patient",
        keep.id,
        f"patient #{keep.id}",
        actor_id=actor.staff_id,
        actor_label=actor.audit_label,
        at=now,
        merged_patient_id=removed_id,
        appointments_moved=moved,
    )
    return keep

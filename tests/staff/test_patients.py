"""Staff find each person once and merge two records of one person."""

from __future__ import annotations

from datetime import date

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import Appointment, AuditEntry, Patient
from tests.factories import make_appointment, make_slot
from tests.staff.conftest import post


def test_staff_merge_two_records_with_one_action_and_search_shows_the_person_once(
    app: Flask, staff_client: FlaskClient
) -> None:
    first = make_appointment(
        make_slot(days_ahead=3), date_of_birth=date(1956, 4, 2), phone="+18302574811"
    )
    typo = make_appointment(
        make_slot(days_ahead=4), date_of_birth=date(1956, 2, 4), phone="+18302574811"
    )
    duplicate_id = typo.patient_id
    assert first.patient_id != duplicate_id
    page = staff_client.get("/staff/appointments?q=garza").get_data(as_text=True)
    assert page.count('<section class="card person"') == 2
    merged = post(
        staff_client,
        f"/staff/patients/{duplicate_id}/merge",
        {"into": str(first.patient_id), "q": "garza"},
    )
    assert merged.status_code == 302
    assert db.session.scalar(select(func.count(Patient.id))) == 1
    db.session.expire_all()
    assert db.session.get(Appointment, typo.id).patient_id == first.patient_id
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "patient.merged")
    ).one()
    assert entry.details == {"merged_patient_id": duplicate_id, "appointments_moved": 1}
    page = staff_client.get("/staff/appointments?q=garza").get_data(as_text=True)
    assert page.count('<section class="card person"') == 1
    assert first.reference in page and typo.reference in page
    itself = post(
        staff_client,
        f"/staff/patients/{first.patient_id}/merge",
        {"into": str(first.patient_id)},
        follow_redirects=True,
    )
    assert "cannot be merged into itself" in itself.get_data(as_text=True)

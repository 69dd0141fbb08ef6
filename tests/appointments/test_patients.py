"""One patient per person: matching, concurrent first bookings, consent, merging, search."""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from scheduler.appointments.patients import match_key, normalised_name
from scheduler.extensions import db
from scheduler.models import Appointment, MessageStatus, Patient
from tests.factories import (
    add_message_schedules,
    book,
    booking_request,
    make_appointment,
    make_slot,
    texts_of,
)

PHONE = "+18302574811"


@pytest.fixture
def app_config() -> dict[str, Any]:
    """One person books several visits here: the per-phone cap is not what is tested."""
    return {"MAX_ACTIVE_BOOKINGS_PER_PHONE": 20}


def test_names_match_without_case_accents_or_extra_spaces() -> None:
    assert normalised_name("  García-Ramírez ") == normalised_name("garcia-RAMIREZ")
    assert normalised_name("D’Angelo") == normalised_name("d'angelo")
    assert normalised_name("De  la   Cruz") == "de la cruz"
    assert normalised_name("Nguyễn") == "nguyen"
    assert match_key("+18302574811", "Garza", None) is None
    assert match_key("+18302574811", "Garza", date(1956, 4, 2)) == "+18302574811|1956-04-02|garza"


def test_one_person_booking_three_times_is_one_record(app: Flask) -> None:
    for n, spelling in enumerate(("Garza", "GARZA", " garza ")):
        make_appointment(make_slot(days_ahead=3 + n), last_name=spelling, phone=PHONE)
    assert db.session.scalar(select(func.count(Patient.id))) == 1
    assert db.session.scalar(select(func.count(Appointment.id))) == 3


def test_first_bookings_of_one_person_racing_make_one_record(app: Flask) -> None:
    slots = [make_slot(days_ahead=3 + n, capacity=1) for n in range(8)]
    barrier = threading.Barrier(len(slots))
    errors: list[BaseException] = []

    def book_one(slot_id: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                book(booking_request(slot_id, phone=PHONE))
            except BaseException as error:  # reported below, not lost in the thread
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=book_one, args=(s.id,)) for s in slots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert db.session.scalar(select(func.count(Patient.id))) == 1
    assert db.session.scalar(select(func.count(Appointment.id))) == len(slots)


def test_booking_again_without_consent_withdraws_it_and_stops_pending_texts(app: Flask) -> None:
    add_message_schedules()
    first = make_appointment(make_slot(days_ahead=8), sms_consent=True, phone=PHONE)
    assert {t.status for t in texts_of(first).values()} == {MessageStatus.PENDING}
    second = make_appointment(make_slot(days_ahead=9), sms_consent=False, phone=PHONE)
    assert second.patient_id == first.patient_id
    assert texts_of(second) == {}
    assert {t.status_reason for t in texts_of(first).values()} == {"consent_withdrawn"}
    patient = db.session.get(Patient, first.patient_id)
    assert not patient.sms_consent and patient.sms_consent_at is None

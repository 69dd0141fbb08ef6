"""Many clients racing for one slot get exactly its capacity of bookings.

Real HTTP against a threaded server: every request runs in its own thread
with its own session and, on PostgreSQL, its own connection.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from scheduler.appointments.errors import BookingError
from scheduler.extensions import db
from scheduler.models import Appointment, Patient, Slot
from tests.factories import (
    api_booking,
    book,
    booking_request,
    make_appointment,
    make_slot,
    move,
)

CLIENTS = 50


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def race(url: str, slot_id: int) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(CLIENTS)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        body = api_booking(slot_id, first_name=f"Racer{chr(65 + n % 26)}{chr(65 + n // 26)}")
        barrier.wait()
        answer = post(url, body)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


@pytest.mark.parametrize("capacity", [1, 3])
def test_racing_clients_get_exactly_the_capacity(
    app: Flask, live_server: str, capacity: int
) -> None:
    slot = make_slot(capacity=capacity)
    answers = race(f"{live_server}/api/v1/appointments", slot.id)
    statuses = Counter(status for status, _ in answers)
    assert len(answers) == CLIENTS
    assert statuses == {201: capacity, 409: CLIENTS - capacity}, statuses
    assert all(body["error"] == "slot_full" for status, body in answers if status == 409)
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).booked_count == capacity
    booked = db.session.scalar(
        select(func.count(Appointment.id)).where(Appointment.slot_id == slot.id)
    )
    assert booked == capacity


def test_racing_reschedules_of_one_appointment_move_it_once(app: Flask) -> None:
    """Ten tabs moving the same booking to ten different slots: one wins, one slot is held."""
    original = make_slot(capacity=1)
    targets = [make_slot(original.location, days_ahead=4 + n, capacity=1) for n in range(10)]
    appt = make_appointment(original)
    barrier = threading.Barrier(len(targets))
    outcomes: list[str] = []

    def move_to(slot_id: int) -> None:
        with app.app_context():
            mine = db.session.get(Appointment, appt.id)
            barrier.wait()
            try:
                move(mine, slot_id)
                outcomes.append("moved")
            except BookingError as exc:
                outcomes.append(exc.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=move_to, args=(s.id,)) for s in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Counter(outcomes) == {"moved": 1, "appointment_not_changeable": 9}
    db.session.expire_all()
    held = [db.session.get(Slot, s.id).booked_count for s in [original, *targets]]
    assert sum(held) == 1 and held[0] == 0
    active = db.session.scalar(
        select(func.count(Appointment.id)).where(Appointment.status == "booked")
    )
    assert active == 1


def test_racing_tries_of_one_keyed_request_book_once(app: Flask) -> None:
    """A double click or a retried API call racing its first try: every try answers with
    the one booking; the place is taken once and the person recorded once (no birth
    date, so a second try that got as far as the patient would add a record)."""
    now = datetime(2027, 3, 8, 15, 0, tzinfo=UTC)
    slot = make_slot(starts_at=now + timedelta(days=3), capacity=3)
    request = booking_request(slot, idempotency_key="form:double-click", date_of_birth=None)
    tries = 10
    barrier = threading.Barrier(tries)
    booked: list[int] = []
    errors: list[BaseException] = []

    def one_try() -> None:
        with app.app_context():
            barrier.wait()
            try:
                booked.append(book(request, now=now).id)
            except BaseException as error:  # reported below, not lost in the thread
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=one_try) for _ in range(tries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(booked) == tries and len(set(booked)) == 1
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).booked_count == 1
    assert db.session.scalar(select(func.count(Appointment.id))) == 1
    assert db.session.scalar(select(func.count(Patient.id))) == 1

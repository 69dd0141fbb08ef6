"""The lifecycle: the transitions table, and what each change records and announces."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from scheduler.appointments.errors import (
    AppointmentNotChangeable,
    MarkNotAllowed,
    StaleAppointment,
)
from scheduler.appointments.lifecycle import (
    PATIENT_TEXT,
    PATIENT_WEB,
    TRANSITION_TO,
    TRANSITIONS,
    Actor,
    ActorKind,
    AppointmentChanged,
    EventKind,
    change_status,
    refusal,
    subscribe,
)
from scheduler.appointments.operations import book_appointment
from scheduler.audit import audit
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    AuditEntry,
    Location,
    Slot,
)
from tests.factories import booking_request, cancel, make_appointment, make_slot, move

S = AppointmentStatus
K = ActorKind
VISIT = datetime(2027, 3, 10, 16, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Chicago
BEFORE = VISIT - timedelta(days=2)
SAME_DAY = VISIT - timedelta(hours=2)
AFTER = VISIT + timedelta(minutes=5)


def unsaved(status: AppointmentStatus) -> Appointment:
    """An appointment in memory only: the table and its guards need no database."""
    location = Location(timezone="America/Chicago")
    slot = Slot(starts_at=VISIT, ends_at=VISIT + timedelta(minutes=30), location=location)
    return Appointment(status=status, slot=slot, version=1)


EXPECTED = {
    # target: (from, who, when allowed)
    S.CONFIRMED: ({S.BOOKED}, {K.PATIENT_TEXT, K.STAFF}, {BEFORE, SAME_DAY}),
    S.CANCELLED: ({S.BOOKED, S.CONFIRMED}, {K.PATIENT_WEB, K.STAFF, K.SYSTEM}, {BEFORE, SAME_DAY}),
    S.RESCHEDULED: ({S.BOOKED, S.CONFIRMED}, {K.PATIENT_WEB, K.STAFF}, {BEFORE, SAME_DAY}),
    S.ARRIVED: ({S.BOOKED, S.CONFIRMED, S.NO_SHOW}, {K.STAFF}, {SAME_DAY, AFTER}),
    S.COMPLETED: ({S.ARRIVED}, {K.STAFF}, {SAME_DAY, AFTER}),
    S.NO_SHOW: ({S.BOOKED, S.CONFIRMED, S.ARRIVED}, {K.STAFF}, {AFTER}),
}


def test_the_table_allows_exactly_the_expected_moves() -> None:
    """Every status, target, actor and moment (before, on the day, after the start)."""
    wrong = []
    for source, target, kind, now in itertools.product(S, EXPECTED, K, (BEFORE, SAME_DAY, AFTER)):
        sources, actors, moments = EXPECTED[target]
        allowed = source in sources and kind in actors and now in moments
        if (refusal(unsaved(source), target, Actor(kind), now) is None) != allowed:
            wrong.append((source, target, kind, now))
    assert wrong == []


def test_every_transition_names_its_event_and_no_target_twice() -> None:
    assert set(TRANSITION_TO) == set(EXPECTED)
    assert len(TRANSITIONS) == len(TRANSITION_TO)
    assert {t.event for t in TRANSITIONS} == set(EventKind) - {
        EventKind.BOOKED,
        EventKind.PLACE_FREED,
    }


@pytest.fixture
def events(app: Flask) -> list[AppointmentChanged]:
    seen: list[AppointmentChanged] = []
    subscribe(app, seen.append)
    return seen


def kinds(events: list[AppointmentChanged]) -> list[str]:
    return [str(e.kind) for e in events]


def test_each_change_records_history_audit_and_one_event(
    app: Flask, events: list[AppointmentChanged]
) -> None:
    slot = make_slot(days_ahead=5, capacity=1)
    appt = make_appointment(slot)
    assert kinds(events) == ["booked"]
    other = make_slot(days_ahead=6, capacity=1)
    new = move(appt, other.id)
    assert kinds(events) == ["booked", "moved", "place_freed"]
    assert events[1].moved_to is not None and events[1].moved_to.id == new.id
    assert events[2].slot_id == slot.id
    cancel(new)
    assert kinds(events)[3:] == ["cancelled", "place_freed"]
    history = db.session.execute(
        select(
            AppointmentEvent.appointment_id, AppointmentEvent.to_status, AppointmentEvent.actor
        ).order_by(AppointmentEvent.id)
    ).all()
    assert [(row.to_status, row.actor) for row in history] == [
        ("booked", "patient_web"),
        ("rescheduled", "patient_web"),
        ("booked", "patient_web"),
        ("cancelled", "patient_web"),
    ]
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == [
        "appointment.booked",
        "appointment.moved",
        "appointment.booked",
        "appointment.cancelled",
    ]
    db.session.expire_all()
    assert [s.booked_count for s in db.session.scalars(select(Slot).order_by(Slot.id))] == [0, 0]


def test_a_change_that_fails_later_in_its_unit_leaves_no_trace(
    app: Flask, events: list[AppointmentChanged]
) -> None:
    appt = make_appointment(make_slot(days_ahead=5))
    with pytest.raises(RuntimeError), unit_of_work():
        change_status(appt, S.CANCELLED, PATIENT_WEB, datetime.now(UTC))
        raise RuntimeError("the request dies after the change")
    db.session.expire_all()
    assert db.session.get(Appointment, appt.id).status == "booked"
    assert db.session.scalar(select(func.count(AuditEntry.id))) == 1  # the booking's
    assert db.session.get(Slot, appt.slot_id).booked_count == 1


def test_a_stale_version_or_a_refused_move_changes_nothing(app: Flask) -> None:
    appt = make_appointment(make_slot(days_ahead=5))
    with pytest.raises(StaleAppointment), unit_of_work():
        change_status(appt, S.CANCELLED, Actor(K.STAFF), datetime.now(UTC), expected_version=7)
    with pytest.raises(MarkNotAllowed), unit_of_work():
        change_status(appt, S.NO_SHOW, Actor(K.STAFF), datetime.now(UTC))
    with pytest.raises(AppointmentNotChangeable), unit_of_work():
        change_status(appt, S.CANCELLED, PATIENT_TEXT, datetime.now(UTC))  # not by text
    db.session.expire_all()
    fresh = db.session.get(Appointment, appt.id)
    assert (fresh.status, fresh.version) == ("booked", 1)


def test_an_operation_keeps_the_callers_pending_work(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference drawn twice is drawn again inside a savepoint; what the caller added
    before in the same unit of work is committed with the booking."""
    first = make_appointment(make_slot(days_ahead=5))
    draws: list[Any] = [first.reference, first.reference]

    def reference(code: str) -> str:
        return draws.pop(0) if draws else f"{code}-W4W4"

    from scheduler.appointments import operations

    monkeypatch.setattr(operations, "new_reference", reference)
    with unit_of_work():
        audit("test.pending_work", "test", label="added before the booking")
        second = book_appointment(
            booking_request(make_slot(days_ahead=6), first_name="Luz"), PATIENT_WEB
        )
    assert second.reference.endswith("-W4W4") and not draws
    assert (
        db.session.scalar(
            select(AuditEntry.target_label).where(AuditEntry.action == "test.pending_work")
        )
        == "added before the booking"
    )

"""The appointment lifecycle: the one place an appointment is created or changes status.

``TRANSITIONS`` says from which status to which, who may make each move and
when. ``change_status`` applies one under the expected version and, in the
same transaction, writes the status history, the audit entry and a domain
event; ``record_booking`` does the same for a new appointment. Places in a
slot are freed here too, so ``booked_count`` counts exactly the appointments
that hold a place.

Subscribers (texts today; email, waitlist offers and integrations alike)
connect to ``appointment_changed`` for their app and write what they need
(outbox rows) in the same transaction. Nothing else queues a message because
an appointment changed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from blinker import Namespace
from flask import Flask
from sqlalchemy import bindparam, insert, update

from scheduler.appointments.errors import (
    STALE_MESSAGE,
    AppointmentNotChangeable,
    MarkNotAllowed,
    StaleAppointment,
)
from scheduler.appointments.places import release_place
from scheduler.audit import audit_values
from scheduler.availability.slots import local_day_bounds
from scheduler.database import connection, rows_changed
from scheduler.extensions import current_app_object, db
from scheduler.models import (
    HOLDS_SLOT,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    AuditEntry,
    StaffUser,
)

S = AppointmentStatus


class ActorKind(enum.StrEnum):
    PATIENT_WEB = "patient_web"  # the online form and the manage link
    PATIENT_TEXT = "patient_text"  # a reply to a text (C)
    API = "api"  # the clinic's website or another integration
    STAFF = "staff"
    SYSTEM = "system"  # jobs and commands


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the kind (what the transitions table allows) and, for staff, who."""

    kind: ActorKind
    staff_id: int | None = None
    staff_email: str | None = None

    @classmethod
    def staff(cls, user: StaffUser) -> Actor:
        return cls(ActorKind.STAFF, user.id, user.email)

    @property
    def history_label(self) -> str:
        """What the status history keeps: the kind, and the account for staff."""
        return f"staff:{self.staff_id}" if self.staff_id is not None else str(self.kind)

    @property
    def audit_label(self) -> str:
        return self.staff_email or AUDIT_LABELS[self.kind]


AUDIT_LABELS = {
    ActorKind.PATIENT_WEB: "patient (online)",
    ActorKind.PATIENT_TEXT: "patient (text reply)",
    ActorKind.API: "api",
    ActorKind.STAFF: "staff",
    ActorKind.SYSTEM: "system",
}
PATIENT_WEB = Actor(ActorKind.PATIENT_WEB)
PATIENT_TEXT = Actor(ActorKind.PATIENT_TEXT)
API = Actor(ActorKind.API)
SYSTEM = Actor(ActorKind.SYSTEM)


class EventKind(enum.StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    MOVED = "moved"
    CONFIRMED = "confirmed"
    ARRIVED = "arrived"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    PLACE_FREED = "place_freed"


@dataclass(frozen=True)
class AppointmentChanged:
    """A domain event, delivered to subscribers inside the transaction that made it.

    ``moved_to``: on MOVED, the new appointment. ``slot_id``: on PLACE_FREED, the
    slot with a free place now. ``details``: what else subscribers may need
    (``consent_withdrawn`` on BOOKED).
    """

    kind: EventKind
    appointment: Appointment
    actor: Actor
    at: datetime
    previous_status: str | None = None
    moved_to: Appointment | None = None
    slot_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


signals = Namespace()
appointment_changed = signals.signal("appointment-changed")
Subscriber = Callable[[AppointmentChanged], None]


def subscribe(app: Flask, subscriber: Subscriber) -> None:
    """Deliver this app's events to ``subscriber`` (called in the changing transaction)."""

    def receive(sender: Flask, event: AppointmentChanged) -> None:
        subscriber(event)

    # Held strongly by the app, so the receiver lives exactly as long as the app.
    app.extensions.setdefault("appointment_subscribers", []).append(receive)
    appointment_changed.connect(receive, sender=app)


def publish(event: AppointmentChanged) -> None:
    appointment_changed.send(current_app_object(), event=event)


class FreedBy(enum.StrEnum):
    """Why a slot has room again."""

    CANCELLED = "cancelled"  # a patient's or staff's cancellation
    MOVED = "moved"  # a booking moved away
    UNBLOCKED = "unblocked"
    CAPACITY = "capacity"  # more places in the slot
    NEW_SESSION = "new_session"  # opening hours or an extra session added the slot


@dataclass(frozen=True)
class PlaceFreed:
    """A slot has room again, for whatever reason; delivered in the changing transaction.

    Appointment changes announce it from ``change_status`` (after their
    PLACE_FREED event); availability changes (unblocking, capacity, new
    sessions) through ``announce_place_freed``. Waitlist offers follow it.
    """

    slot_id: int
    cause: FreedBy
    actor: Actor
    at: datetime


place_freed = signals.signal("place-freed")
PlaceSubscriber = Callable[[PlaceFreed], None]


def subscribe_to_places(app: Flask, subscriber: PlaceSubscriber) -> None:
    """Deliver this app's "place freed" announcements to ``subscriber``."""

    def receive(sender: Flask, event: PlaceFreed) -> None:
        subscriber(event)

    app.extensions.setdefault("appointment_subscribers", []).append(receive)
    place_freed.connect(receive, sender=app)


def announce_place_freed(slot_id: int, cause: FreedBy, actor: Actor, now: datetime) -> None:
    """The one place that says a slot has room again (in the caller's transaction)."""
    place_freed.send(current_app_object(), event=PlaceFreed(slot_id, cause, actor, now))


Guard = Callable[[Appointment, datetime], str | None]


def _before_the_visit(appt: Appointment, now: datetime) -> str | None:
    if appt.slot.starts_at <= now:
        return "This appointment has already started or passed."
    return None


def _from_the_visit_day(appt: Appointment, now: datetime) -> str | None:
    location = appt.slot.location
    tz = ZoneInfo(location.timezone)
    day_start, _ = local_day_bounds(appt.slot.starts_at.astimezone(tz).date(), tz)
    if now < day_start:
        return "Arrived and completed can be marked from the day of the visit."
    return None


def _once_the_visit_began(appt: Appointment, now: datetime) -> str | None:
    if now < appt.slot.starts_at:
        return "A patient can be marked no-show only once the visit time has come."
    return None


@dataclass(frozen=True)
class Transition:
    sources: frozenset[AppointmentStatus]
    target: AppointmentStatus
    actors: frozenset[ActorKind]
    event: EventKind
    guard: Guard


K = ActorKind
CHANGEABLE = frozenset({S.BOOKED, S.CONFIRMED})
# Who may create a booking (status ``booked``, event BOOKED).
MAY_BOOK = frozenset({K.PATIENT_WEB, K.API, K.STAFF})
TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        frozenset({S.BOOKED}),
        S.CONFIRMED,
        frozenset({K.PATIENT_TEXT, K.STAFF}),
        EventKind.CONFIRMED,
        _before_the_visit,
    ),
    Transition(
        CHANGEABLE,
        S.CANCELLED,
        frozenset({K.PATIENT_WEB, K.STAFF, K.SYSTEM}),
        EventKind.CANCELLED,
        _before_the_visit,
    ),
    Transition(
        CHANGEABLE,
        S.RESCHEDULED,
        frozenset({K.PATIENT_WEB, K.STAFF}),
        EventKind.MOVED,
        _before_the_visit,
    ),
    Transition(
        frozenset({S.BOOKED, S.CONFIRMED, S.NO_SHOW}),
        S.ARRIVED,
        frozenset({K.STAFF}),
        EventKind.ARRIVED,
        _from_the_visit_day,
    ),
    Transition(
        frozenset({S.ARRIVED}),
        S.COMPLETED,
        frozenset({K.STAFF}),
        EventKind.COMPLETED,
        _from_the_visit_day,
    ),
    Transition(
        frozenset({S.BOOKED, S.CONFIRMED, S.ARRIVED}),
        S.NO_SHOW,
        frozenset({K.STAFF}),
        EventKind.NO_SHOW,
        _once_the_visit_began,
    ),
)
TRANSITION_TO: dict[AppointmentStatus, Transition] = {t.target: t for t in TRANSITIONS}
# What the front desk marks on the day (none of these frees the place).
MARKS = (S.ARRIVED, S.COMPLETED, S.NO_SHOW)


def transitions_for(appt: Appointment, actor: ActorKind, now: datetime) -> Iterator[Transition]:
    """The moves this actor may make on this appointment now."""
    for transition in TRANSITIONS:
        if (
            actor in transition.actors
            and appt.status in transition.sources
            and transition.guard(appt, now) is None
        ):
            yield transition


def refusal(
    appt: Appointment, target: AppointmentStatus, actor: Actor, now: datetime
) -> str | None:
    """Why this move cannot be made now (None: it can)."""
    transition = TRANSITION_TO.get(target)
    if transition is None or actor.kind not in transition.actors:
        return "That change is not possible here."
    if appt.status not in transition.sources:
        if transition.sources == CHANGEABLE:
            return "This appointment was already cancelled or changed."
        return f"A {appt.status.replace('_', '-')} appointment cannot be marked so."
    return transition.guard(appt, now)


def _error_for(transition: Transition, problem: str) -> Exception:
    if transition.target in MARKS:
        return MarkNotAllowed(problem)
    return AppointmentNotChangeable(problem)


def change_status(
    appt: Appointment,
    target: AppointmentStatus,
    actor: Actor,
    now: datetime,
    expected_version: int | None = None,
    note: str = "",
    moved_to: Appointment | None = None,
    audit_details: Mapping[str, Any] | None = None,
) -> Appointment:
    """Move the appointment to ``target`` if the table allows it, in the caller's unit of work.

    The UPDATE is conditional on the status (and on ``expected_version``, from
    a page the actor read), so of two racing changes exactly one wins; the
    loser gets StaleAppointment (with a version) or the refusal. Leaving a
    status that holds a place frees it (PLACE_FREED).
    """
    transition = TRANSITION_TO.get(target)
    if transition is None or actor.kind not in transition.actors:
        raise _error_for(transition or TRANSITIONS[0], "That change is not possible here.")
    if expected_version is not None and appt.version != expected_version:
        raise StaleAppointment(STALE_MESSAGE)
    problem = refusal(appt, target, actor, now)
    if problem:
        raise _error_for(transition, problem)
    previous = appt.status
    conditions = [Appointment.id == appt.id, Appointment.status.in_(transition.sources)]
    if expected_version is not None:
        conditions.append(Appointment.version == expected_version)
    changed = rows_changed(
        update(Appointment)
        .where(*conditions)
        .values(status=target, updated_at=now, version=Appointment.version + 1),
    )
    db.session.refresh(appt)
    if changed != 1:
        if expected_version is not None and appt.version != expected_version:
            raise StaleAppointment(STALE_MESSAGE)
        raise _error_for(
            transition, refusal(appt, target, actor, now) or "This appointment just changed."
        )
    freed = previous in HOLDS_SLOT and target not in HOLDS_SLOT
    if freed:
        release_place(appt.slot_id)
    _record(appt, previous, actor, now, note, transition.event, audit_details or {})
    publish(AppointmentChanged(transition.event, appt, actor, now, previous, moved_to=moved_to))
    if freed:
        publish(
            AppointmentChanged(
                EventKind.PLACE_FREED, appt, actor, now, previous, slot_id=appt.slot_id
            )
        )
        cause = FreedBy.MOVED if target == S.RESCHEDULED else FreedBy.CANCELLED
        announce_place_freed(appt.slot_id, cause, actor, now)
    return appt


def record_booking(
    appt: Appointment,
    actor: Actor,
    now: datetime,
    note: str = "",
    moved_from: Appointment | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """History, audit entry and event of a new appointment (the caller took its place).

    A booking moved from another is announced by the old one's MOVED event, not as BOOKED.
    """
    if actor.kind not in MAY_BOOK:
        raise AppointmentNotChangeable("That change is not possible here.")
    audit_details = {"moved_from": moved_from.reference} if moved_from else {}
    _record(appt, None, actor, now, note, EventKind.BOOKED, audit_details)
    if moved_from is None:
        publish(AppointmentChanged(EventKind.BOOKED, appt, actor, now, details=details or {}))


def _insert_with_names(table: Any, prefix: str) -> Any:
    """INSERT of every column but the id, each value bound as ``<prefix>_<column>``."""
    return insert(table).values(
        {
            column.name: bindparam(f"{prefix}_{column.name}", type_=column.type)
            for column in table.columns
            if not column.primary_key
        }
    )


_INSERT_HISTORY = _insert_with_names(AppointmentEvent.__table__, "history")
_INSERT_AUDIT = _insert_with_names(AuditEntry.__table__, "audit")
# The history row and the audit entry of a change: one statement on PostgreSQL (a
# data-modifying WITH), two on SQLite, which has none.
_RECORD = {
    "postgresql": [_INSERT_AUDIT.add_cte(_INSERT_HISTORY.cte("history"))],
    "sqlite": [_INSERT_HISTORY, _INSERT_AUDIT],
}


def _record(
    appt: Appointment,
    previous: str | None,
    actor: Actor,
    now: datetime,
    note: str,
    event: EventKind,
    details: Mapping[str, Any],
) -> None:
    history = {
        "appointment_id": appt.id,
        "at": now,
        "from_status": previous,
        "to_status": str(appt.status),
        "actor": actor.history_label,
        "note": note,
    }
    entry = audit_values(
        f"appointment.{event}",
        "appointment",
        appt.id,
        appt.reference,
        actor_id=actor.staff_id,
        actor_label=actor.audit_label,
        at=now,
        from_status=previous,
        to_status=str(appt.status),
        **details,
    )
    params = {f"history_{name}": value for name, value in history.items()}
    params.update((f"audit_{name}", value) for name, value in entry.items())
    conn = connection()
    for statement in _RECORD[conn.dialect.name]:
        conn.execute(statement, params)

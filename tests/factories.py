"""Model factories: small functions that build valid rows with sensible defaults."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.appointments.lifecycle import PATIENT_WEB, Actor
from scheduler.appointments.operations import (
    BookingRequest,
    book_appointment,
    cancel_appointment,
    reschedule_appointment,
)
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    Location,
    MessageSchedule,
    OpeningRule,
    OutboundMessage,
    Slot,
    utcnow,
)
from scheduler.seed import seed_clinic
from scheduler.sms.outbox import DEFAULT_SCHEDULES

CHICAGO = ZoneInfo("America/Chicago")
_counter = iter(range(1, 10_000_000))
_phones = iter(range(1000, 10_000))


def new_phone() -> str:
    """A US mobile number of its own (one phone may hold only so many bookings)."""
    return f"+1830257{next(_phones):04d}"


def make_location(**overrides: Any) -> Location:
    n = next(_counter)
    values: dict[str, Any] = {
        "slug": f"clinic-{n}",
        "name": f"Clinic {n}",
        "code": f"C{n % 100:02d}",
        "address": "1 Main St, Kerrville, TX",
        "phone": "+12109208945",
        "timezone": "America/Chicago",
        "closed_on_federal_holidays": True,
        "position": n,
        "is_active": True,
    }
    values.update(overrides)
    location = Location(**values)
    db.session.add(location)
    db.session.commit()
    return location


def add_weekly_hours(
    location: Location,
    weekdays: range | list[int] = range(5),
    start: time = time(8),
    end: time = time(17),
    slot_minutes: int = 30,
    capacity: int = 2,
) -> None:
    for weekday in weekdays:
        location.opening_rules.append(
            OpeningRule(
                weekday=weekday,
                start_time=start,
                end_time=end,
                slot_minutes=slot_minutes,
                capacity=capacity,
            )
        )
    db.session.commit()


def local_instant(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=CHICAGO).astimezone(UTC)


def today() -> date:
    """The clinic's date now, on the app's clock (the test's ``clock`` or the session's)."""
    return utcnow().astimezone(CHICAGO).date()


def days_from_today(days: int) -> date:
    return today() + timedelta(days=days)


def make_slot(
    location: Location | None = None,
    *,
    days_ahead: int = 3,
    at: time = time(10),
    capacity: int = 2,
    minutes: int = 30,
    starts_at: datetime | None = None,
    **overrides: Any,
) -> Slot:
    location = location or make_location()
    start = starts_at or local_instant(days_from_today(days_ahead), at)
    slot = Slot(
        location_id=location.id,
        starts_at=start,
        ends_at=start + timedelta(minutes=minutes),
        capacity=capacity,
        booked_count=0,
        **overrides,
    )
    db.session.add(slot)
    db.session.commit()
    return slot


def booking_request(slot: Slot | int, **overrides: Any) -> BookingRequest:
    values: dict[str, Any] = {
        "slot_id": slot if isinstance(slot, int) else slot.id,
        "first_name": "Maria",
        "last_name": "Garza",
        "phone": new_phone(),
        # No email unless a test gives one: the texts' tests count texts only.
        "email": None,
        "date_of_birth": date(1956, 4, 2),
        "language": "en",
        "sms_consent": True,
        "sms_consent_text": "consent text",
        "conservative_treatment": "yes",
        "source": "online_form",
        "idempotency_key": None,
    }
    values.update(overrides)
    return BookingRequest(**values)


def book(
    request: BookingRequest, now: datetime | None = None, actor: Actor = PATIENT_WEB
) -> Appointment:
    """Book in a unit of work of its own, as a door would."""
    with unit_of_work():
        return book_appointment(request, actor, now)


def cancel(appt: Appointment, actor: Actor = PATIENT_WEB, **options: Any) -> Appointment:
    with unit_of_work():
        return cancel_appointment(appt, actor, **options)


def move(
    appt: Appointment, slot_id: int, actor: Actor = PATIENT_WEB, **options: Any
) -> Appointment:
    with unit_of_work():
        return reschedule_appointment(appt, slot_id, actor, **options)


def make_appointment(slot: Slot | None = None, **overrides: Any) -> Appointment:
    slot = slot or make_slot()
    return book(booking_request(slot, **overrides))


def seeded_clinic() -> list[Location]:
    seed_clinic("+12109208945")
    return list(db.session.scalars(db.select(Location).order_by(Location.position)))


def api_booking(slot_id: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slot_id": slot_id,
        "first_name": "Ana",
        "last_name": "Núñez",
        "phone": new_phone(),
        "sms_consent": False,
    }
    body.update(overrides)
    return body


def add_message_schedules() -> None:
    """The default cadence (instructions 72 h, reminder 24 h before), as the seed creates it."""
    for kind, hours_before, send_if_late in DEFAULT_SCHEDULES:
        db.session.add(
            MessageSchedule(kind=kind, hours_before=hours_before, send_if_late=send_if_late)
        )
    db.session.commit()


def texts_of(appt: Appointment, channel: str = "sms") -> dict[str, OutboundMessage]:
    """An appointment's texts (or emails) by kind, fresh from the database."""
    rows = db.session.scalars(
        db.select(OutboundMessage)
        .where(OutboundMessage.appointment_id == appt.id, OutboundMessage.channel == channel)
        .execution_options(populate_existing=True)
    )
    return {row.kind: row for row in rows}


def emails_of(appt: Appointment) -> dict[str, OutboundMessage]:
    """An appointment's emails by kind, fresh from the database."""
    return texts_of(appt, channel="email")

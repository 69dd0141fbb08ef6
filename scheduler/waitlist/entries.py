"""Joining and leaving the waitlist, inside the caller's unit of work."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, update

from scheduler.appointments.errors import BookingError
from scheduler.appointments.lifecycle import Actor
from scheduler.appointments.operations import REFERENCE_ALPHABET, REFERENCE_DRAWS
from scheduler.appointments.patients import PatientDetails, normalised_name, patient_for_booking
from scheduler.audit import audit_now
from scheduler.availability.operations import next_open_slot
from scheduler.availability.slots import local_day_bounds
from scheduler.database import (
    LOCK_BOOKINGS_OF_PHONE,
    insert_unless_taken,
    lock_for_transaction,
    rows_changed,
    table_of,
)
from scheduler.extensions import db
from scheduler.models import (
    ON_THE_LIST,
    Appointment,
    Location,
    OfferOutcome,
    PartOfDay,
    Patient,
    Slot,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from scheduler.sms.outbox import cancel_pending_texts_of_patient
from scheduler.waitlist.channels import withdraw_messages

NOON = time(12)


class AlreadyWaiting(BookingError):
    """This person is on this location's list already."""

    code = "already_waiting"


class NoWayToReach(BookingError):
    """Neither SMS consent nor an email address: an offer could not reach the patient."""

    code = "no_way_to_reach"


class TooManyRequests(BookingError):
    """The phone number is on as many lists as it may be (``WAITLIST_MAX_PER_PHONE``)."""

    code = "too_many_waitlist_requests"


class NotOnTheList(BookingError):
    code = "not_on_the_list"


@dataclass(frozen=True)
class WaitlistRequest:
    location_id: int
    first_name: str
    last_name: str
    phone: str  # E.164
    email: str | None
    date_of_birth: date | None
    language: str
    sms_consent: bool
    sms_consent_text: str | None
    earliest: date
    latest: date
    weekdays: tuple[int, ...] = ()
    part_of_day: str = ""
    source: str = "online_form"
    # The booking the patient holds and would be moved from when they take an offer.
    appointment_id: int | None = None

    @property
    def patient_details(self) -> PatientDetails:
        return PatientDetails(
            first_name=self.first_name,
            last_name=self.last_name,
            phone=self.phone,
            email=self.email,
            date_of_birth=self.date_of_birth,
            language=self.language,
            sms_consent=self.sms_consent,
            sms_consent_text=self.sms_consent_text,
            source=self.source,
        )


def person_key(phone: str, last_name: str, date_of_birth: date | None) -> str:
    """Who "waits once per location": phone, birth date (when given) and last name."""
    born = date_of_birth.isoformat() if date_of_birth else ""
    return f"{phone}|{born}|{normalised_name(last_name)}"[:200]


def new_entry_reference(location_code: str) -> str:
    body = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(4))
    return f"W{location_code}-{body}"


def _first_open_time(location: Location, earliest: date, now: datetime) -> datetime | None:
    """When the patient could be seen without the list: the first open time from
    their earliest date (what ``days sooner`` is measured against)."""
    tz = ZoneInfo(location.timezone)
    start = max(local_day_bounds(earliest, tz)[0], now)
    slot = next_open_slot(location, start, now)
    return slot.starts_at if slot is not None else None


def join_waitlist(
    request: WaitlistRequest, location: Location, actor: Actor, now: datetime
) -> WaitlistEntry:
    """Put the person on the location's list; AlreadyWaiting if they are on it."""
    if not request.sms_consent and not request.email:
        raise NoWayToReach("Tick the box to get texts, or give an email address.")
    key = person_key(request.phone, request.last_name, request.date_of_birth)
    waiting = db.session.scalar(
        select(WaitlistEntry.id).where(
            WaitlistEntry.location_id == location.id,
            WaitlistEntry.person_key == key,
            WaitlistEntry.status.in_(ON_THE_LIST),
        )
    )
    if waiting is not None:
        raise AlreadyWaiting("You are on this location's waitlist already.")
    _check_phone_cap(request.phone)
    found = patient_for_booking(request.patient_details, actor, now)
    patient = found.patient
    if found.consent_withdrawn:
        # As on a booking: no longer agreeing to texts stops those still waiting.
        cancel_pending_texts_of_patient(patient.id, "consent_withdrawn", now)
    compared_with = _first_open_time(location, request.earliest, now)
    if request.appointment_id is not None:
        held = db.session.get(Appointment, request.appointment_id)
        if held is not None and held.is_changeable:
            compared_with = held.slot.starts_at
    values = {
        "location_id": location.id,
        "patient_id": patient.id,
        "person_key": key,
        "earliest": request.earliest,
        "latest": request.latest,
        "weekdays": ",".join(str(day) for day in sorted(set(request.weekdays))),
        "part_of_day": request.part_of_day,
        "joined_at": now,
        "status": WaitlistStatus.WAITING,
        "status_at": now,
        "appointment_id": request.appointment_id,
        "by_text": request.sms_consent,
        "by_email": bool(request.email),
        "language": request.language,
        "source": request.source,
        "manage_nonce": secrets.token_urlsafe(12),
        "compared_with": compared_with,
    }
    conn = db.session.connection()
    statement = insert_unless_taken(table_of(WaitlistEntry), conn.dialect.name, WaitlistEntry.id)
    for _ in range(REFERENCE_DRAWS):
        values["reference"] = new_entry_reference(location.code)
        entry_id = conn.execute(statement, values).scalar()
        if entry_id is not None:
            break
        if (
            db.session.scalar(
                select(WaitlistEntry.id).where(
                    WaitlistEntry.location_id == location.id,
                    WaitlistEntry.person_key == key,
                    WaitlistEntry.status.in_(ON_THE_LIST),
                )
            )
            is not None
        ):  # the same person joined a moment ago
            raise AlreadyWaiting("You are on this location's waitlist already.")
    else:
        raise BookingError("Could not add you to the list; please try again.")
    entry = db.session.get_one(WaitlistEntry, entry_id)
    audit_now(
        "waitlist.join",
        "waitlist_entry",
        entry.id,
        entry.reference,
        actor_id=actor.staff_id,
        actor_label=actor.audit_label,
        at=now,
        location=location.slug,
        earliest=request.earliest.isoformat(),
        latest=request.latest.isoformat(),
    )
    return entry


def _check_phone_cap(phone: str) -> None:
    """One number on only so many lists: offers are texts, and texts cost (caps.py's reason).
    Counted under the phone's lock, so joins racing each other count in turn."""
    lock_for_transaction(LOCK_BOOKINGS_OF_PHONE, phone)
    on_lists = (
        db.session.scalar(
            select(func.count(WaitlistEntry.id))
            .join(WaitlistEntry.patient)
            .where(Patient.phone == phone, WaitlistEntry.status.in_(ON_THE_LIST))
        )
        or 0
    )
    if on_lists >= current_app.config["WAITLIST_MAX_PER_PHONE"]:
        raise TooManyRequests("This phone number is on as many waitlists as it may be.")


def take_off_the_list(
    entry: WaitlistEntry, status: WaitlistStatus, actor: Actor, now: datetime, note: str = ""
) -> WaitlistEntry:
    """The patient leaves (LEFT) or staff remove them (REMOVED); open offers are declined."""
    changed = rows_changed(
        update(WaitlistEntry)
        .where(WaitlistEntry.id == entry.id, WaitlistEntry.status.in_(ON_THE_LIST))
        .values(status=status, status_at=now)
    )
    db.session.refresh(entry)
    if changed != 1:
        raise NotOnTheList("This request is no longer on the waitlist.")
    open_ids = list(
        db.session.scalars(
            select(WaitlistOffer.id).where(
                WaitlistOffer.entry_id == entry.id, WaitlistOffer.outcome.is_(None)
            )
        )
    )
    if open_ids:
        db.session.execute(
            update(WaitlistOffer)
            .where(WaitlistOffer.id.in_(open_ids))
            .values(outcome=OfferOutcome.DECLINED, outcome_at=now),
            execution_options={"synchronize_session": False},
        )
        withdraw_messages(open_ids, f"waitlist_{status}", now)
    audit_now(
        "waitlist.leave" if status == WaitlistStatus.LEFT else "waitlist.remove",
        "waitlist_entry",
        entry.id,
        entry.reference,
        note,
        actor_id=actor.staff_id,
        actor_label=actor.audit_label,
        at=now,
    )
    return entry


def window_includes(entry: WaitlistEntry, slot: Slot, tz: ZoneInfo) -> bool:
    """Whether the slot is a time the patient said they can come."""
    local = slot.starts_at.astimezone(tz)
    if not entry.earliest <= local.date() <= entry.latest:
        return False
    days = entry.weekday_numbers
    if days and local.weekday() not in days:
        return False
    if entry.part_of_day == PartOfDay.MORNING and local.time() >= NOON:
        return False
    return not (entry.part_of_day == PartOfDay.AFTERNOON and local.time() < NOON)


def longest_window_days() -> int:
    """How far ahead a window may start: the booking horizon."""
    return int(current_app.config["BOOKING_HORIZON_DAYS"])


def window_problem(earliest: date, latest: date, today: date) -> str | None:
    """Why these dates cannot be a window (None: they can); plain English, the doors translate."""
    if latest < earliest:
        return "latest_before_earliest"
    if latest < today:
        return "window_passed"
    if earliest > today + timedelta(days=longest_window_days()):
        return "window_too_far"
    return None

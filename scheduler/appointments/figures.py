"""The dashboard's figures per location: bookings ahead, confirmations by text, no-shows,
and what the waitlist refilled."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Mapped

from scheduler.appointments.lifecycle import ActorKind
from scheduler.availability.slots import local_day_bounds
from scheduler.extensions import db
from scheduler.models import (
    HOLDS_SLOT,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    Location,
    OfferOutcome,
    Patient,
    Slot,
    WaitlistEntry,
    WaitlistOffer,
)

S = AppointmentStatus
# Visits whose outcome is known: the no-show rate is taken over these.
SETTLED = (S.ARRIVED, S.COMPLETED, S.NO_SHOW)


@dataclass(frozen=True)
class WaitlistFigures:
    """The last 30 days: places freed by cancellations and moves, places the waitlist
    refilled, and the median number of days those patients were seen sooner."""

    places_freed: int = 0
    refilled: int = 0
    median_days_sooner: float | None = None
    waiting: int = 0


def waitlist_figures(location: Location, now: datetime) -> WaitlistFigures:
    month_ago = now - timedelta(days=30)
    freed = (
        db.session.scalar(
            select(func.count(AppointmentEvent.id))
            .join(AppointmentEvent.appointment)
            .join(Appointment.slot)
            .where(
                Slot.location_id == location.id,
                AppointmentEvent.at >= month_ago,
                AppointmentEvent.from_status.in_(HOLDS_SLOT),
                AppointmentEvent.to_status.in_((S.CANCELLED, S.RESCHEDULED)),
            )
        )
        or 0
    )
    sooner = list(
        db.session.execute(
            select(WaitlistOffer.days_sooner)
            .join(WaitlistOffer.entry)
            .where(
                WaitlistEntry.location_id == location.id,
                WaitlistOffer.outcome == OfferOutcome.ACCEPTED,
                WaitlistOffer.outcome_at >= month_ago,
            )
        ).scalars()
    )
    known = [days for days in sooner if days is not None]
    waiting = (
        db.session.scalar(
            select(func.count(WaitlistEntry.id)).where(
                WaitlistEntry.location_id == location.id,
                WaitlistEntry.status.in_(("waiting", "offered")),
            )
        )
        or 0
    )
    return WaitlistFigures(
        places_freed=freed,
        refilled=len(sooner),
        median_days_sooner=statistics.median(known) if known else None,
        waiting=waiting,
    )


@dataclass(frozen=True)
class LocationFigures:
    location: Location
    this_week: int
    next_week: int
    # No-shows over visits settled in the last 30 days (None: no visit yet).
    no_show_rate: float | None
    visits_30d: int
    # Of the bookings with text consent from 30 days ago on, the share confirmed by reply.
    confirm_rate: float | None
    texted: int
    waitlist: WaitlistFigures = field(default_factory=WaitlistFigures)


def location_figures(location: Location, now: datetime, this_monday: date) -> LocationFigures:
    """Two statements, whatever the number of appointments."""
    tz = ZoneInfo(location.timezone)
    week, _ = local_day_bounds(this_monday, tz)
    next_week, _ = local_day_bounds(this_monday + timedelta(days=7), tz)
    after, _ = local_day_bounds(this_monday + timedelta(days=14), tz)
    month_ago = now - timedelta(days=30)
    holds = Appointment.status.in_(HOLDS_SLOT)
    last_30_days = and_(Slot.starts_at >= month_ago, Slot.starts_at < now)

    def count_where(*conditions: ColumnElement[bool] | Mapped[bool]) -> ColumnElement[int]:
        return func.count(case((and_(*conditions), 1)))

    this_week, next_week_count, no_shows, settled, texted = db.session.execute(
        select(
            count_where(holds, Slot.starts_at >= week, Slot.starts_at < next_week),
            count_where(holds, Slot.starts_at >= next_week, Slot.starts_at < after),
            count_where(last_30_days, Appointment.status == S.NO_SHOW),
            count_where(last_30_days, Appointment.status.in_(SETTLED)),
            count_where(Slot.starts_at >= month_ago, Patient.sms_consent, holds),
        )
        .select_from(Appointment)
        .join(Appointment.slot)
        .join(Appointment.patient)
        .where(Slot.location_id == location.id)
    ).one()
    # Of the same appointments as the denominator (consent, still holding their place,
    # from 30 days ago on), those the patient confirmed by replying C.
    confirmed_by_reply = exists().where(
        AppointmentEvent.appointment_id == Appointment.id,
        AppointmentEvent.actor == ActorKind.PATIENT_TEXT,
        AppointmentEvent.to_status == S.CONFIRMED,
    )
    confirmed_by_text = (
        db.session.scalar(
            select(func.count(Appointment.id))
            .join(Appointment.slot)
            .join(Appointment.patient)
            .where(
                Slot.location_id == location.id,
                Slot.starts_at >= month_ago,
                Patient.sms_consent,
                holds,
                confirmed_by_reply,
            )
        )
        or 0
    )
    return LocationFigures(
        location=location,
        this_week=this_week,
        next_week=next_week_count,
        no_show_rate=no_shows / settled if settled else None,
        visits_30d=settled,
        confirm_rate=confirmed_by_text / texted if texted else None,
        texted=texted,
        waitlist=waitlist_figures(location, now),
    )

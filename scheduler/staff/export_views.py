"""CSV export, the per-location calendar feed, and the dashboard."""

from __future__ import annotations

import csv
import hmac
import io
from datetime import date, timedelta

from flask import Response, abort, render_template, request
from flask_login import current_user
from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from scheduler.appointments.figures import location_figures
from scheduler.audit import audit
from scheduler.availability.operations import active_location, active_locations, location_tz
from scheduler.availability.slots import local_day_bounds
from scheduler.database import unit_of_work
from scheduler.display import phone_display
from scheduler.extensions import db
from scheduler.models import (
    HOLDS_SLOT,
    Appointment,
    Location,
    Slot,
    utcnow,
)
from scheduler.staff.admin_views import feed_token_hash
from scheduler.staff.blueprint import bp
from scheduler.staff.calendar_views import date_from_query, today
from scheduler.staff.scopes import require_location, visible_locations
from scheduler.urls import public_url

FEED_PAST_DAYS = 30
CSV_COLUMNS = [
    "date",
    "time",
    "location",
    "reference",
    "status",
    "first_name",
    "last_name",
    "phone",
    "language",
    "sms_consent",
    "conservative_treatment_8_weeks",
    "booked_via",
]


def spreadsheet_safe(value: object) -> str:
    """Text a spreadsheet shows as text: a leading = + - @ would start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def appointments_between(location: Location, first: date, last: date) -> list[Appointment]:
    tz = location_tz(location)
    start, _ = local_day_bounds(first, tz)
    _, end = local_day_bounds(last, tz)
    return list(
        db.session.scalars(
            select(Appointment)
            .join(Appointment.slot)
            .options(joinedload(Appointment.patient), joinedload(Appointment.slot))
            .where(Slot.location_id == location.id, Slot.starts_at >= start, Slot.starts_at < end)
            .order_by(Slot.starts_at, Appointment.id)
        )
    )


@bp.get("/export.csv")
def export_csv() -> Response:
    location = active_location(request.args.get("location", ""))
    if location is None:
        abort(400, description="Choose a location to export.")
    require_location(current_user, location.id)
    view = request.args.get("view", "day")
    first = date_from_query()
    if view == "week":
        first -= timedelta(days=first.weekday())
    elif view != "day":
        abort(400, description="The view is day or week.")
    last = first + timedelta(days=6 if view == "week" else 0)
    tz = location_tz(location)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for appt in appointments_between(location, first, last):
        local = appt.slot.starts_at.astimezone(tz)
        patient = appt.patient
        writer.writerow(
            spreadsheet_safe(value)
            for value in (
                local.date().isoformat(),
                local.strftime("%H:%M"),
                location.name,
                appt.reference,
                appt.status,
                patient.first_name,
                patient.last_name,
                phone_display(patient.phone),
                patient.language,
                "yes" if patient.sms_consent else "no",
                appt.conservative_treatment or "",
                appt.source,
            )
        )
    with unit_of_work():
        audit(
            "export.csv", "location", location.id, location.name, first=str(first), last=str(last)
        )
    filename = f"{location.slug}-{first.isoformat()}-{view}.csv"
    # The byte order mark tells Excel on Windows the file is UTF-8 ("García-Ramírez", not
    # "GarcÃ­a-RamÃ­rez"); other spreadsheets and csv readers (utf-8-sig) take it in stride.
    return Response(
        "\ufeff" + out.getvalue(),
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/feeds/<slug>/<token>.ics")
def calendar_feed(slug: str, token: str) -> Response:
    """A location's bookings for calendar apps; the secret URL is the key, revocable by admins."""
    location = active_location(slug)
    if (
        location is None
        or not location.feed_token_hash
        or len(token) > 100
        or not hmac.compare_digest(location.feed_token_hash, feed_token_hash(token))
    ):
        abort(404)
    first = today() - timedelta(days=FEED_PAST_DAYS)
    calendar = Calendar()
    calendar.add("prodid", "-//Freedom Spine & Pain Center//scheduler//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"Consultations, {location.name}")
    host = public_url("booking.index").split("/")[2]
    for appt in appointments_between(location, first, first + timedelta(days=FEED_PAST_DAYS + 120)):
        if appt.status not in HOLDS_SLOT:
            continue
        event = Event()
        event.add("uid", f"{appt.reference}@{host}")
        event.add("dtstart", appt.slot.starts_at)
        event.add("dtend", appt.slot.ends_at)
        event.add("dtstamp", appt.updated_at)
        # Minimum necessary: calendar apps sync to phones and clouds.
        event.add(
            "summary", f"{appt.patient.first_name} {appt.patient.last_name[:1]}. ({appt.reference})"
        )
        event.add("description", f"Consultation, {appt.status.replace('_', '-')}")
        event.add("location", location.name)
        calendar.add_component(event)
    return Response(
        calendar.to_ical(),
        mimetype="text/calendar",
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
    )


@bp.get("/dashboard")
def dashboard() -> str:
    now = utcnow()
    this_monday = today() - timedelta(days=today().weekday())
    rows = [
        location_figures(location, now, this_monday)
        for location in visible_locations(current_user, active_locations())
    ]
    return render_template("staff/dashboard.html", rows=rows)

"""Each location's waitlist: who waits in which order, their windows, the offers they got
and what came of them; offering a free time by hand, and removing someone (audited)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from scheduler.appointments.errors import BookingError
from scheduler.appointments.lifecycle import Actor
from scheduler.availability.operations import active_locations, open_slots
from scheduler.availability.slots import local_day_bounds
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.lookups import row_or_404
from scheduler.models import (
    ON_THE_LIST,
    Location,
    Slot,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
    utcnow,
)
from scheduler.staff.blueprint import bp
from scheduler.staff.forms import WaitlistActionForm
from scheduler.staff.scopes import location_ids_for, require_location
from scheduler.waitlist.entries import NotOnTheList, take_off_the_list, window_includes
from scheduler.waitlist.offers import offer_by_hand

# Times listed per patient for an offer by hand.
HAND_OFFER_CHOICES = 20
# Patients who left the list, were removed or booked, shown for this many days.
RECENT_DAYS = 30


def visible_locations() -> list[Location]:
    allowed = location_ids_for(current_user)
    return [loc for loc in active_locations() if allowed is None or loc.id in allowed]


@bp.get("/waitlist")
def waitlists() -> str:
    """The first location's list (the others are one tab away)."""
    locations = visible_locations()
    if not locations:
        abort(404)
    return waitlist(locations[0].id)


def free_times_for(entry: WaitlistEntry, location: Location) -> list[Slot]:
    """Open times inside the patient's window that staff may offer them."""
    tz = ZoneInfo(location.timezone)
    start = local_day_bounds(entry.earliest, tz)[0]
    end = local_day_bounds(entry.latest, tz)[1]
    held = entry.appointment
    before = held.slot.starts_at if held is not None and held.is_changeable else None
    times = [
        slot
        for slot in open_slots(location, start, end)
        if window_includes(entry, slot, tz) and (before is None or slot.starts_at < before)
    ]
    return times[:HAND_OFFER_CHOICES]


@bp.get("/locations/<int:location_id>/waitlist")
def waitlist(location_id: int) -> str:
    require_location(current_user, location_id)
    location = row_or_404(Location, location_id, "No such location.")
    now = utcnow()
    entries = list(
        db.session.scalars(
            select(WaitlistEntry)
            .options(
                selectinload(WaitlistEntry.patient),
                selectinload(WaitlistEntry.appointment),
                selectinload(WaitlistEntry.offers).selectinload(WaitlistOffer.slot),
            )
            .where(WaitlistEntry.location_id == location.id)
            .where(
                WaitlistEntry.status.in_(ON_THE_LIST)
                | (WaitlistEntry.status_at >= now - timedelta(days=RECENT_DAYS))
            )
            .order_by(WaitlistEntry.joined_at, WaitlistEntry.id)
        )
    )
    waiting = [e for e in entries if e.status in ON_THE_LIST]
    return render_template(
        "staff/waitlist.html",
        location=location,
        locations=visible_locations(),
        waiting=waiting,
        recent=[e for e in entries if e.status not in ON_THE_LIST],
        free_times={e.id: free_times_for(e, location) for e in waiting},
        form=WaitlistActionForm(),
        now=now,
        today=now.astimezone(ZoneInfo(location.timezone)).date(),
        recent_days=RECENT_DAYS,
    )


def entry_or_404(entry_id: int) -> WaitlistEntry:
    entry = row_or_404(WaitlistEntry, entry_id, "No such waitlist entry.")
    require_location(current_user, entry.location_id)
    return entry


@bp.post("/waitlist/<int:entry_id>/offer")
def offer_time(entry_id: int) -> Response:
    entry = entry_or_404(entry_id)
    form = WaitlistActionForm()
    raw = request.form.get("slot_id", "")
    if not form.validate_on_submit() or not raw.isdigit() or len(raw) > 9:
        abort(400, description="This form has expired. Reload the page and try again.")
    try:
        with unit_of_work():
            offer_by_hand(entry, int(raw), Actor.staff(current_user), utcnow())
    except BookingError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Offer sent to {entry.patient.full_name} ({entry.reference}).", "success")
    return redirect(url_for("staff.waitlist", location_id=entry.location_id), code=303)


@bp.post("/waitlist/<int:entry_id>/remove")
def remove_from_waitlist(entry_id: int) -> Response:
    entry = entry_or_404(entry_id)
    form = WaitlistActionForm()
    if not form.validate_on_submit():
        abort(400, description="This form has expired. Reload the page and try again.")
    note = (request.form.get("note") or "").strip()[:500]
    try:
        with unit_of_work():
            take_off_the_list(
                entry, WaitlistStatus.REMOVED, Actor.staff(current_user), utcnow(), note
            )
    except NotOnTheList as exc:
        flash(str(exc), "error")
    else:
        flash(f"{entry.patient.full_name} ({entry.reference}) is off the waitlist.", "success")
    return redirect(url_for("staff.waitlist", location_id=entry.location_id), code=303)

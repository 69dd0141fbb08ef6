"""The day board and the week board of the locations an account may see.

The day board reads the day in a fixed number of statements; selecting a patient or
a place (``?appointment=`` or ``?slot=``) opens the panel with its actions, read from
what the board already loaded. Every action posts to the existing appointment and
slot views with the version shown, and comes back here (``return_to``).
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from scheduler.availability.notices import ALREADY, SENT, NoticeOutcome
from scheduler.availability.notices import notify_closure as send_closure_notices
from scheduler.availability.operations import active_locations, current_booking_window
from scheduler.database import unit_of_work
from scheduler.display import display_tz, time_of_day
from scheduler.lookups import row_or_404
from scheduler.models import Appointment, Location, ScheduleException, utcnow
from scheduler.staff.access import safe_next
from scheduler.staff.blueprint import bp
from scheduler.staff.board import (
    BoardCell,
    DayBoard,
    board_version,
    day_board,
    status_label,
    week_board,
)
from scheduler.staff.operations import marks_possible
from scheduler.staff.scopes import require_location
from scheduler.staff.scopes import visible_locations as locations_visible_to

VIEWS = ("day", "week")
# Dates outside these years are typing mistakes (and would overflow date arithmetic).
FIRST_YEAR, LAST_YEAR = 2000, 2100
# How often an open day board asks whether it changed (seconds); BOARD_POLL_SECONDS
# in the config changes it (the browser tests poll every second).
POLL_SECONDS = 20


def poll_seconds() -> int:
    return int(current_app.config.get("BOARD_POLL_SECONDS", POLL_SECONDS))


def today() -> date:
    return utcnow().astimezone(display_tz()).date()


def date_from_query(name: str = "date") -> date:
    raw = request.args.get(name)
    if not raw:
        return today()
    try:
        chosen = date.fromisoformat(raw)
    except ValueError:
        abort(400, description="Dates look like 2026-12-01.")
    if not FIRST_YEAR <= chosen.year <= LAST_YEAR:
        abort(400, description=f"Choose a date between {FIRST_YEAR} and {LAST_YEAR}.")
    return chosen


def visible_locations() -> list[Location]:
    """The open locations this account may see."""
    return locations_visible_to(current_user, active_locations())


def shown_locations(locations: list[Location]) -> tuple[str | None, list[Location]]:
    chosen = request.args.get("location") or None
    shown = [loc for loc in locations if loc.slug == chosen] if chosen else locations
    if chosen and not shown:
        abort(404, description="No such location.")
    return chosen, shown


@bp.get("/")
def index() -> str:
    return calendar()


@bp.get("/calendar")
def calendar() -> str:
    view = request.args.get("view", "day")
    if view not in VIEWS:
        abort(400, description="The view is day or week.")
    day = date_from_query()
    locations = visible_locations()
    chosen, shown = shown_locations(locations)
    if view == "week":
        return week_page(day - timedelta(days=day.weekday()), locations, chosen, shown)
    return day_page(day, locations, chosen, shown)


def day_page(
    day: date, locations: list[Location], chosen: str | None, shown: list[Location]
) -> str:
    now = utcnow()
    board = day_board(shown, day, now, display_tz())
    appt, cell = selection(board)
    return render_template(
        "staff/board_day.html",
        board=board,
        day=day,
        today=today(),
        previous_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        locations=locations,
        chosen=chosen,
        now=now,
        status_label=status_label,
        version=board_version([loc.id for loc in shown], day, display_tz()),
        poll_seconds=poll_seconds(),
        bookable_from=current_booking_window(now).earliest,
        show_earlier=request.args.get("earlier") == "1"
        or any(cell is row_cell for row in board.earlier for row_cell in row.cells),
        time_of_day=time_of_day,
        board_url=board_url(day, chosen),
        selected_appt=appt,
        selected_cell=cell,
        marks=marks_possible(appt, now) if appt else [],
    )


def board_url(day: date, chosen: str | None) -> str:
    return url_for("staff.calendar", view="day", date=day.isoformat(), location=chosen)


def selection(board: DayBoard) -> tuple[Appointment | None, BoardCell | None]:
    """The appointment or place picked on the board (only what the board shows)."""
    appointment_id = request.args.get("appointment", type=int)
    slot_id = request.args.get("slot", type=int)
    if appointment_id is None and slot_id is None:
        return None, None
    for row in board.earlier + board.rows:
        for cell in row.cells:
            if cell.slot is None:
                continue
            for appt in cell.people + cell.gone:
                if appt.id == appointment_id:
                    return appt, cell
            if cell.slot.id == slot_id:
                return None, cell
    return None, None


@bp.get("/calendar/version")
def calendar_version() -> Response:
    """What the open day board polls: a short fingerprint, with an ETag (304 if unchanged)."""
    day = date_from_query()
    _, shown = shown_locations(visible_locations())
    version = board_version([loc.id for loc in shown], day, display_tz())
    response = jsonify(version=version, poll_seconds=poll_seconds())
    response.set_etag(version)  # the board sends it back as If-None-Match
    return response.make_conditional(request)


def week_page(
    monday: date, locations: list[Location], chosen: str | None, shown: list[Location]
) -> str:
    return render_template(
        "staff/board_week.html",
        board=week_board(shown, monday, display_tz()),
        day=monday,
        today=today(),
        previous_day=monday - timedelta(days=7),
        next_day=monday + timedelta(days=7),
        locations=locations,
        chosen=chosen,
        now=utcnow(),
    )


def _patients(count: int) -> str:
    return f"{count} patient{'s' if count != 1 else ''}"


def notice_summary(outcome: NoticeOutcome) -> list[str]:
    """Who will get a text, who an email, who had them already, and whom to call."""
    texted, emailed = outcome.references("sms", SENT), outcome.references("email", SENT)
    parts = []
    if texted or not emailed:
        parts.append(f"{_patients(len(texted))} will get a text to choose a new time.")
    if emailed:
        parts.append(f"{_patients(len(emailed))} will get an email to choose a new time.")
    unreached = outcome.unreached
    if unreached:
        parts.append(f"Call {', '.join(unreached)}: no text or email reaches them.")
    for channel, name in (("sms", "text"), ("email", "email")):
        before = outcome.references(channel, ALREADY)
        if before:
            parts.append(f"{len(before)} had the {name} already.")
    return parts


@bp.post("/closures/<int:closure_id>/notify")
def notify_closure(closure_id: int) -> Response:
    """Send everyone a closure left without their visit a link to choose a new time."""
    if not FlaskForm().validate_on_submit():  # the CSRF token
        abort(400, description="This form has expired. Reload the page and try again.")
    closure = row_or_404(ScheduleException, closure_id, "No such closure.")
    if closure.kind != "closed":
        abort(404, description="No such closure.")
    require_location(current_user, closure.location_id)
    with unit_of_work():
        outcome = send_closure_notices(closure, utcnow())
    flash(" ".join(notice_summary(outcome)), "success")
    default = board_url(closure.day, closure.location.slug)
    return redirect(safe_next(request.form.get("return_to"), default))

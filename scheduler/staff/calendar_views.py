"""Day and week calendars of one or all locations."""

from __future__ import annotations

from datetime import date, timedelta

from flask import abort, render_template, request
from flask_login import current_user

from scheduler.availability.operations import active_locations
from scheduler.display import display_tz
from scheduler.models import utcnow
from scheduler.staff.blueprint import bp
from scheduler.staff.calendar import calendar_for
from scheduler.staff.forms import ActionForm
from scheduler.staff.scopes import visible_locations

VIEWS = {"day": 1, "week": 7}
# Dates outside these years are typing mistakes (and would overflow date arithmetic).
FIRST_YEAR, LAST_YEAR = 2000, 2100


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


@bp.get("/")
def index() -> str:
    return calendar()


@bp.get("/calendar")
def calendar() -> str:
    view = request.args.get("view", "day")
    if view not in VIEWS:
        abort(400, description="The view is day or week.")
    day = date_from_query()
    if view == "week":
        day -= timedelta(days=day.weekday())  # weeks start on Monday
    locations = visible_locations(current_user, active_locations())
    chosen = request.args.get("location")
    shown = [loc for loc in locations if loc.slug == chosen] if chosen else locations
    if chosen and not shown:
        abort(404, description="No such location.")
    step = timedelta(days=VIEWS[view])
    return render_template(
        "staff/calendar.html",
        view=view,
        day=day,
        days=[day + timedelta(days=n) for n in range(VIEWS[view])],
        today=today(),
        previous_day=day - step,
        next_day=day + step,
        locations=locations,
        chosen=chosen,
        columns=calendar_for(shown, day, VIEWS[view]),
        action_form=ActionForm(),
        now=utcnow(),
    )

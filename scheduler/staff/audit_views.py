"""The audit log for admins: sentences, short diffs, and a filter by person, dates,
location and appointment (a GET form: a filtered page can be bookmarked and shared)."""

from __future__ import annotations

from datetime import date

from flask import render_template, request
from sqlalchemy import func, select

from scheduler.audit import AuditFilter, find_entries
from scheduler.availability.slots import local_day_bounds
from scheduler.display import display_tz
from scheduler.extensions import db
from scheduler.models import Appointment, AuditEntry, ContentBlock, Location, Slot, StaffUser
from scheduler.staff.access import admin_required
from scheduler.staff.blueprint import bp
from scheduler.staff.words import Context, describe

AUDIT_PAGE = 50
MAX_PAGE = 2_000


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 9 else None


def _day_arg(name: str, problems: list[str], label: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        problems.append(f"{label}: dates look like 2026-12-01.")
        return None
    if not 2000 <= day.year <= 2100:
        problems.append(f"{label}: choose a date between 2000 and 2100.")
        return None
    return day


def context_for(entries: list[AuditEntry]) -> Context:
    """Where the slots and texts named in these entries are, in two queries."""
    slot_ids = {e.target_id for e in entries if e.target_type == "slot" and e.target_id}
    text_ids = {e.target_id for e in entries if e.target_type == "content_block" and e.target_id}
    return Context(
        slot_places=_location_names(Slot, slot_ids),
        text_places=_location_names(ContentBlock, text_ids),
    )


def _location_names(model: type[Slot] | type[ContentBlock], ids: set[int]) -> dict[int, str]:
    """The name of the location of each of these rows (none asked: no query)."""
    if not ids:
        return {}
    rows = db.session.execute(
        select(model.id, Location.name)
        .join(Location, Location.id == model.location_id)
        .where(model.id.in_(ids))
    )
    return {row_id: name for row_id, name in rows}


@bp.get("/audit")
@admin_required
def audit_log() -> tuple[str, int]:
    problems: list[str] = []
    people = db.session.scalars(select(StaffUser).order_by(StaffUser.email)).all()
    locations = db.session.scalars(select(Location).order_by(Location.position)).all()
    actor_id = _int_arg("person")
    location_id = _int_arg("location")
    first = _day_arg("from", problems, "From")
    last = _day_arg("to", problems, "To")
    if first and last and last < first:
        problems.append("The end date is before the start date.")
    reference = request.args.get("appointment", "").strip().upper()[:20]
    appointment_id = None
    if reference:
        appointment_id = db.session.scalar(
            select(Appointment.id).where(func.upper(Appointment.reference) == reference)
        )
        if appointment_id is None:
            problems.append(f"No appointment has the reference {reference}.")
    page = min(max(_int_arg("page") or 1, 1), MAX_PAGE)
    tz = display_tz()
    chosen = AuditFilter(
        actor_id=actor_id,
        start=local_day_bounds(first, tz)[0] if first else None,
        end=local_day_bounds(last, tz)[1] if last else None,
        location_id=location_id,
        appointment_id=appointment_id,
    )
    entries = [] if problems else find_entries(chosen, (page - 1) * AUDIT_PAGE, AUDIT_PAGE + 1)
    more = len(entries) > AUDIT_PAGE
    entries = entries[:AUDIT_PAGE]
    context = context_for(entries)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "staff/audit.html",
        rows=[(entry, describe(entry, context)) for entry in entries],
        people=people,
        locations=locations,
        chosen={
            "person": actor_id,
            "location": location_id,
            "from": first.isoformat() if first else "",
            "to": last.isoformat() if last else "",
            "appointment": reference,
        },
        problems=problems,
        page=page,
        newer=dict(args, page=page - 1) if page > 1 else None,
        older=dict(args, page=page + 1) if more else None,
        filtered=bool(args),
    ), (422 if problems else 200)

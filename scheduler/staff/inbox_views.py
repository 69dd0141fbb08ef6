"""The inbox of patients' replies, marking them handled, and answering from the thread."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response

from scheduler.appointments.validation import MAX_ID
from scheduler.database import unit_of_work
from scheduler.display import local_datetime
from scheduler.extensions import db
from scheduler.models import Appointment, InboundMessage, Location, utcnow
from scheduler.sms.outbox import sending_hours
from scheduler.sms.segments import segment_count
from scheduler.staff.access import safe_next
from scheduler.staff.appointment_views import appointment_or_404, appointment_page
from scheduler.staff.blueprint import bp
from scheduler.staff.forms import HandledForm, ReplyForm
from scheduler.staff.inbox import (
    INBOX_LIMIT,
    MAX_REPLY_SEGMENTS,
    UNMATCHED,
    ReplyRefused,
    StaleReply,
    answer_patient,
    inbox_replies,
    normalized_reply,
    reply_digest,
    reply_visible,
    sees_unmatched,
    set_handled,
    unread_by_location,
    unread_count,
    warnings_for,
)
from scheduler.staff.scopes import location_ids_for, require_location


@bp.context_processor
def inbox_badge() -> dict[str, object]:
    """``inbox_unread()`` for the staff navigation: one COUNT, only when a page asks."""

    def inbox_unread() -> int:
        if not current_user or not current_user.is_authenticated:
            return 0
        return unread_count(location_ids_for(current_user))

    return {"inbox_unread": inbox_unread}


def visible_locations() -> list[Location]:
    allowed = location_ids_for(current_user)
    locations = db.session.scalars(select(Location).order_by(Location.position, Location.id))
    return [loc for loc in locations if allowed is None or loc.id in allowed]


@bp.get("/inbox")
def inbox() -> str:
    """Free-text replies of one location (or all the account sees), unhandled first."""
    allowed = location_ids_for(current_user)
    locations = visible_locations()
    asked = request.args.get("location", "")[:40]
    chosen: int | str | None = None
    if asked == UNMATCHED:
        if not sees_unmatched(allowed):
            abort(404, description="No such location.")
        chosen = UNMATCHED
    elif asked:
        found = next((loc for loc in locations if loc.slug == asked), None)
        if found is None:
            abort(404, description="No such location.")
        chosen = found.id
    counts = unread_by_location(allowed)
    return render_template(
        "staff/inbox.html",
        replies=inbox_replies(allowed, chosen),
        locations=locations,
        asked=asked,
        counts=counts,
        total=sum(counts.values()),
        show_unmatched=sees_unmatched(allowed),
        limit=INBOX_LIMIT,
    )


def reply_or_404(message_id: int) -> InboundMessage:
    message = (
        db.session.scalar(
            select(InboundMessage)
            .options(joinedload(InboundMessage.appointment).joinedload(Appointment.slot))
            .where(InboundMessage.id == message_id)
            .execution_options(populate_existing=True)
        )
        if 1 <= message_id <= MAX_ID
        else None
    )
    if message is None or not reply_visible(location_ids_for(current_user), message):
        abort(404, description="No such reply.")
    return message


@bp.post("/inbox/<int:message_id>/handled")
def mark_reply(message_id: int) -> Response:
    """Mark a reply handled (``handled=yes``) or unread again (``handled=no``)."""
    message = reply_or_404(message_id)
    form = HandledForm()
    raw = form.version.data or ""
    if not form.validate_on_submit() or not raw.isdigit() or len(raw) > 9:
        abort(400, description="This form has expired. Reload the page and try again.")
    if form.handled.data not in ("yes", "no"):
        abort(400, description="Mark the reply handled or unread.")
    handled = form.handled.data == "yes"
    try:
        with unit_of_work():
            changed = set_handled(message, handled, int(raw), current_user, utcnow())
    except StaleReply as error:
        flash(str(error), "error")
    else:
        state = "handled" if handled else "unread"
        if changed:
            flash(f"The reply is marked {state}.", "success")
        else:
            by = f" by {message.handled_by.email}" if handled and message.handled_by else ""
            flash(f"The reply was already marked {state}{by}.", "success")
    default = url_for("staff.inbox")
    return redirect(safe_next(request.form.get("return_to"), default))


@bp.post("/appointments/<int:appointment_id>/reply/check")
def check_reply(appointment_id: int) -> tuple[dict[str, object], int]:
    """The reply editor's live check as the staff member types (the send re-checks all)."""
    appt = appointment_or_404(appointment_id)
    require_location(current_user, appt.slot.location_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        return {"ok": False, "error": "A reply is 1,000 characters at most."}, 400
    body = normalized_reply(form.body.data or "")
    count = segment_count(body)
    return {
        "ok": True,
        "characters": count.characters,
        "segments": count.segments,
        "encoding": count.encoding,
        "too_long": count.segments > MAX_REPLY_SEGMENTS,
        "warnings": [warning.message for warning in warnings_for(appt, body)],
    }, 200


@bp.post("/appointments/<int:appointment_id>/reply")
def reply(appointment_id: int) -> str | Response | tuple[str, int]:
    """Answer the patient by text; a reply with health details asks to confirm first."""
    appt = appointment_or_404(appointment_id)
    require_location(current_user, appt.slot.location_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        if form.errors.keys() - {"body"}:
            abort(400, description="This form has expired. Reload the page and try again.")
        flash("A reply is 1,000 characters at most.", "error")
        return appointment_page(appt, reply_form=form), 422
    body = normalized_reply(form.body.data or "")
    warnings = warnings_for(appt, body)
    if body and warnings and form.warned_for.data != reply_digest(body):
        form.warned_for.data = reply_digest(body)
        return appointment_page(appt, reply_form=form, reply_warnings=warnings)
    now = utcnow()
    try:
        with unit_of_work():
            queued = answer_patient(appt, body, current_user, now, bool(form.mark_handled.data))
    except ReplyRefused as error:
        flash(str(error), "error")
        return appointment_page(appt, reply_form=form), 409
    if queued.due_at > now:
        hours = sending_hours()
        flash(
            f"It is outside sending hours ({hours.start:%H:%M}–{hours.end:%H:%M}): the reply "
            f"waits and goes out {local_datetime(queued.due_at)}.",
            "success",
        )
    else:
        flash("The reply is on its way to the patient.", "success")
    return redirect(url_for("staff.appointment", appointment_id=appt.id) + "#texts")

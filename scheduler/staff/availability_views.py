"""Opening rules, closures, extra sessions and single-slot blocks of a location."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from scheduler.availability.changes import (
    BookingsLeftOut,
    ChangeOutcome,
    change_availability,
    parse_ids,
    set_slot_blocked,
)
from scheduler.availability.operations import OUTSIDE_HOURS, active_location
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.lookups import row_or_404
from scheduler.models import Location, OpeningRule, ScheduleException, Slot
from scheduler.staff.access import admin_required, safe_next
from scheduler.staff.blueprint import bp
from scheduler.staff.forms import (
    WEEKDAY_NAMES,
    WEEKDAYS,
    ExceptionForm,
    LocationForm,
    OpeningRuleForm,
    SlotBlockForm,
)
from scheduler.staff.scopes import may_act_at


def location_or_404(slug: str) -> Location:
    """Schedulers work on open locations; admins also see closed ones (to open them again)."""
    location = (
        db.session.scalar(select(Location).where(Location.slug == slug))
        if current_user.is_admin
        else active_location(slug)
    )
    if location is None or not may_act_at(current_user, location.id):
        abort(404, description="No such location.")
    return location


def page(location: Location, **forms: object) -> str:
    editing = forms.get("editing")
    edit_id = request.args.get("edit", type=int)
    if editing is None and edit_id:
        editing = next((r for r in location.opening_rules if r.id == edit_id), None)
    rule_form = forms.get("rule_form") or (
        OpeningRuleForm(obj=editing, formdata=None) if editing else OpeningRuleForm(formdata=None)
    )
    return render_template(
        "staff/availability.html",
        location=location,
        weekdays=dict(WEEKDAYS),
        rule_form=rule_form,
        exception_form=forms.get("exception_form") or ExceptionForm(formdata=None),
        editing=editing,
        orphans=forms.get("orphans", []),
        orphan_ids=forms.get("orphan_ids", ""),
        orphan_form=forms.get("orphan_form"),
        confirm_url=forms.get("confirm_url"),
        location_form=forms.get("location_form") or LocationForm(obj=location, formdata=None),
    )


def answer(
    outcome: ChangeOutcome, location: Location, what: str, **forms: object
) -> Response | tuple[str, int]:
    """Back to the page with what was saved, or the page again listing the bookings that
    stopped the change (409), with ``forms`` as the scheduler filled them."""
    if not outcome.saved:
        listed = {"orphans": outcome.orphans, "orphan_ids": outcome.orphan_ids}
        return page(location, **listed, **forms), 409
    message = f"{what} saved: {outcome.created} slots added, {outcome.removed} removed."
    if outcome.orphans:
        message += f" {len(outcome.orphans)} kept appointments need a call to reschedule."
    flash(message, "success")
    return redirect(url_for("staff.availability", slug=location.slug))


def kept_ids() -> frozenset[int]:
    """The bookings the scheduler chose to keep, as listed to them."""
    return parse_ids(request.form.get("keep_ids"))


def apply_change(
    location: Location, apply: Callable[[], None], action: str, **details: Any
) -> ChangeOutcome:
    """Save the change in a unit of work, or roll it back and say whom it would leave out."""
    try:
        with unit_of_work():
            return change_availability(location, apply, kept_ids(), action, **details)
    except BookingsLeftOut as refused:
        return refused.outcome


def rule_of(location: Location, rule_id: int) -> OpeningRule:
    rule = row_or_404(OpeningRule, rule_id, "No such opening rule.")
    if rule.location_id != location.id:
        abort(404, description="No such opening rule.")
    return rule


@bp.get("/locations/<slug>/availability")
def availability(slug: str) -> str:
    return page(location_or_404(slug))


@bp.post("/locations/<slug>/details")
@admin_required
def edit_location(slug: str) -> str | Response | tuple[str, int]:
    """Name, address, phone, holidays and whether patients can book it (admins only)."""
    location = db.session.scalar(select(Location).where(Location.slug == slug))
    if location is None:
        abort(404, description="No such location.")
    form = LocationForm()
    if not form.validate_on_submit():
        flash("; ".join(e for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("staff.availability", slug=slug))
    before = {
        "name": location.name,
        "address": location.address,
        "phone": location.phone,
        "closed_on_federal_holidays": location.closed_on_federal_holidays,
        "is_active": location.is_active,
    }
    after = {
        "name": (form.name.data or "").strip(),
        "address": (form.address.data or "").strip(),
        "phone": form.phone.data,
        "closed_on_federal_holidays": bool(form.closed_on_federal_holidays.data),
        "is_active": bool(form.is_active.data),
    }

    def apply() -> None:
        for key, value in after.items():
            setattr(location, key, value)
        if after["address"] != before["address"]:
            location.address_is_placeholder = False

    outcome = apply_change(
        location,
        apply,
        action="location.edit",
        before=before,
        after=after,
    )
    return answer(outcome, location, "Location", location_form=form, orphan_form="location")


@bp.post("/locations/<slug>/rules", defaults={"rule_id": None})
@bp.post("/locations/<slug>/rules/<int:rule_id>")
def save_rule(slug: str, rule_id: int | None) -> str | Response | tuple[str, int]:
    location = location_or_404(slug)
    rule = rule_of(location, rule_id) if rule_id is not None else None
    form = OpeningRuleForm()
    if not form.validate_on_submit():
        return page(location, rule_form=form, editing=rule), 422
    values = {
        "weekday": form.weekday.data,
        "start_time": form.start_time.data,
        "end_time": form.end_time.data,
        "slot_minutes": form.slot_minutes.data,
        "capacity": form.capacity.data,
    }

    def apply() -> None:
        target = rule or OpeningRule()
        for key, value in values.items():
            setattr(target, key, value)
        if rule is None:
            location.opening_rules.append(target)

    before = _rule_dict(rule) if rule else None
    outcome = apply_change(
        location,
        apply,
        action="availability.rule_saved",
        before=before,
        after={k: str(v) for k, v in values.items()},
    )
    return answer(
        outcome, location, "Opening hours", rule_form=form, editing=rule, orphan_form="rule"
    )


def _rule_dict(rule: OpeningRule) -> dict[str, str]:
    return {
        "weekday": str(rule.weekday),
        "start_time": str(rule.start_time),
        "end_time": str(rule.end_time),
        "slot_minutes": str(rule.slot_minutes),
        "capacity": str(rule.capacity),
    }


def rule_removal_confirmation(location: Location, rule: OpeningRule) -> str:
    hours = f"{rule.start_time.strftime('%H:%M')}–{rule.end_time.strftime('%H:%M')}"
    day = WEEKDAY_NAMES[rule.weekday]
    return render_template(
        "staff/confirm.html",
        question=f"Remove the {day} hours {hours} at {location.name}?",
        consequences=[
            f"Patients can no longer book {day}s {hours} at {location.name}: "
            "the free slots of these hours are removed from every coming week.",
            "If patients are booked in these hours, nothing is removed yet: they are listed "
            "first, to reschedule them or keep them.",
            "To open these hours again, add them again as new weekly hours.",
        ],
        action=url_for("staff.delete_rule", slug=location.slug, rule_id=rule.id),
        fields={"keep_ids": request.form.get("keep_ids", "")},
        confirm_label="Yes, remove these hours",
        back_url=url_for("staff.availability", slug=location.slug),
        back_label="No, keep them",
    )


@bp.get("/locations/<slug>/rules/<int:rule_id>/delete")
def confirm_delete_rule(slug: str, rule_id: int) -> str:
    location = location_or_404(slug)
    return rule_removal_confirmation(location, rule_of(location, rule_id))


@bp.post("/locations/<slug>/rules/<int:rule_id>/delete")
def delete_rule(slug: str, rule_id: int) -> str | Response | tuple[str, int]:
    location = location_or_404(slug)
    rule = rule_of(location, rule_id)
    if request.form.get("confirm") != "yes":  # one tap never removes hours: ask first
        return rule_removal_confirmation(location, rule)
    before = _rule_dict(rule)
    outcome = apply_change(
        location,
        lambda: location.opening_rules.remove(rule),
        action="availability.rule_deleted",
        before=before,
    )
    return answer(outcome, location, "Opening hours", confirm_url=request.path)


@bp.post("/locations/<slug>/exceptions")
def add_exception(slug: str) -> str | Response | tuple[str, int]:
    location = location_or_404(slug)
    form = ExceptionForm()
    if not form.validate_on_submit():
        return page(location, exception_form=form), 422
    extra = form.kind.data == "extra"
    exception = ScheduleException(
        day=form.day.data,
        kind=form.kind.data,
        start_time=form.start_time.data,
        end_time=form.end_time.data,
        slot_minutes=(form.slot_minutes.data or 30) if extra else None,
        capacity=(form.capacity.data or 1) if extra else None,
        reason=form.reason.data or "",
    )
    outcome = apply_change(
        location,
        lambda: location.exceptions.append(exception),
        action=f"availability.{'extra_session' if extra else 'closure'}_added",
        day=str(form.day.data),
        start_time=str(form.start_time.data or ""),
        end_time=str(form.end_time.data or ""),
        reason=form.reason.data or "",
    )
    what = "Extra session" if extra else "Closure"
    return answer(outcome, location, what, exception_form=form, orphan_form="exception")


@bp.post("/locations/<slug>/exceptions/<int:exception_id>/delete")
def delete_exception(slug: str, exception_id: int) -> str | Response | tuple[str, int]:
    location = location_or_404(slug)
    exception = row_or_404(ScheduleException, exception_id, "No such closure or session.")
    if exception.location_id != location.id:
        abort(404, description="No such closure or session.")
    day, kind = str(exception.day), exception.kind
    outcome = apply_change(
        location,
        lambda: location.exceptions.remove(exception),
        action="availability.exception_deleted",
        day=day,
        kind=kind,
    )
    return answer(outcome, location, "Change", confirm_url=request.path)


@bp.post("/slots/<int:slot_id>/<any(block, unblock):action>")
def block_slot(slot_id: int, action: str) -> Response:
    slot = row_or_404(Slot, slot_id, "No such slot.")
    if not may_act_at(current_user, slot.location_id):
        abort(404, description="No such slot.")
    form = SlotBlockForm()
    if not form.validate_on_submit():
        abort(400, description="This form has expired. Reload the page and try again.")
    blocking = action == "block"
    if not blocking and slot.block_reason == OUTSIDE_HOURS:
        flash("This slot is outside the opening hours; change the hours to open it.", "error")
        return redirect(url_for("staff.calendar"))
    reason = (form.reason.data or "Blocked by staff").strip() if blocking else ""
    with unit_of_work():
        set_slot_blocked(slot, blocking, reason)
    flash("Slot blocked: nobody new can book it." if blocking else "Slot open again.", "success")
    return redirect(safe_next(request.form.get("return_to"), url_for("staff.calendar")))

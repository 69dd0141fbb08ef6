"""Finding appointments, opening one, and everything the front desk does to it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from scheduler.appointments.detail import appointment_detail, appointment_with_patient
from scheduler.appointments.forms import BookingForm
from scheduler.appointments.lifecycle import Actor
from scheduler.appointments.operations import (
    BookingError,
    StaleAppointment,
    book_appointment,
    cancel_appointment,
    reschedule_appointment,
)
from scheduler.appointments.patients import SamePatient, merge_patients
from scheduler.appointments.search import PATIENTS_SHOWN, find_people
from scheduler.appointments.validation import MAX_ID
from scheduler.availability.operations import active_location, active_locations
from scheduler.availability.slots import local_day_bounds
from scheduler.database import unit_of_work
from scheduler.display import display_tz, local_datetime
from scheduler.lookups import row_or_404
from scheduler.models import (
    Appointment,
    Patient,
    Slot,
    utcnow,
)
from scheduler.staff.access import safe_next
from scheduler.staff.blueprint import bp
from scheduler.staff.calendar import calendar_for
from scheduler.staff.calendar_views import date_from_query
from scheduler.staff.forms import ActionForm, MergeForm, NoteForm, ReplyForm
from scheduler.staff.inbox import reply_waits_until
from scheduler.staff.operations import (
    add_note,
    mark_appointment,
    marks_possible,
    resend_instructions,
)
from scheduler.staff.scopes import (
    location_ids_for,
    may_act_at,
    require_patient,
    visible_locations,
)

SEARCH_LIMIT = 100


def appointment_or_404(appointment_id: int) -> Appointment:
    appt = appointment_with_patient(appointment_id)
    if appt is None or not may_act_at(current_user, appt.slot.location_id):
        abort(404, description="No such appointment.")
    return appt


def slot_or_404(slot_id: int) -> Slot:
    """The slot, if it is at a location this account may act at."""
    slot = row_or_404(Slot, slot_id, "No such slot.")
    if not may_act_at(current_user, slot.location_id):
        abort(404, description="No such slot.")
    return slot


def checked_version(form: ActionForm) -> int:
    raw = form.version.data or ""
    if not form.validate_on_submit() or not raw.isdigit() or len(raw) > 9:
        abort(400, description="This form has expired. Reload the page and try again.")
    return int(raw)


@bp.get("/appointments")
def appointments() -> str:
    query = request.args.get("q", "").strip()[:100]
    day = request.args.get("date")
    bounds = local_day_bounds(date_from_query(), display_tz()) if day else None
    scope = location_ids_for(current_user)
    people = find_people(query, bounds, scope) if (query or day) else []
    return render_template(
        "staff/appointments.html",
        query=query,
        day=day,
        people=people,
        limit=PATIENTS_SHOWN,
        merge_form=MergeForm(),
    )


@bp.post("/patients/<int:patient_id>/merge")
def merge_patient(patient_id: int) -> Response:
    """Merge this record into another one of the same person (their appointments move)."""
    duplicate = row_or_404(Patient, patient_id, "No such patient.")
    require_patient(current_user, duplicate.id)
    form = MergeForm()
    if not form.validate_on_submit() or form.into.data is None:
        abort(400, description="Choose the record to keep, then merge.")
    keep = row_or_404(Patient, form.into.data, "No such patient.")
    require_patient(current_user, keep.id)
    try:
        with unit_of_work():
            merge_patients(keep, duplicate, Actor.staff(current_user), utcnow())
    except SamePatient as error:
        flash(str(error), "error")
    else:
        flash(f"Merged: {keep.full_name} is one record now.", "success")
    return redirect(url_for("staff.appointments", q=request.form.get("q", "")))


@bp.get("/appointments/<int:appointment_id>")
def appointment(appointment_id: int) -> str:
    return appointment_page(appointment_or_404(appointment_id))


def appointment_page(appt: Appointment, **extra: Any) -> str:
    """The appointment's page; ``extra`` (the reply form and its warnings) as the inbox's
    reply view fills them."""
    detail = appointment_detail(appt)
    appt = detail.appointment
    return render_template(
        "staff/appointment.html",
        appt=appt,
        thread=detail.thread,
        notes=detail.notes,
        number=detail.number,
        moved_to=detail.moved_to,
        marks=marks_possible(appt, utcnow()),
        # Never filled from the request: the reply view renders this page with its own
        # form's words, which must not land in the note box (both are called "body").
        form=ActionForm(formdata=None, version=appt.version),
        note_form=NoteForm(formdata=None, version=appt.version),
        **{
            "reply_form": ReplyForm(formdata=None),
            "reply_warnings": [],
            "reply_waits_until": reply_waits_until(utcnow()),
            **extra,
        },
    )


def back_to(appt: Appointment) -> Response:
    """To the appointment's page, or where the form came from (the day board)."""
    default = url_for("staff.appointment", appointment_id=appt.id)
    return redirect(safe_next(request.form.get("return_to"), default))


@bp.post("/appointments/<int:appointment_id>/mark/<status>")
def mark(appointment_id: int, status: str) -> Response:
    appt = appointment_or_404(appointment_id)
    version = checked_version(ActionForm())
    try:
        with unit_of_work():
            mark_appointment(appt, status, version, current_user, utcnow())
    except BookingError as error:
        flash(str(error), "error")
    else:
        flash(f"{appt.patient.full_name} is marked {status.replace('_', '-')}.", "success")
    default = url_for("staff.appointment", appointment_id=appt.id)
    return redirect(safe_next(request.form.get("return_to"), default))


def cancel_consequences(appt: Appointment) -> list[str]:
    """What cancelling does, said before it is done: it cannot be undone."""
    location = appt.slot.location
    when = f"{local_datetime(appt.slot.starts_at)}, {location.name}"
    texted = (
        "The patient gets a text now saying the appointment is cancelled."
        if appt.patient.sms_consent
        else "The patient is not texted (they did not agree to texts): call them."
    )
    return [
        f"{appt.patient.full_name}'s visit on {when} ({appt.reference}) is cancelled "
        "and its place is offered to others.",
        texted,
        "This cannot be undone: to keep the visit, the patient must be booked again.",
    ]


@bp.get("/appointments/<int:appointment_id>/cancel")
def confirm_cancel(appointment_id: int) -> str:
    appt = appointment_or_404(appointment_id)
    version = request.args.get("version", "")
    return cancel_confirmation(appt, version if version.isdigit() else str(appt.version))


def cancel_confirmation(appt: Appointment, version: str) -> str:
    default = url_for("staff.appointment", appointment_id=appt.id)
    return_to = safe_next(request.values.get("return_to"), default)
    texted = " and text the patient" if appt.patient.sms_consent else ""
    return render_template(
        "staff/confirm.html",
        question=f"Cancel {appt.patient.full_name}'s appointment?",
        consequences=cancel_consequences(appt),
        action=url_for("staff.cancel", appointment_id=appt.id),
        fields={"version": version, "return_to": return_to},
        confirm_label=f"Yes, cancel it{texted}",
        back_url=return_to,
        back_label="No, keep it",
    )


@bp.post("/appointments/<int:appointment_id>/cancel")
def cancel(appointment_id: int) -> str | Response:
    appt = appointment_or_404(appointment_id)
    version = checked_version(ActionForm())
    if request.form.get("confirm") != "yes":  # one tap never cancels: ask first
        return cancel_confirmation(appt, str(version))
    try:
        with unit_of_work():
            cancel_appointment(appt, Actor.staff(current_user), expected_version=version)
    except BookingError as error:
        flash(str(error), "error")
    else:
        flash(
            f"{appt.reference} is cancelled; the patient gets a text if they agreed to texts.",
            "success",
        )
    return back_to(appt)


@bp.get("/appointments/<int:appointment_id>/reschedule")
def choose_new_slot(appointment_id: int) -> str:
    appt = appointment_or_404(appointment_id)
    locations = visible_locations(current_user, active_locations())
    if not locations:
        abort(404, description="No location is open for booking.")
    asked = request.args.get("location")
    # The appointment's own location may be closed for booking: then start at an open one.
    location = active_location(asked or appt.slot.location.slug) or (
        None if asked else locations[0]
    )
    if location is None or not may_act_at(current_user, location.id):
        abort(404, description="No such location.")
    first_day = date_from_query()
    [column] = calendar_for([location], first_day, 7)
    return render_template(
        "staff/reschedule.html",
        appt=appt,
        locations=locations,
        location=location,
        column=column,
        first_day=first_day,
        earlier=first_day - timedelta(days=7),
        later=first_day + timedelta(days=7),
        form=ActionForm(version=appt.version),
        now=utcnow(),
    )


@bp.post("/appointments/<int:appointment_id>/reschedule/<int:slot_id>")
def reschedule(appointment_id: int, slot_id: int) -> Response:
    appt = appointment_or_404(appointment_id)
    if not 1 <= slot_id <= MAX_ID:
        abort(404, description="No such slot.")
    slot_or_404(slot_id)
    version = checked_version(ActionForm())
    try:
        with unit_of_work():
            new = reschedule_appointment(
                appt, slot_id, Actor.staff(current_user), expected_version=version
            )
    except StaleAppointment as error:
        flash(str(error), "error")
        return back_to(appt)
    except BookingError as error:
        flash(str(error), "error")
        return redirect(url_for("staff.choose_new_slot", appointment_id=appt.id))
    flash(f"Moved: the new reference is {new.reference}.", "success")
    return back_to(new)


@bp.post("/appointments/<int:appointment_id>/notes")
def note(appointment_id: int) -> Response:
    appt = appointment_or_404(appointment_id)
    form = NoteForm()
    if form.validate_on_submit():
        with unit_of_work():
            add_note(appt, form.body.data or "", current_user, utcnow())
        flash("Note added.", "success")
    else:
        flash("A note needs some text (2,000 characters at most).", "error")
    return back_to(appt)


@bp.post("/appointments/<int:appointment_id>/resend-instructions")
def resend(appointment_id: int) -> Response:
    appt = appointment_or_404(appointment_id)
    version = checked_version(ActionForm())
    try:
        with unit_of_work():
            channels = resend_instructions(appt, version, current_user, utcnow())
    except BookingError as error:
        flash(str(error), "error")
    else:
        how = " and ".join({"sms": "texted", "email": "emailed"}[c] for c in channels)
        flash(f"The pre-consult instructions will be {how} again shortly.", "success")
    return back_to(appt)


class StaffBookingForm(BookingForm):
    """The online form's fields and rules (with its submission id, so a double click books
    once); consent is what the caller says on the phone."""


@bp.route("/book/<int:slot_id>", methods=["GET", "POST"])
def book(slot_id: int) -> str | Response | tuple[str, int]:
    slot = slot_or_404(slot_id)
    form = StaffBookingForm(slot_id=slot.id)
    back = safe_next(request.values.get("return_to"), url_for("staff.calendar"))
    if form.is_submitted() and form.slot_id.data not in (None, slot.id):
        abort(400, description="This form was for another slot. Reload the page and try again.")
    if form.validate_on_submit():
        try:
            with unit_of_work():
                appt = book_appointment(
                    form.to_booking_request(
                        source="staff", idempotency_key=f"staff:{form.submission_id.data}"
                    ),
                    Actor.staff(current_user),
                )
        except BookingError as error:
            flash(str(error), "error")
            return render_template("staff/book.html", form=form, slot=slot, return_to=back), 409
        flash(f"Booked {appt.patient.full_name}: reference {appt.reference}.", "success")
        return back_to(appt)
    status = 422 if form.errors else 200
    return render_template("staff/book.html", form=form, slot=slot, return_to=back), status

"""Finding appointments, opening one, and everything the front desk does to it."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.wrappers import Response

from scheduler.appointments.forms import BookingForm
from scheduler.appointments.operations import (
    BookingError,
    StaleAppointment,
    book_appointment,
    cancel_appointment,
    reschedule_appointment,
)
from scheduler.appointments.validation import MAX_ID
from scheduler.audit import audit
from scheduler.availability.operations import active_location, active_locations
from scheduler.availability.slots import local_day_bounds
from scheduler.display import display_tz, local_datetime
from scheduler.extensions import db
from scheduler.lookups import row_or_404
from scheduler.models import (
    Appointment,
    AppointmentNote,
    InboundMessage,
    OutboundMessage,
    PhoneNumberState,
    Slot,
    utcnow,
)
from scheduler.staff.access import safe_next
from scheduler.staff.blueprint import bp
from scheduler.staff.calendar import calendar_for, patient_search_filter
from scheduler.staff.calendar_views import date_from_query
from scheduler.staff.forms import ActionForm, NoteForm
from scheduler.staff.operations import (
    MARKS,
    actor_of,
    add_note,
    mark_appointment,
    mark_too_early,
    resend_instructions,
)

SEARCH_LIMIT = 100


def appointment_or_404(appointment_id: int) -> Appointment:
    appt = (
        db.session.scalar(
            select(Appointment)
            .options(joinedload(Appointment.patient), joinedload(Appointment.slot))
            .where(Appointment.id == appointment_id)
            .execution_options(populate_existing=True)
        )
        if 1 <= appointment_id <= MAX_ID
        else None
    )
    if appt is None:
        abort(404, description="No such appointment.")
    return appt


def checked_version(form: ActionForm) -> int:
    raw = form.version.data or ""
    if not form.validate_on_submit() or not raw.isdigit() or len(raw) > 9:
        abort(400, description="This form has expired. Reload the page and try again.")
    return int(raw)


@bp.get("/appointments")
def appointments() -> str:
    query = request.args.get("q", "").strip()[:100]
    day = request.args.get("date")
    statement = (
        select(Appointment)
        .join(Appointment.patient)
        .join(Appointment.slot)
        .options(joinedload(Appointment.patient), joinedload(Appointment.slot))
        .order_by(Slot.starts_at, Appointment.id)
        .limit(SEARCH_LIMIT)
    )
    if query:
        statement = statement.where(or_(*patient_search_filter(query)))
    if day:
        start, end = local_day_bounds(date_from_query(), display_tz())
        statement = statement.where(Slot.starts_at >= start, Slot.starts_at < end)
    results = db.session.scalars(statement).all() if (query or day) else []
    return render_template(
        "staff/appointments.html", query=query, day=day, results=results, limit=SEARCH_LIMIT
    )


@bp.get("/appointments/<int:appointment_id>")
def appointment(appointment_id: int) -> str:
    appt = appointment_or_404(appointment_id)
    texts = db.session.scalars(
        select(OutboundMessage)
        .options(selectinload(OutboundMessage.attempt_log))
        .where(OutboundMessage.appointment_id == appt.id)
        .order_by(OutboundMessage.created_at, OutboundMessage.id)
    ).all()
    # This appointment's replies (C, R), and the number's own words (STOP, HELP, ...)
    # since it was booked; never replies about another appointment on the same number.
    replies = db.session.scalars(
        select(InboundMessage)
        .where(
            InboundMessage.from_phone == appt.patient.phone,
            or_(
                InboundMessage.appointment_id == appt.id,
                and_(
                    InboundMessage.appointment_id.is_(None),
                    InboundMessage.received_at >= appt.created_at,
                ),
            ),
        )
        .order_by(InboundMessage.received_at)
    ).all()
    notes = db.session.scalars(
        select(AppointmentNote)
        .options(joinedload(AppointmentNote.author))
        .where(AppointmentNote.appointment_id == appt.id)
        .order_by(AppointmentNote.at)
    ).all()
    number = db.session.scalar(
        select(PhoneNumberState).where(PhoneNumberState.phone == appt.patient.phone)
    )
    thread = sorted(
        [("out", t.created_at, t) for t in texts] + [("in", r.received_at, r) for r in replies],
        key=lambda item: item[1],
    )
    return render_template(
        "staff/appointment.html",
        appt=appt,
        thread=thread,
        notes=notes,
        number=number,
        marks=[
            status
            for status, allowed in MARKS.items()
            if appt.status in allowed and not mark_too_early(appt, status, utcnow())
        ],
        form=ActionForm(version=appt.version),
        note_form=NoteForm(version=appt.version),
        moved_to=db.session.scalar(
            select(Appointment).where(Appointment.rescheduled_from_id == appt.id)
        ),
    )


def back_to(appt: Appointment) -> Response:
    return redirect(url_for("staff.appointment", appointment_id=appt.id))


@bp.post("/appointments/<int:appointment_id>/mark/<status>")
def mark(appointment_id: int, status: str) -> Response:
    appt = appointment_or_404(appointment_id)
    version = checked_version(ActionForm())
    try:
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
    texted = " and text the patient" if appt.patient.sms_consent else ""
    return render_template(
        "staff/confirm.html",
        question=f"Cancel {appt.patient.full_name}'s appointment?",
        consequences=cancel_consequences(appt),
        action=url_for("staff.cancel", appointment_id=appt.id),
        fields={"version": version},
        confirm_label=f"Yes, cancel it{texted}",
        back_url=url_for("staff.appointment", appointment_id=appt.id),
        back_label="No, keep it",
    )


@bp.post("/appointments/<int:appointment_id>/cancel")
def cancel(appointment_id: int) -> str | Response:
    appt = appointment_or_404(appointment_id)
    version = checked_version(ActionForm())
    if request.form.get("confirm") != "yes":  # one tap never cancels: ask first
        return cancel_confirmation(appt, str(version))

    def audited(changed: Appointment) -> None:
        audit("appointment.cancel", "appointment", changed.id, changed.reference)

    try:
        cancel_appointment(
            appt, actor_of(current_user), expected_version=version, after_change=audited
        )
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
    locations = active_locations()
    if not locations:
        abort(404, description="No location is open for booking.")
    asked = request.args.get("location")
    # The appointment's own location may be closed for booking: then start at an open one.
    location = active_location(asked or appt.slot.location.slug) or (
        None if asked else locations[0]
    )
    if location is None:
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
    version = checked_version(ActionForm())

    def audited(old: Appointment, new: Appointment) -> None:
        audit(
            "appointment.reschedule",
            "appointment",
            old.id,
            old.reference,
            new_reference=new.reference,
            new_slot_id=new.slot_id,
        )

    try:
        new = reschedule_appointment(
            appt, slot_id, actor_of(current_user), expected_version=version, after_change=audited
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
        resend_instructions(appt, version, current_user)
    except BookingError as error:
        flash(str(error), "error")
    else:
        flash("The pre-consult instructions will be texted again shortly.", "success")
    return back_to(appt)


class StaffBookingForm(BookingForm):
    """The online form's fields and rules (with its submission id, so a double click books
    once); consent is what the caller says on the phone."""


@bp.route("/book/<int:slot_id>", methods=["GET", "POST"])
def book(slot_id: int) -> str | Response | tuple[str, int]:
    slot = row_or_404(Slot, slot_id, "No such slot.")
    form = StaffBookingForm(slot_id=slot.id)
    if form.is_submitted() and form.slot_id.data not in (None, slot.id):
        abort(400, description="This form was for another slot. Reload the page and try again.")
    if form.validate_on_submit():

        def audited(appt: Appointment) -> None:
            audit("appointment.book", "appointment", appt.id, appt.reference, slot_id=slot.id)

        try:
            appt = book_appointment(
                form.to_booking_request(
                    source="staff", idempotency_key=f"staff:{form.submission_id.data}"
                ),
                after_change=audited,
            )
        except BookingError as error:
            flash(str(error), "error")
            return render_template("staff/book.html", form=form, slot=slot), 409
        flash(f"Booked {appt.patient.full_name}: reference {appt.reference}.", "success")
        return back_to(appt)
    status = 422 if form.errors else 200
    return render_template("staff/book.html", form=form, slot=slot), status

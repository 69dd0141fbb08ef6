"""Public waitlist pages: join from a location's slot page or a booking, the patient's
own page on the list (leave it there), and an offer's page (take the place)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask import g as request_globals
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from scheduler.appointments.errors import BookingError
from scheduler.appointments.lifecycle import PATIENT_WEB
from scheduler.appointments.links import ManageLinkError, manage_token
from scheduler.booking.views import error_summary, location_or_404, open_link, problem_message
from scheduler.database import unit_of_work
from scheduler.display import clinic_today, phone_display, time_of_day
from scheduler.extensions import booking_limit
from scheduler.i18n import page_language, use_patient_language
from scheduler.models import WaitlistEntry, WaitlistOffer, WaitlistStatus, utcnow
from scheduler.sms.outbox import sending_hours
from scheduler.waitlist.entries import (
    AlreadyWaiting,
    NotOnTheList,
    TooManyRequests,
    WaitlistRequest,
    join_waitlist,
    take_off_the_list,
)
from scheduler.waitlist.forms import (
    WAITLIST_CONSENT_SUMMARY,
    LeaveForm,
    TakeOfferForm,
    WaitlistForm,
    WindowForm,
)
from scheduler.waitlist.links import entry_for_link, entry_token, entry_url, offer_for_token
from scheduler.waitlist.offers import accept_offer, decline_offer

bp = Blueprint("waitlist", __name__)


@bp.errorhandler(ManageLinkError)
def link_refused(error: ManageLinkError) -> tuple[str, int]:
    status = 404 if error.reason == "invalid" else 410
    return render_template("booking/link_error.html", reason=error.reason), status


def already_waiting_message() -> str:
    return _(
        "You are on this clinic's waitlist already. Use the link on your waitlist page "
        "to see or change it."
    )


def too_many_message() -> str:
    return _(
        "This phone number is on as many waitlists as it may be. To change one, use the "
        "link on its waitlist page, or call us at %(phone)s.",
        phone=phone_display(current_app.config["CLINIC_PHONE"]),
    )


def joined_or_problem(join: Callable[[], WaitlistEntry]) -> tuple[BaseResponse | None, str | None]:
    """Join in one transaction: the way to the new request's page, or what to tell the patient."""
    try:
        with unit_of_work():
            entry = join()
    except AlreadyWaiting:
        return None, already_waiting_message()
    except TooManyRequests:
        return None, too_many_message()
    except BookingError:
        return None, _("We could not do that just now. Please try again, or call us.")
    page = url_for("waitlist.entry", reference=entry.reference, token=entry_token(entry), joined=1)
    return redirect(page, code=303), None


@bp.route("/book/<slug>/waitlist", methods=["GET", "POST"])
@booking_limit
def join(slug: str) -> str | BaseResponse | tuple[str, int]:
    location = location_or_404(slug)
    form = WaitlistForm()
    if request.method == "GET":
        form.language.data = page_language()
        form.earliest.data = clinic_today()
    problem = None
    if form.validate_on_submit():
        joined, problem = joined_or_problem(
            lambda: join_waitlist(
                form.to_waitlist_request(location.id, "online_form"),
                location,
                PATIENT_WEB,
                utcnow(),
            )
        )
        if joined is not None:
            return joined
    elif request.method == "POST":
        request_globals.booking_field_errors = True
    page = render_template(
        "waitlist/join.html",
        location=location,
        form=form,
        problem=problem,
        errors=error_summary(form),
        consent_summary=str(WAITLIST_CONSENT_SUMMARY),
    )
    return (page, 422) if request.method == "POST" else page


@bp.route("/manage/<reference>/<token>/waitlist", methods=["GET", "POST"])
@booking_limit
def join_from_booking(reference: str, token: str) -> str | BaseResponse | tuple[str, int]:
    """ "Tell me if an earlier time opens": the person and the place are the booking's."""
    appt = open_link(reference, token)
    if not appt.is_changeable or appt.slot.starts_at <= utcnow():
        abort(404)
    location = appt.slot.location
    form = WindowForm()
    if request.method == "GET":
        form.earliest.data = clinic_today()
        form.latest.data = appt.slot.starts_at.astimezone(ZoneInfo(location.timezone)).date()
    problem = None
    if form.validate_on_submit():
        patient = appt.patient
        assert form.earliest.data and form.latest.data
        request_ = WaitlistRequest(
            location_id=location.id,
            first_name=patient.first_name,
            last_name=patient.last_name,
            phone=patient.phone,
            email=patient.email,
            date_of_birth=patient.date_of_birth,
            language=patient.language,
            sms_consent=patient.sms_consent,
            sms_consent_text=patient.sms_consent_text,
            earliest=form.window_start,
            latest=form.latest.data,
            weekdays=form.weekday_numbers,
            part_of_day=form.part_of_day.data or "",
            source="online_form",
            appointment_id=appt.id,
        )
        if not patient.sms_consent and not patient.email:
            problem = _(
                "We have no way to tell you: this booking has no text consent and no email "
                "address. Please call us to join the waitlist."
            )
        else:
            joined, problem = joined_or_problem(
                lambda: join_waitlist(request_, location, PATIENT_WEB, utcnow())
            )
            if joined is not None:
                return joined
    elif request.method == "POST":
        request_globals.booking_field_errors = True
    page = render_template(
        "waitlist/join_from_booking.html",
        appt=appt,
        token=token,
        location=location,
        form=form,
        problem=problem,
        errors=error_summary(form),
    )
    return (page, 422) if request.method == "POST" else page


@bp.get("/waitlist/<reference>/<token>")
def entry(reference: str, token: str) -> str:
    found = entry_for_link(reference, token)
    use_patient_language(found.language)
    booked = found.appointment if found.status == WaitlistStatus.BOOKED else None
    hours = sending_hours()
    return render_template(
        "waitlist/entry.html",
        entry=found,
        token=token,
        location=found.location,
        form=LeaveForm(),
        just_joined=request.args.get("joined") == "1",
        booked=booked,
        booked_url=(
            url_for("booking.manage", reference=booked.reference, token=manage_token(booked))
            if booked is not None
            else None
        ),
        link=entry_url(found),
        sending_from=time_of_day(hours.start),
        sending_until=time_of_day(hours.end),
    )


@bp.post("/waitlist/<reference>/<token>/leave")
def leave(reference: str, token: str) -> BaseResponse:
    found = entry_for_link(reference, token)
    use_patient_language(found.language)
    if LeaveForm().validate_on_submit():
        try:
            with unit_of_work():
                take_off_the_list(found, WaitlistStatus.LEFT, PATIENT_WEB, utcnow())
        except NotOnTheList:
            flash(_("This request is no longer on the waitlist."), "error")
        else:
            flash(_("You have left the waitlist. We will not send you offers."), "success")
    return redirect(url_for("waitlist.entry", reference=reference, token=token), code=303)


@bp.route("/offer/<token>", methods=["GET", "POST"])
def offer(token: str) -> str | tuple[str, int] | BaseResponse:
    found = offer_for_token(token)
    entry_ = found.entry
    use_patient_language(entry_.language)
    form = TakeOfferForm()
    now = utcnow()
    result = None
    if form.validate_on_submit():
        result = accept_offer(found.id, PATIENT_WEB, now)
        if result.outcome == "accepted" and result.appointment is not None:
            appt = result.appointment
            flash(_("The time is yours. This is your new booking."), "success")
            return redirect(
                url_for("booking.manage", reference=appt.reference, token=manage_token(appt)),
                code=303,
            )
    state = result.outcome if result else _offer_state(found, now)
    page = render_template(
        "waitlist/offer.html",
        offer=found,
        entry=entry_,
        slot=found.slot,
        location=found.slot.location,
        form=form,
        token=token,
        state=state,
        message=problem_message(result.error) if result and result.error else "",
        held=entry_.appointment
        if entry_.appointment and entry_.appointment.is_changeable
        else None,
        entry_link=entry_url(entry_),
        clinic_phone=current_app.config["CLINIC_PHONE"],
    )
    return (page, 409) if result is not None else page


@bp.post("/offer/<token>/decline")
def decline(token: str) -> BaseResponse:
    """ "No, thanks": the next person on the list is asked; this patient stays on it."""
    found = offer_for_token(token)
    use_patient_language(found.entry.language)
    if TakeOfferForm().validate_on_submit() and decline_offer(found.id, utcnow()):
        flash(_("You said no to this time. You are still on the list."), "success")
    entry_ = found.entry
    return redirect(
        url_for("waitlist.entry", reference=entry_.reference, token=entry_token(entry_)),
        code=303,
    )


def _offer_state(found: WaitlistOffer, now: datetime) -> str:
    """What the offer's page shows before a click: open, or what became of it."""
    if found.outcome is not None:
        return str(found.outcome)
    if found.expires_at <= now:
        return "expired"
    if found.slot.remaining <= 0:
        return "taken"
    return "open"

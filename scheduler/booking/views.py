"""Public pages: choose a location, a slot, book, and manage the booking."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_limiter import RateLimitExceeded
from werkzeug.wrappers import Response as BaseResponse

from scheduler.appointments.forms import (
    SMS_CONSENT_SUMMARY,
    SMS_CONSENT_TERMS,
    BookingForm,
    validated,
)
from scheduler.appointments.ics import appointment_ics
from scheduler.appointments.lifecycle import PATIENT_WEB
from scheduler.appointments.links import (
    ManageLinkError,
    appointment_for_link,
    manage_token,
    manage_url,
)
from scheduler.appointments.operations import (
    AppointmentNotChangeable,
    BookingCapReached,
    BookingError,
    IdempotencyKeyReused,
    book_appointment,
    cancel_appointment,
    reschedule_appointment,
)
from scheduler.availability.operations import (
    active_location,
    active_locations,
    current_booking_window,
    location_tz,
    next_open_slot,
    open_slots,
)
from scheduler.availability.slots import local_day_bounds
from scheduler.booking.forms import CancelForm, RescheduleForm
from scheduler.booking.texts_notice import describe, texts_notice
from scheduler.content import blocks_of, content_for, lines_of
from scheduler.database import unit_of_work
from scheduler.display import clock_hour, local_time, phone_display, time_of_day
from scheduler.extensions import booking_limit, limiter
from scheduler.i18n import page_language, use_patient_language
from scheduler.lookups import row_or_404
from scheduler.models import Appointment, Location, Slot, utcnow
from scheduler.sms.outbox import sending_hours

bp = Blueprint("booking", __name__)

# What a refused booking, cancellation or move says to the patient, by the error's stable code.
PROBLEMS = {
    "slot_not_found": _l("That time does not exist. Please choose another time."),
    "slot_full": _l("This time was just booked by someone else. Please choose another time."),
    "slot_not_bookable": _l(
        "This time can no longer be booked online. Please choose another time."
    ),
    "appointment_not_changeable": _l(
        "This appointment can no longer be changed online: its time has passed, or it was "
        "already cancelled or moved."
    ),
    "stale_appointment": _l(
        "Someone changed this appointment a moment ago. Nothing was saved; here it is as it is now."
    ),
    "already_booked_in_slot": _l(
        "This phone number already has an appointment at this time. To book someone else "
        "with the same number, please call us at %(phone)s."
    ),
    "idempotency_key_reused": _l(
        "This form was already sent once. To change that booking, use the link in its "
        "confirmation; to book someone else, start again from the list of times."
    ),
}
UNKNOWN_PROBLEM = _l("We could not do that just now. Please try again, or call us.")


def problem_message(error: BookingError) -> str:
    phone = phone_display(current_app.config["CLINIC_PHONE"])
    if error.code == "too_many_bookings":  # refused at the cap, so the count is the cap
        return ngettext(
            "This phone number already has %(num)d upcoming appointment, the most we can book "
            "online. To change it, use the link in its confirmation, or call us at %(phone)s.",
            "This phone number already has %(num)d upcoming appointments, the most we can book "
            "online. To change one, use the link in its confirmation, or call us at %(phone)s.",
            current_app.config["MAX_ACTIVE_BOOKINGS_PER_PHONE"],
            phone=phone,
        )
    return str(PROBLEMS.get(error.code, UNKNOWN_PROBLEM) % {"phone": phone})


def location_or_404(slug: str) -> Location:
    location = active_location(slug)
    if location is None:
        abort(404, description=_("We have no clinic at that address."))
    return location


def slot_or_404(slot_id: int, location: Location | None = None) -> Slot:
    missing = _("That time does not exist. Please choose another time.")
    slot = row_or_404(Slot, slot_id, missing)
    if location is not None and slot.location_id != location.id:
        abort(404, description=missing)
    return slot


def slot_page_from_query(location: Location, url_for_slot: dict[str, Any]) -> SlotPage:
    """The page the ?from= date asks for; without one, the first page that has a free slot."""
    page = slot_page(location, first_day_from_query(location), url_for_slot)
    if page.days or "from" in request.args:
        return page
    tz = location_tz(location)
    later = next_open_slot(location, local_day_bounds(page.first_day, tz)[0])
    if later is None:
        return page
    return slot_page(location, later.starts_at.astimezone(tz).date(), url_for_slot)


def first_day_from_query(location: Location) -> date:
    """The ?from= date, kept between today and the last bookable day."""
    tz = location_tz(location)
    today = utcnow().astimezone(tz).date()
    try:
        asked = date.fromisoformat(request.args.get("from", ""))
    except ValueError:
        return today
    latest = current_booking_window().latest.astimezone(tz).date()
    return min(max(asked, today), latest)


@dataclass(frozen=True)
class SlotPage:
    """A page of open slots grouped by local day, each with the URL that picks it."""

    location: Location
    first_day: date
    days: list[tuple[date, list[tuple[Slot, str]]]]
    previous_page: date | None
    next_page: date | None


def slot_page(location: Location, first_day: date, url_for_slot: dict[str, Any]) -> SlotPage:
    tz = location_tz(location)
    page_days = current_app.config["BOOKING_PAGE_DAYS"]
    last_day = first_day + timedelta(days=page_days - 1)
    start = local_day_bounds(first_day, tz)[0]
    end = local_day_bounds(last_day, tz)[1]
    slots = open_slots(location, start, end)
    days = [
        (day, [(s, url_for(**url_for_slot, slot_id=s.id)) for s in group])
        for day, group in groupby(slots, key=lambda s: s.starts_at.astimezone(tz).date())
    ]
    today = utcnow().astimezone(tz).date()
    latest = current_booking_window().latest.astimezone(tz).date()
    previous_page = max(first_day - timedelta(days=page_days), today) if first_day > today else None
    next_page = last_day + timedelta(days=1) if last_day < latest else None
    return SlotPage(location, first_day, days, previous_page, next_page)


@bp.get("/")
def index() -> str:
    return render_template("booking/index.html", locations=active_locations())


@functools.cache
def _favicon_bytes(static_folder: str) -> bytes:
    return (Path(static_folder) / "favicon.ico").read_bytes()


@bp.get("/favicon.ico")
def favicon() -> BaseResponse:
    """From memory, not a file: browsers ask for it in the background and often hang up
    mid-response, which left the file handle to the garbage collector."""
    response = Response(
        _favicon_bytes(current_app.static_folder or "static"),
        mimetype="image/vnd.microsoft.icon",
    )
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/privacy")
def privacy() -> str:
    """The privacy notice: clinic-wide, edited by admins like the instructions."""
    notice = content_for("privacy_notice", None, page_language())
    return render_template("booking/privacy.html", blocks=blocks_of(notice))


@bp.get("/prepare/<slug>")
def instructions(slug: str) -> str:
    """The full pre-consult instructions the reminder texts link to; no patient data here."""
    location = location_or_404(slug)
    return render_template(
        "booking/instructions.html",
        location=location,
        instructions=lines_of(content_for("preconsult_instructions", location, page_language())),
    )


@bp.get("/book/<slug>")
def choose_slot(slug: str) -> str:
    location = location_or_404(slug)
    page = slot_page_from_query(location, {"endpoint": "booking.book", "slug": slug})
    return render_template(
        "booking/slots.html", location=location, locations=active_locations(), page=page
    )


def alternatives_near(location: Location, instant: datetime) -> list[Slot]:
    start = max(instant - timedelta(days=1), utcnow())
    return open_slots(location, start, start + timedelta(days=14))[:8]


def error_summary(form: BookingForm) -> list[tuple[str, str]]:
    """Each field error with the id of the box to fix, in the order of the form."""
    items: list[tuple[str, str]] = []
    for field in form:
        if not field.errors or field.name in ("slot_id", "csrf_token", "submission_id"):
            continue
        if field.name == "date_of_birth":
            target = f"{field.id}-{field.part_in_error}"
        elif field.type == "RadioField":
            target = f"{field.id}-0"
        else:
            target = field.id
        items.extend((target, str(error)) for error in field.errors)
    return items


def render_booking_form(
    location: Location,
    slot: Slot,
    form: BookingForm,
    problem: str | None = None,
    alternatives: list[Slot] | None = None,
    retry_at: datetime | None = None,
) -> str:
    return render_template(
        "booking/book.html",
        location=location,
        slot=slot,
        form=form,
        problem=problem,
        alternatives=alternatives or [],
        errors=error_summary(form),
        retry_at=retry_at,
        consent_terms=str(SMS_CONSENT_TERMS % {"clinic": current_app.config["CLINIC_NAME"]}),
        consent_summary=str(SMS_CONSENT_SUMMARY),
    )


@bp.errorhandler(RateLimitExceeded)
def too_many_attempts(error: RateLimitExceeded) -> tuple[str, int, dict[str, str]]:
    """The booking form again, with what was typed, when to try again and the phone."""
    limit = limiter.current_limit
    reset_at = limit.reset_at if limit is not None else int(time.time()) + 60
    retry_at = datetime.fromtimestamp(reset_at, UTC)
    headers = {"Retry-After": str(max(1, reset_at - int(time.time())))}
    args = request.view_args or {}
    if request.endpoint == "booking.reschedule":
        try:  # the limit is checked before the view: speak the patient's language here too
            open_link(args["reference"], args["token"])
        except ManageLinkError:
            pass
    if request.endpoint != "booking.book":
        return (
            render_template(
                "errors/page.html",
                status=429,
                title=_("Too many attempts"),
                message=ngettext(
                    "Too many attempts in a short time. Please try again after %(time)s.",
                    "Too many attempts in a short time. Please try again after %(time)s.",
                    clock_hour(retry_at),
                    time=local_time(retry_at),
                ),
            ),
            429,
            headers,
        )
    location = location_or_404(args["slug"])
    slot = slot_or_404(args["slot_id"], location)
    return render_booking_form(location, slot, BookingForm(), retry_at=retry_at), 429, headers


@bp.route("/book/<slug>/<int:slot_id>", methods=["GET", "POST"])
@booking_limit
def book(slug: str, slot_id: int) -> str | BaseResponse | tuple[str, int]:
    location = location_or_404(slug)
    slot = slot_or_404(slot_id, location)
    form = BookingForm()
    if request.method == "GET":
        form.slot_id.data = slot.id
        form.language.data = page_language()
    problem = None
    slot_unavailable = False
    if form.validate_on_submit():
        chosen = slot_or_404(validated(form.slot_id.data), location)
        try:
            with unit_of_work():
                appt = book_appointment(
                    form.to_booking_request(
                        source="online_form",
                        idempotency_key=f"form:{form.submission_id.data}",
                    ),
                    PATIENT_WEB,
                )
        except (IdempotencyKeyReused, BookingCapReached) as exc:
            problem = problem_message(exc)
        except BookingError as exc:
            problem, slot, slot_unavailable = problem_message(exc), chosen, True
        else:
            return redirect(
                url_for(
                    "booking.manage",
                    reference=appt.reference,
                    token=manage_token(appt),
                    booked=1,
                ),
                code=303,
            )
    elif request.method == "POST":
        # Refused for what was typed: this submit does not count toward the rate limit.
        g.booking_field_errors = True
    elif slot.remaining == 0 or not current_booking_window().contains(slot.starts_at):
        problem = _("This time is no longer available. Please choose another time.")
        slot_unavailable = True
    alternatives = (
        [s for s in alternatives_near(location, slot.starts_at) if s.id != slot.id]
        if slot_unavailable
        else []
    )
    page = render_booking_form(location, slot, form, problem, alternatives)
    return (page, 422) if request.method == "POST" else page


@bp.errorhandler(ManageLinkError)
def manage_link_refused(error: ManageLinkError) -> tuple[str, int]:
    status = 404 if error.reason == "invalid" else 410
    return render_template("booking/link_error.html", reason=error.reason), status


def open_link(reference: str, token: str) -> Appointment:
    """The appointment of a manage link; its pages speak the patient's language."""
    appt = appointment_for_link(reference, token)
    use_patient_language(appt.patient.language)
    return appt


def _manage_page(appt: Appointment, token: str, **extra: object) -> str:
    """The manage page, linking with the token it was opened with (so links do expire)."""
    location = appt.slot.location
    instructions = content_for("preconsult_instructions", location, page_language())
    now = utcnow()
    notice = texts_notice(appt, now)
    hours = sending_hours()
    return render_template(
        "booking/manage.html",
        appt=appt,
        location=location,
        token=token,
        manage_link=manage_url(appt, token),
        instructions=lines_of(instructions),
        now=now,
        texts=notice,
        text_lines=[describe(plan, now) for plan in notice.texts],
        sending_from=time_of_day(hours.start),
        sending_until=time_of_day(hours.end),
        **extra,
    )


@bp.get("/manage/<reference>/<token>")
def manage(reference: str, token: str) -> str:
    appt = open_link(reference, token)
    return _manage_page(appt, token, just_booked=request.args.get("booked") == "1")


@bp.get("/manage/<reference>/<token>/appointment.ics")
def calendar_file(reference: str, token: str) -> Response:
    appt = open_link(reference, token)
    domain = urlsplit(current_app.config["PUBLIC_BASE_URL"]).hostname or "localhost"
    body = appointment_ics(
        appt, current_app.config["CLINIC_NAME"], domain, utcnow(), manage_url(appt, token)
    )
    return Response(
        body,
        mimetype="text/calendar",
        headers={"Content-Disposition": f'attachment; filename="{appt.reference}.ics"'},
    )


@bp.route("/manage/<reference>/<token>/cancel", methods=["GET", "POST"])
def cancel(reference: str, token: str) -> str | BaseResponse:
    appt = open_link(reference, token)
    form = CancelForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                appt = cancel_appointment(appt, PATIENT_WEB)
        except AppointmentNotChangeable as exc:
            flash(problem_message(exc), "error")
        else:
            flash(_("Your appointment is cancelled. The time is free for someone else."), "success")
        return redirect(url_for("booking.manage", reference=reference, token=token), code=303)
    return render_template("booking/cancel.html", appt=appt, token=token, form=form)


@bp.get("/manage/<reference>/<token>/reschedule")
def choose_new_slot(reference: str, token: str) -> str:
    appt = open_link(reference, token)
    slug = request.args.get("location") or appt.slot.location.slug
    location = location_or_404(slug)
    page = slot_page_from_query(
        location, {"endpoint": "booking.reschedule", "reference": reference, "token": token}
    )
    return render_template(
        "booking/reschedule_choose.html",
        appt=appt,
        token=token,
        location=location,
        locations=active_locations(),
        page=page,
    )


@bp.route("/manage/<reference>/<token>/reschedule/<int:slot_id>", methods=["GET", "POST"])
@booking_limit
def reschedule(reference: str, token: str, slot_id: int) -> str | BaseResponse:
    appt = open_link(reference, token)
    new_slot = slot_or_404(slot_id)
    form = RescheduleForm()
    if request.method == "GET":
        form.slot_id.data = slot_id
    if form.validate_on_submit():
        try:
            with unit_of_work():
                new = reschedule_appointment(appt, slot_id, PATIENT_WEB)
        except BookingError as exc:
            same = new_slot.id == appt.slot_id
            flash(
                _("That is the time you already have.") if same else problem_message(exc), "error"
            )
            return redirect(
                url_for("booking.choose_new_slot", reference=reference, token=token), code=303
            )
        flash(_("Your appointment has been moved. This is your new booking."), "success")
        return redirect(
            url_for("booking.manage", reference=new.reference, token=manage_token(new)), code=303
        )
    return render_template(
        "booking/reschedule_confirm.html", appt=appt, token=token, new_slot=new_slot, form=form
    )

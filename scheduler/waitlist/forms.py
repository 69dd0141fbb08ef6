"""The waitlist's fields: the booking's person fields (same rules) plus the window."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, RadioField, SelectMultipleField
from wtforms.fields import SelectChoice  # type: ignore[attr-defined]
from wtforms.validators import InputRequired, Optional, ValidationError

from scheduler.appointments.forms import BookingFields
from scheduler.display import clinic_today
from scheduler.waitlist.entries import WaitlistRequest, window_problem

WAITLIST_CONSENT_LABEL = _l("Yes, text me when an earlier time opens")
WAITLIST_CONSENT_SUMMARY = _l(
    "Only a text when a time in your dates opens, with a link to take it. "
    "Message and data rates may apply. Reply STOP to opt out."
)
NO_WAY_TO_REACH = _l("Tick the box to get a text, or give an email address, so we can tell you.")
WEEKDAY_CHOICES = [
    SelectChoice("0", _l("Monday")),
    SelectChoice("1", _l("Tuesday")),
    SelectChoice("2", _l("Wednesday")),
    SelectChoice("3", _l("Thursday")),
    SelectChoice("4", _l("Friday")),
]
PART_OF_DAY_CHOICES = [
    SelectChoice("", _l("Any time of day")),
    SelectChoice("morning", _l("Mornings (before noon)")),
    SelectChoice("afternoon", _l("Afternoons (from noon)")),
]
WINDOW_MESSAGES = {
    "latest_before_earliest": _l("The last date must be on or after the first date."),
    "window_passed": _l("The last date has passed. Choose dates from today on."),
    "window_too_far": _l("Choose a first date within the next %(days)d days."),
}


class WindowFields(FlaskForm):
    """Which times would do: between two dates, optionally some weekdays and mornings or
    afternoons."""

    earliest = DateField(
        _l("From (first date you can come)"),
        format=["%Y-%m-%d"],
        validators=[InputRequired(_l("Enter the first date you can come."))],
    )
    latest = DateField(
        _l("Until (last date you can come)"),
        format=["%Y-%m-%d"],
        validators=[InputRequired(_l("Enter the last date you can come."))],
    )
    weekdays = SelectMultipleField(
        _l("Which days can you come? (optional)"),
        choices=WEEKDAY_CHOICES,
        validators=[Optional()],
    )
    part_of_day = RadioField(
        _l("What time of day? (optional)"),
        choices=PART_OF_DAY_CHOICES,
        default="",
        validators=[Optional()],
    )

    def validate_latest(self, field: Any) -> None:
        if self.earliest.data is None or field.data is None:
            return
        problem = window_problem(self.earliest.data, field.data, clinic_today())
        if problem:
            days = current_app.config["BOOKING_HORIZON_DAYS"]
            raise ValidationError(str(WINDOW_MESSAGES[problem] % {"days": days}))

    @property
    def weekday_numbers(self) -> tuple[int, ...]:
        return tuple(int(day) for day in self.weekdays.data or () if day.isdigit())

    @property
    def window_start(self) -> date:
        return max(self.earliest.data or clinic_today(), clinic_today())


class WaitlistFields(BookingFields, WindowFields):
    """The person and the window; the slot is what the list finds."""

    slot_id = None  # type: ignore[assignment]
    conservative_treatment_8_weeks = None  # type: ignore[assignment]
    sms_consent = BooleanField(WAITLIST_CONSENT_LABEL, default=False)

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        if not self.sms_consent.data and not self.email.data and not self.email.errors:
            self.sms_consent.errors = [*self.sms_consent.errors, str(NO_WAY_TO_REACH)]
            return False
        return valid

    @property
    def consent_text(self) -> str:
        return f"{WAITLIST_CONSENT_LABEL} {WAITLIST_CONSENT_SUMMARY}"

    def to_waitlist_request(
        self, location_id: int, source: str, appointment_id: int | None = None
    ) -> WaitlistRequest:
        assert self.phone_e164 is not None and self.earliest.data and self.latest.data
        return WaitlistRequest(
            location_id=location_id,
            first_name=self.first_name.data or "",
            last_name=self.last_name.data or "",
            phone=self.phone_e164,
            email=self.email.data or None,
            date_of_birth=self.date_of_birth.data,
            language=self.language.data or "en",
            sms_consent=bool(self.sms_consent.data),
            sms_consent_text=self.consent_text if self.sms_consent.data else None,
            earliest=self.window_start,
            latest=self.latest.data,
            weekdays=self.weekday_numbers,
            part_of_day=self.part_of_day.data or "",
            source=source,
            appointment_id=appointment_id,
        )


class WaitlistForm(WaitlistFields):
    """The public form on a location's slot page."""


class WindowForm(WindowFields):
    """From a booking's manage page: the person is the booking's."""


class LeaveForm(FlaskForm):
    pass


class TakeOfferForm(FlaskForm):
    pass

"""The booking fields: one set of rules behind the public form, the staff form and the API."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any, TypeVar

from flask import current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    HiddenField,
    IntegerField,
    RadioField,
    StringField,
    TelField,
)

# types-WTForms describes WTForms 3.2; SelectChoice came with 3.3.
from wtforms.fields import SelectChoice  # type: ignore[attr-defined]
from wtforms.utils import unset_value
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional, Regexp

from scheduler.appointments.birthdates import (
    BirthDateError,
    birth_date_from_parts,
    parse_birth_date,
)
from scheduler.appointments.operations import BookingRequest
from scheduler.appointments.validation import (
    EMAIL_MAX,
    MAX_ID,
    NAME_MAX,
    PHONE_MAX,
    SUBMISSION_ID_PATTERN,
    IntRange,
    mobile_phone,
    name_filter,
    person_name,
    plausible_birth_date,
    strip_filter,
)
from scheduler.display import clinic_today

# The box's one line, the line under it, and the full terms one tap away. What the
# patient agreed to is stored with the booking, in the language it was shown in.
SMS_CONSENT_LABEL = _l("Yes, text me about this appointment (optional)")
SMS_CONSENT_SUMMARY = _l(
    "About 3 to 5 texts: a confirmation, the visit instructions and a reminder. "
    "Message and data rates may apply. Reply STOP to opt out."
)
SMS_CONSENT_TERMS = _l(
    "By ticking the box you agree that %(clinic)s may send text messages about this "
    "appointment to the mobile number above: a confirmation when you book, pre-visit "
    "instructions and a reminder before the visit, and a note if it is moved or cancelled. "
    "About 3 to 5 texts per appointment. Message and data rates may apply. Reply STOP to "
    "opt out at any time, HELP for help. Consent is not required to book. We do not share "
    "your mobile number or your consent with anyone for marketing."
)
TREATMENT_CHOICES = [
    SelectChoice("yes", _l("Yes")),
    SelectChoice("no", _l("No")),
    SelectChoice("not_sure", _l("Not sure")),
]
# Each language is named in itself, so a patient finds their own whatever the page's language.
LANGUAGE_CHOICES = [
    SelectChoice("en", "English"),
    SelectChoice("es", "Español"),
]
BIRTH_DATE_PARTS = ("month", "day", "year")
T = TypeVar("T")


def validated(value: T | None) -> T:
    """A required field's value on a form that validated (never None there)."""
    if value is None:
        raise ValueError("read a booking from a form that has not validated")
    return value


def sms_consent_text(clinic: str) -> str:
    """What a patient agrees to by ticking the box, as it was shown to them."""
    return f"{SMS_CONSENT_LABEL} {SMS_CONSENT_SUMMARY} {SMS_CONSENT_TERMS % {'clinic': clinic}}"


def birth_date_message(code: str) -> str:
    return {
        "missing_month": gettext("Enter the month you were born."),
        "missing_day": gettext("Enter the day you were born."),
        "missing_year": gettext("Enter the year you were born."),
        "month": gettext("Enter the month as a number from 1 to 12, or its name."),
        "day": gettext("Enter the day as a number from 1 to 31."),
        "year": gettext("Enter the year with four digits, like 1956."),
    }.get(code, gettext("Enter a real date of birth, for example 4 15 1956."))


class BirthDateField(Field):
    """Month, day and year in three boxes (``date_of_birth-month`` ...); the whole date in
    one value (``date_of_birth``) is read too. ``part_in_error`` names the box to fix."""

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        self.parts = dict.fromkeys(BIRTH_DATE_PARTS, "")
        if formdata is not None:
            for part in BIRTH_DATE_PARTS:
                self.parts[part] = " ".join((formdata.get(f"{self.name}-{part}") or "").split())
        self.part_in_error = "month"
        super().process(formdata, data, extra_filters)

    def process_data(self, value: Any) -> None:
        self.data = value if isinstance(value, date) else None
        if self.data is not None:
            self.parts = {
                "month": str(self.data.month),
                "day": str(self.data.day),
                "year": str(self.data.year),
            }

    def process_formdata(self, valuelist: list[Any]) -> None:
        whole = " ".join(valuelist).strip()
        if any(self.parts.values()):
            self.raw_data = [" ".join(self.parts.values())]
            read = lambda today: birth_date_from_parts(**self.parts, today=today)  # noqa: E731
        elif whole:
            read = lambda today: parse_birth_date(whole, today)  # noqa: E731
        else:
            self.data = None
            return
        try:
            self.data = read(clinic_today())
        except BirthDateError as error:
            self.data = None
            self.part_in_error = next(
                (part for part in BIRTH_DATE_PARTS if part in error.code), "month"
            )
            raise ValueError(birth_date_message(error.code)) from None

    def _value(self) -> str:
        return self.data.isoformat() if self.data else ""

    def __call__(self, **kwargs: Any) -> Markup:
        """The three labelled boxes (the page supplies the fieldset, legend and hint)."""
        described = kwargs.get("aria-describedby")
        boxes = []
        for part, label, size, autocomplete in (
            ("month", gettext("Month"), 2, "bday-month"),
            ("day", gettext("Day"), 2, "bday-day"),
            ("year", gettext("Year"), 4, "bday-year"),
        ):
            box_id = f"{self.id}-{part}"
            attrs = {
                "type": "text",
                "id": box_id,
                "name": f"{self.name}-{part}",
                "value": self.parts.get(part, ""),
                "inputmode": "numeric",
                "autocomplete": autocomplete,
                "maxlength": 10 if part == "month" else size,
                "class": f"date-{part}",
            }
            if self.errors and part == self.part_in_error:
                attrs["aria-invalid"] = "true"
            if described:
                attrs["aria-describedby"] = described
            rendered = " ".join(f'{key}="{escape(value)}"' for key, value in attrs.items())
            boxes.append(
                f'<div class="date-part"><label for="{box_id}">{escape(label)}</label>'
                f"<input {rendered}></div>"
            )
        return Markup(f'<div class="date-parts">{"".join(boxes)}</div>')


class BookingFields(FlaskForm):
    """The slot and the patient's fields: the one set of rules behind the form and the API."""

    slot_id = IntegerField(validators=[InputRequired(), IntRange(min=1, max=MAX_ID)])
    first_name = StringField(
        _l("First name"),
        filters=[name_filter],
        validators=[
            DataRequired(_l("Enter your first name.")),
            Length(max=NAME_MAX, message=_l("Use at most %(max)d characters.")),
            person_name,
        ],
    )
    last_name = StringField(
        _l("Last name"),
        filters=[name_filter],
        validators=[
            DataRequired(_l("Enter your last name.")),
            Length(max=NAME_MAX, message=_l("Use at most %(max)d characters.")),
            person_name,
        ],
    )
    phone = TelField(  # then validate_phone, below
        _l("Mobile phone"),
        filters=[strip_filter],
        validators=[
            DataRequired(_l("Enter your mobile phone number.")),
            Length(
                max=PHONE_MAX, message=_l("Enter a valid US mobile number, like (830) 555-0123.")
            ),
        ],
    )
    email = EmailField(
        _l("Email (optional)"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=EMAIL_MAX, message=_l("Use at most %(max)d characters.")),
            Email(
                message=_l("Enter an email address like name@example.com."),
                check_deliverability=False,
            ),
        ],
    )
    # A Field: the API's form reads it as one ISO date (a DateField).
    date_of_birth: Field = BirthDateField(
        _l("Date of birth"),
        validators=[InputRequired(_l("Enter your date of birth.")), plausible_birth_date],
    )
    language = RadioField(
        _l("Which language should we use with you?"),
        choices=LANGUAGE_CHOICES,
        default="en",
    )
    sms_consent = BooleanField(SMS_CONSENT_LABEL, default=False)
    conservative_treatment_8_weeks = RadioField(
        _l(
            "Have you had at least 8 weeks of conservative treatment "
            "(physical therapy, epidural steroid injections, medications)?"
        ),
        choices=TREATMENT_CHOICES,
        validators=[Optional()],
    )

    # The phone in E.164, once validate_phone accepted it.
    phone_e164: str | None = None

    def validate_phone(self, field: Field) -> None:
        """After the phone's own rules: a mobile number the service may text."""
        if field.data:
            self.phone_e164 = mobile_phone(field.data)

    @property
    def consent_text(self) -> str:
        """The consent sentence as shown (and read to callers), stored with a ticked box."""
        return sms_consent_text(current_app.config["CLINIC_NAME"])

    def to_booking_request(self, source: str, idempotency_key: str | None) -> BookingRequest:
        """The booking the form asks for; the form must have validated."""
        return BookingRequest(
            slot_id=validated(self.slot_id.data),
            first_name=validated(self.first_name.data),
            last_name=validated(self.last_name.data),
            phone=validated(self.phone_e164),
            email=self.email.data or None,
            date_of_birth=self.date_of_birth.data,
            language=self.language.data or "en",
            sms_consent=bool(self.sms_consent.data),
            sms_consent_text=self.consent_text if self.sms_consent.data else None,
            conservative_treatment=self.conservative_treatment_8_weeks.data or None,
            source=source,
            idempotency_key=idempotency_key,
        )


class BookingForm(BookingFields):
    """The public form. ``submission_id`` makes a double submit book once."""

    submission_id = HiddenField(
        default=lambda: secrets.token_urlsafe(18),
        validators=[InputRequired(), Regexp(SUBMISSION_ID_PATTERN)],
    )

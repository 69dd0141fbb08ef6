"""The booking fields: one set of rules behind the public form, the staff form and the API."""

from __future__ import annotations

import secrets

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    StringField,
    TelField,
)
from wtforms.validators import Email, InputRequired, Length, NumberRange, Optional, Regexp

from scheduler.appointments.operations import BookingRequest
from scheduler.appointments.validation import (
    EMAIL_MAX,
    MAX_ID,
    NAME_MAX,
    PHONE_MAX,
    SUBMISSION_ID_PATTERN,
    person_name,
    plausible_birth_date,
    strip_filter,
    us_mobile_phone,
)

SMS_CONSENT_TEXT = (
    "Yes, text me about this appointment (confirmation, reminders and visit "
    "instructions) at the mobile number above. About 3 to 5 texts per appointment. "
    "Message and data rates may apply. Reply STOP to opt out, HELP for help. "
    "Consent is not required to book."
)
TREATMENT_CHOICES = [
    SelectChoice("yes", "Yes"),
    SelectChoice("no", "No"),
    SelectChoice("not_sure", "Not sure"),
]
LANGUAGE_CHOICES = [SelectChoice("en", "English"), SelectChoice("es", "Español (Spanish)")]


class BookingFields(FlaskForm):
    """The slot and the patient's fields: the one set of rules behind the form and the API."""

    slot_id = IntegerField(validators=[InputRequired(), NumberRange(min=1, max=MAX_ID)])
    first_name = StringField(
        "First name",
        filters=[strip_filter],
        validators=[InputRequired(), Length(max=NAME_MAX), person_name],
    )
    last_name = StringField(
        "Last name",
        filters=[strip_filter],
        validators=[InputRequired(), Length(max=NAME_MAX), person_name],
    )
    phone = TelField(
        "Mobile phone",
        filters=[strip_filter],
        validators=[InputRequired(), Length(max=PHONE_MAX), us_mobile_phone],
    )
    email = EmailField(
        "Email (optional)",
        filters=[strip_filter],
        validators=[Optional(), Length(max=EMAIL_MAX), Email(check_deliverability=False)],
    )
    date_of_birth = DateField(
        "Date of birth",
        format=["%Y-%m-%d", "%m/%d/%Y"],
        validators=[InputRequired(), plausible_birth_date],
    )
    language = RadioField("Preferred language", choices=LANGUAGE_CHOICES, default="en")
    sms_consent = BooleanField(SMS_CONSENT_TEXT, default=False)
    conservative_treatment_8_weeks = RadioField(
        "Have you had at least 8 weeks of conservative treatment "
        "(physical therapy, epidural steroid injections, medications)?",
        choices=TREATMENT_CHOICES,
        validators=[Optional()],
    )

    def to_booking_request(self, source: str, idempotency_key: str | None) -> BookingRequest:
        return BookingRequest(
            slot_id=self.slot_id.data,
            first_name=self.first_name.data,
            last_name=self.last_name.data,
            phone=self.phone.e164,
            email=self.email.data or None,
            date_of_birth=self.date_of_birth.data,
            language=self.language.data or "en",
            sms_consent=bool(self.sms_consent.data),
            sms_consent_text=SMS_CONSENT_TEXT if self.sms_consent.data else None,
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

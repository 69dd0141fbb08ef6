"""Field rules shared by the booking form and the JSON API."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import phonenumbers
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict
from wtforms import Field, Form
from wtforms.validators import ValidationError

# Letters in any script, joined by single spaces, hyphens, apostrophes or periods:
# José, O'Brien, D’Angelo, Mary-Jane, St. John, Nguyễn.
NAME_PATTERN = re.compile(r"^[^\W\d_]+(?:(?:[ '’\-]|\. ?)[^\W\d_]+)*\.?$")
NAME_MAX = 60
PHONE_MAX = 32
EMAIL_MAX = 254
OLDEST_AGE_YEARS = 120
# The form's hidden submission id and the API's Idempotency-Key header.
SUBMISSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[!-~]{1,64}$")  # printable ASCII, no spaces
# Ids beyond this fit no database integer column: they name nothing.
MAX_ID = 2**31 - 1
# Numbers that cannot take a text message.
NON_SMS_TYPES = {
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.PAGER,
    phonenumbers.PhoneNumberType.UAN,
    phonenumbers.PhoneNumberType.VOICEMAIL,
}


def strip_filter(value: Any) -> Any:
    return " ".join(value.split()) if isinstance(value, str) else value


def person_name(form: Form, field: Field) -> None:
    if field.data and not NAME_PATTERN.match(field.data):
        raise ValidationError(_("Use letters, spaces, hyphens and apostrophes only."))


def normalise_us_phone(raw: str) -> str:
    """E.164 form of a North American mobile number typed any usual way.

    Raises ValueError with a message for the patient.
    """
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        raise ValueError(_("Enter a US mobile number, like (830) 555-0123.")) from None
    if number.country_code != 1 or not phonenumbers.is_valid_number(number):
        raise ValueError(_("Enter a valid US mobile number, like (830) 555-0123."))
    if phonenumbers.number_type(number) in NON_SMS_TYPES:
        raise ValueError(_("This number cannot receive text messages; enter a mobile number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def us_mobile_phone(form: Form, field: Field) -> None:
    if not field.data:
        return
    try:
        field.e164 = normalise_us_phone(field.data)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def plausible_birth_date(form: Form, field: Field) -> None:
    if field.data is None:
        return
    today = date.today()
    if field.data > today:
        raise ValidationError(_("The date of birth cannot be in the future."))
    if field.data.year < today.year - OLDEST_AGE_YEARS:
        raise ValidationError(_("Check the year of birth."))


# JSON field name -> the JSON types it accepts.
API_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "slot_id": (int,),
    "first_name": (str,),
    "last_name": (str,),
    "phone": (str,),
    "email": (str,),
    "date_of_birth": (str,),
    "language": (str,),
    "sms_consent": (bool,),
    "conservative_treatment_8_weeks": (str,),
}
API_REQUIRED = ("slot_id", "first_name", "last_name", "phone", "sms_consent")


def formdata_from_json(payload: dict[str, Any]) -> tuple[MultiDict[str, str], dict[str, list[str]]]:
    """Turn a JSON booking into form data, plus the errors of fields of the wrong JSON type.

    The form's own validators then apply exactly as for the web form.
    """
    data: MultiDict[str, str] = MultiDict()
    errors: dict[str, list[str]] = {}
    for name, types in API_FIELD_TYPES.items():
        if name not in payload or payload[name] is None:
            if name in API_REQUIRED:
                errors[name] = ["This field is required."]
            continue
        value = payload[name]
        # bool is an int in Python; a slot id of true is still wrong.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            kind = {int: "an integer", str: "a string", bool: "true or false"}[types[0]]
            errors[name] = [f"Must be {kind}."]
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "y"
        else:
            data[name] = str(value)
    return data, errors

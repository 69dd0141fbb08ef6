"""Field rules shared by the booking form, the staff form, the JSON API and inbound texts."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from typing import Any

import phonenumbers
from babel import Locale
from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict
from wtforms import Field, Form
from wtforms.form import BaseForm
from wtforms.validators import NumberRange, ValidationError

from scheduler.display import clinic_today

NAME_MAX = 60
PHONE_MAX = 32
EMAIL_MAX = 254
OLDEST_AGE_YEARS = 120
# The form's hidden submission id and the API's Idempotency-Key header.
SUBMISSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[!-~]{1,64}$")  # printable ASCII, no spaces
# Ids beyond this fit no database integer column: they name nothing.
MAX_ID = 2**31 - 1
# Numbers that cannot take a text message, or whose texts the clinic would pay a premium for.
NON_SMS_TYPES = {
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER,  # +1 500 and the like: forwarded anywhere
    phonenumbers.PhoneNumberType.PAGER,
    phonenumbers.PhoneNumberType.UAN,
    phonenumbers.PhoneNumberType.VOICEMAIL,
}
# What people type in a phone number besides digits; letters (extensions, "x12") are refused.
PHONE_CHARACTERS = re.compile(r"^\+?[0-9 ().\-/]+$")

# Patient-facing messages, in one place, in the page's language (gettext).
PHONE_FORMAT_MESSAGE = _l("Enter a US mobile number with digits only, like (830) 555-0123.")
PHONE_INVALID_MESSAGE = _l("Enter a valid US mobile number, like (830) 555-0123.")
PHONE_REGION_MESSAGE = _l("We can only text mobile numbers in %(regions)s.")
PHONE_TYPE_MESSAGE = _l("This number cannot receive our text messages; enter a mobile number.")
NAME_LETTERS_MESSAGE = _l("Use letters, spaces, hyphens and apostrophes only.")
NAME_NEEDS_LETTER_MESSAGE = _l("Enter a name with letters.")
NAME_DOT_MESSAGE = _l("Put a space after each period, like J. R.")
BIRTH_DATE_FUTURE_MESSAGE = _l("The date of birth cannot be in the future.")
BIRTH_YEAR_MESSAGE = _l("Check the year of birth.")

# Letters that show nothing: a name made of them reads as empty in a text.
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\u034f\u180e")
# A name as a sequence of kinds: "a" a letter (with any marks after it), then separators.
NAME_SHAPE = re.compile(r"^a(?:(?:[ '\-]|\. )a)*\.?$")
_NAME_SEPARATORS = {" ": " ", "-": "-", "'": "'", "\u2019": "'", ".": "."}


def strip_filter(value: Any) -> Any:
    """Trim and collapse runs of whitespace to one space."""
    return " ".join(value.split()) if isinstance(value, str) else value


def name_filter(value: Any) -> Any:
    """Unicode NFKC (full-width and compatibility letters become plain ones), then trimmed."""
    return strip_filter(unicodedata.normalize("NFKC", value)) if isinstance(value, str) else value


def name_problem(name: str) -> str | None:
    """Why ``name`` (already filtered) cannot be a person's name in a text, or None.

    Accepts letters of any script with their accents, single spaces, hyphens,
    apostrophes (' and ’) and initials ("J. R."). Refuses digits, symbols
    (@, /, :), invisible and control characters, and letters joined by a dot,
    so that no name reads as a web address ("Claim.prize.evil.com").
    """
    shape: list[str] = []
    for ch in name:
        category = unicodedata.category(ch)
        if ch in INVISIBLE_LETTERS or category[0] == "C":
            return str(NAME_LETTERS_MESSAGE)
        if category[0] == "L":
            if not shape or shape[-1] != "a":
                shape.append("a")
        elif category[0] == "M" and shape and shape[-1] == "a":
            continue  # a combining accent on the letter before it
        elif ch in _NAME_SEPARATORS:
            shape.append(_NAME_SEPARATORS[ch])
        else:
            return str(NAME_LETTERS_MESSAGE)
    if "a" not in shape:
        return str(NAME_NEEDS_LETTER_MESSAGE)
    text = "".join(shape)
    if NAME_SHAPE.match(text):
        return None
    if re.search(r"a\.a", text):
        return str(NAME_DOT_MESSAGE)
    return str(NAME_LETTERS_MESSAGE)


def person_name(form: Form, field: Field) -> None:
    if field.data:
        problem = name_problem(field.data)
        if problem:
            raise ValidationError(problem)


class IntRange(NumberRange):
    """NumberRange for integers of any size (WTForms' own overflows turning 10**400 into float)."""

    min: int
    max: int

    def __init__(self, min: int, max: int, message: str | None = None) -> None:
        super().__init__(min, max, message)

    def __call__(self, form: BaseForm, field: Field) -> None:
        data = field.data
        if isinstance(data, int) and not (self.min <= data <= self.max):
            message = self.message or f"Must be between {self.min} and {self.max}."
            raise ValidationError(message)
        super().__call__(form, field)


def parse_regions(setting: str | Collection[str]) -> frozenset[str]:
    """``PHONE_REGIONS`` ("US" or "US,PR") as region codes; ValueError for an unknown one."""
    items = setting.split(",") if isinstance(setting, str) else setting
    regions = frozenset(item.strip().upper() for item in items if item.strip())
    unknown = sorted(regions - phonenumbers.SUPPORTED_REGIONS)
    if not regions or unknown:
        raise ValueError(f"PHONE_REGIONS: unknown region {', '.join(unknown) or '(none)'}")
    return regions


def region_names(regions: Collection[str]) -> str:
    """The regions' names in the page's language ("the United States" / "Estados Unidos")."""
    locale = get_locale() or Locale("en")
    names = sorted(locale.territories.get(code, code) for code in regions)
    if locale.language == "en":
        names = [f"the {name}" if name.startswith("United") else name for name in names]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + (" o " if locale.language == "es" else " or ") + names[-1]


def normalise_phone(raw: str, regions: Collection[str]) -> str:
    """E.164 form of a mobile number in one of ``regions``, typed any usual way.

    The one rule for every door: the booking form, the staff form, the API
    and the sender of an incoming text. Refuses the other countries that share
    +1, personal (+1 500), premium, toll-free, shared-cost, pager, UAN and
    voicemail numbers, and extensions. Raises ValueError with a message for the patient.
    """
    raw = raw.strip()
    if not raw or len(raw) > PHONE_MAX or not PHONE_CHARACTERS.match(raw):
        raise ValueError(str(PHONE_FORMAT_MESSAGE))
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        raise ValueError(str(PHONE_INVALID_MESSAGE)) from None
    if number.extension or not phonenumbers.is_valid_number(number):
        raise ValueError(str(PHONE_INVALID_MESSAGE))
    if phonenumbers.region_code_for_number(number) not in regions:
        raise ValueError(str(PHONE_REGION_MESSAGE % {"regions": region_names(regions)}))
    if phonenumbers.number_type(number) in NON_SMS_TYPES:
        raise ValueError(str(PHONE_TYPE_MESSAGE))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def accepted_regions() -> frozenset[str]:
    return parse_regions(current_app.config["PHONE_REGIONS"])


def accepted_phone(raw: str) -> str | None:
    """The E.164 number if the service may text it (the app's ``PHONE_REGIONS``), else None."""
    try:
        return normalise_phone(raw, accepted_regions())
    except ValueError:
        return None


def mobile_phone(raw: str) -> str:
    """The E.164 number if the service may text it, else a ValidationError saying why."""
    try:
        return normalise_phone(raw, accepted_regions())
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def plausible_birth_date(form: Form, field: Field) -> None:
    if field.data is None:
        return
    today = clinic_today()
    if field.data > today:
        raise ValidationError(str(BIRTH_DATE_FUTURE_MESSAGE))
    if field.data.year < today.year - OLDEST_AGE_YEARS:
        raise ValidationError(str(BIRTH_YEAR_MESSAGE))


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


def formdata_from_json(
    payload: dict[str, Any],
    field_types: dict[str, tuple[type, ...]] | None = None,
    required: tuple[str, ...] = API_REQUIRED,
) -> tuple[MultiDict[str, str], dict[str, list[str]]]:
    """Turn a JSON booking into form data, plus the errors of fields of the wrong JSON type.

    The form's own validators then apply exactly as for the web form.
    """
    data: MultiDict[str, str] = MultiDict()
    errors: dict[str, list[str]] = {}
    for name, types in (field_types or API_FIELD_TYPES).items():
        if name not in payload or payload[name] is None:
            if name in required:
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

"""Text templates: which placeholders each may use, checking them, and filling them in.

Templates are ``str.format`` text with named placeholders only ("{first_name}").
The placeholders are the minimum necessary: a first name, the clinic, the
location, date and time, the reference and links. There is no placeholder for
a last name, a birth date, a screening answer or the procedure, so no template
an editor writes can put them in a text.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton, format_time
from flask import current_app

from scheduler.appointments.links import manage_url
from scheduler.display import phone_display
from scheduler.i18n import FORMAT_LOCALES
from scheduler.models import Appointment, Location, MessageKind, utcnow
from scheduler.sms.segments import gsm_safe, segment_count
from scheduler.urls import public_url

CLINIC_FIELDS = frozenset({"clinic", "clinic_phone", "booking_url"})
APPOINTMENT_FIELDS = CLINIC_FIELDS | {
    "first_name",
    "location",
    "date",
    "time",
    "reference",
    "manage_url",
    "instructions_url",
}
TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "sms_confirmation": APPOINTMENT_FIELDS,
    "sms_rescheduled": APPOINTMENT_FIELDS,
    "sms_instructions": APPOINTMENT_FIELDS,
    "sms_reminder": APPOINTMENT_FIELDS,
    "sms_cancellation": APPOINTMENT_FIELDS,
    "sms_confirmed_reply": APPOINTMENT_FIELDS,
    "sms_reschedule_reply": APPOINTMENT_FIELDS,
    "sms_help_reply": CLINIC_FIELDS,
    "sms_other_reply": CLINIC_FIELDS,
    "sms_no_appointment_reply": CLINIC_FIELDS,
    "sms_opt_out_reply": CLINIC_FIELDS,
    "sms_opt_in_reply": CLINIC_FIELDS,
}
TEMPLATE_OF_KIND = {
    MessageKind.CONFIRMATION: "sms_confirmation",
    MessageKind.RESCHEDULED: "sms_rescheduled",
    MessageKind.INSTRUCTIONS: "sms_instructions",
    MessageKind.REMINDER: "sms_reminder",
    MessageKind.CANCELLATION: "sms_cancellation",
}
# Babel's CLDR data puts narrow no-break spaces in times ("9:30 AM"); one of
# those turns a whole text into UCS-2 and halves what fits in a segment.
_PLAIN_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


# A first name in a text: at most this many characters (whole words when they fit), so
# that every default text stays within two segments whatever the name.
TEXT_NAME_MAX = 20
# What one text may be: Twilio refuses more than 1,600 characters; more than 4 segments
# costs more than any appointment text is worth.
TEXT_MAX_CHARACTERS = 1600
TEXT_MAX_SEGMENTS = 4


class TemplateError(ValueError):
    """A template that cannot be filled in: unknown placeholder or broken braces."""


def placeholders_in(template: str) -> list[str]:
    """The placeholder names a template uses; TemplateError for anything but plain names."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"Broken braces: {exc}. Write {{{{ or }}}} for a literal brace."
        ) from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(f"Placeholder {{{name}}} is not allowed; use plain names.")
        names.append(name)
    return names


@functools.lru_cache(maxsize=512)
def check_template(key: str, template: str) -> None:
    """TemplateError unless the template uses only its key's placeholders (each template
    text is checked once per process; a failed check is not remembered)."""
    allowed = TEMPLATE_FIELDS[key]
    unknown = sorted(set(placeholders_in(template)) - allowed)
    if unknown:
        raise TemplateError(
            "Unknown placeholder "
            + ", ".join(f"{{{name}}}" for name in unknown)
            + ". Allowed: "
            + ", ".join(f"{{{name}}}" for name in sorted(allowed))
        )


def fill_template(key: str, template: str, values: Mapping[str, str]) -> str:
    check_template(key, template)
    return template.format_map(values).strip()


def text_name(first_name: str) -> str:
    """The first name as texts carry it: GSM-7 only (María -> Maria), and short.

    "Maria Guadalupe" stays whole; a longer name keeps the words that fit in
    TEXT_NAME_MAX characters, a single long word its first TEXT_NAME_MAX.
    """
    name = gsm_safe(first_name).strip()
    if len(name) <= TEXT_NAME_MAX:
        return name
    words = name.split(" ")
    kept = words[0][:TEXT_NAME_MAX]
    for word in words[1:]:
        if len(kept) + 1 + len(word) > TEXT_NAME_MAX:
            break
        kept += " " + word
    return kept


def check_text_size(key: str, template: str, location: Location | None, language: str) -> None:
    """TemplateError if the template, filled with the longest values it can get, would
    exceed TEXT_MAX_CHARACTERS or TEXT_MAX_SEGMENTS."""
    text = fill_template(key, template, longest_values(location, language))
    count = segment_count(text)
    if count.characters > TEXT_MAX_CHARACTERS:
        raise TemplateError(
            f"Too long: with the longest name and date this text has {count.characters} "
            f"characters; a text may have at most {TEXT_MAX_CHARACTERS}."
        )
    if count.segments > TEXT_MAX_SEGMENTS:
        raise TemplateError(
            f"Too long: with the longest name and date this text takes {count.segments} "
            f"segments ({count.encoding}); at most {TEXT_MAX_SEGMENTS} are allowed. "
            "Shorten it, or leave out characters GSM-7 lacks (such as á, í, ó, ú)."
        )


@functools.cache
def _longest_date_and_time(language: str) -> tuple[str, str]:
    """The longest date and time a text can show in this language (over a whole year)."""
    tz = ZoneInfo("America/Chicago")
    first = datetime(2027, 1, 1, 10, 30, tzinfo=tz)
    days = [first + timedelta(days=n) for n in range(365)]
    longest_date = max((visit_date(day, language) for day in days), key=len)
    times = [datetime(2027, 1, 1, hour, 30, tzinfo=tz) for hour in range(24)]
    return longest_date, max((visit_time(t, language) for t in times), key=len)


def longest_values(location: Location | None, language: str) -> dict[str, str]:
    """The sample visit with the longest values a real text can carry (name, date, time)."""
    longest_date, longest_time = _longest_date_and_time(language)
    return {
        **sample_values(location, language),
        "first_name": "W" * TEXT_NAME_MAX,
        "date": longest_date,
        "time": longest_time,
    }


def visit_date(local: datetime, language: str) -> str:
    return _day_text(local.date(), language)


def visit_time(local: datetime, language: str) -> str:
    return _time_text(local.time(), language)


# Visits fall on a few hundred days and times: each is formatted once per process.
@functools.lru_cache(maxsize=4096)
def _day_text(day: date, language: str) -> str:
    return format_skeleton("MMMEd", day, locale=language).translate(_PLAIN_SPACES)


@functools.lru_cache(maxsize=1024)
def _time_text(wall_time: time, language: str) -> str:
    return format_time(wall_time, "short", locale=FORMAT_LOCALES[language]).translate(_PLAIN_SPACES)


def clinic_values() -> dict[str, str]:
    config = current_app.config
    return {
        "clinic": config["CLINIC_NAME"],
        "clinic_phone": phone_display(config["CLINIC_PHONE"]),
        "booking_url": public_url("booking.index"),
    }


def instructions_url(location_slug: str, language: str) -> str:
    query = {"lang": language} if language != "en" else {}
    return public_url("booking.instructions", slug=location_slug, **query)


def appointment_values(appt: Appointment) -> dict[str, str]:
    """What an appointment's texts may say, in the patient's language."""
    location = appt.slot.location
    language = appt.patient.language
    local = appt.slot.starts_at.astimezone(ZoneInfo(location.timezone))
    return {
        **clinic_values(),
        "first_name": text_name(appt.patient.first_name),
        "location": gsm_safe(location.name),
        "date": visit_date(local, language),
        "time": visit_time(local, language),
        "reference": appt.reference,
        "manage_url": manage_url(appt),
        "instructions_url": instructions_url(location.slug, language),
    }


def sample_values(location: Location | None, language: str) -> dict[str, str]:
    """Values of a made-up visit, for previews while editing a template."""
    tz = ZoneInfo(location.timezone if location else current_app.config["DISPLAY_TIMEZONE"])
    visit_day = utcnow().astimezone(tz).date() + timedelta(days=8)
    local = datetime.combine(visit_day, time(9, 30), tzinfo=tz)
    slug = location.slug if location else "kerrville"
    reference = f"{location.code if location else 'KRV'}-7K3Q"
    return {
        **clinic_values(),
        "first_name": "Guadalupe",
        "location": location.name if location else "Kerrville",
        "date": visit_date(local, language),
        "time": visit_time(local, language),
        "reference": reference,
        "manage_url": public_url(
            "booking.manage",
            reference=reference,
            token="dm8aOO6Q-b0V_WfL.awSILA.5eu4zIMNg4_N-1jJZ0NxEdq83pg",
        ),
        "instructions_url": instructions_url(slug, language),
    }

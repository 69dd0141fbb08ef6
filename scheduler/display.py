"""How times, numbers and places look to people: Central time, the page's language
(formatted by Babel), US phone format, no placeholder address."""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import phonenumbers
from babel.dates import format_date, format_time
from flask import Flask, current_app
from flask_babel import gettext

from scheduler.i18n import format_locale, page_language
from scheduler.models import Location, utcnow

DAY_PATTERNS = {"en": "EEEE, MMMM d", "es": "EEEE d 'de' MMMM"}
# "..., Boerne, TX" or "..., San Antonio, TX 78229": the city and state at the end of an address.
CITY_STATE = re.compile(r"([^,]+),\s*([A-Z]{2})(?:\s+\d{5}(?:-\d{4})?)?\s*$")


def local_isoformat(instant: datetime, tz_name: str) -> str:
    """ISO 8601 with the local offset, e.g. 2026-12-01T09:00:00-06:00.

    A naive instant is UTC (as SQLite returns it).
    """
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(ZoneInfo(tz_name)).isoformat()


def display_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])


def clinic_today() -> date:
    """Today's date at the clinic (Central time), whatever the server's time zone."""
    return utcnow().astimezone(display_tz()).date()


def to_local(instant: datetime, tz: ZoneInfo | None = None) -> datetime:
    return instant.astimezone(tz or display_tz())


def local_date(value: datetime | date) -> str:
    """ "Monday, March 2, 2026" / "lunes, 2 de marzo de 2026"."""
    if isinstance(value, datetime):
        value = to_local(value).date()
    return format_date(value, "full", locale=format_locale())


def local_day(value: datetime | date) -> str:
    """ "Tuesday, March 3" / "martes 3 de marzo": a day in the coming weeks."""
    if isinstance(value, datetime):
        value = to_local(value).date()
    return format_date(value, DAY_PATTERNS[page_language()], locale=format_locale())


def local_time(instant: datetime) -> str:
    """ "9:00 AM CST" / "9:00 a.m. CST" (plain spaces, as in the texts)."""
    return format_time(to_local(instant), "h:mm a z", locale=format_locale())


def local_clock(instant: datetime) -> str:
    """ "9:00 AM" / "9:00 a.m.": a time on a page that says its zone once."""
    return format_time(to_local(instant), "h:mm a", locale=format_locale())


def clock_hour(instant: datetime) -> int:
    """The hour on a 12-hour clock: Spanish says "la 1:00" but "las 8:00" (a plural form)."""
    return to_local(instant).hour % 12 or 12


def time_of_day(value: time) -> str:
    """A wall-clock time without a date: "8:00 AM" / "8:00 a.m."."""
    return format_time(value, "h:mm a", locale=format_locale())


def local_datetime(instant: datetime) -> str:
    return gettext("%(date)s at %(time)s", date=local_date(instant), time=local_time(instant))


def public_address(location: Location) -> str:
    """The street address once staff have confirmed it; until then the city and state only."""
    if not location.address_is_placeholder:
        return location.address
    found = CITY_STATE.search(location.address)
    return f"{found.group(1).strip()}, {found.group(2)}" if found else location.name


@functools.lru_cache(maxsize=1024)
def phone_display(e164: str) -> str:
    try:
        number = phonenumbers.parse(e164, "US")
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def register_filters(app: Flask) -> None:
    app.add_template_filter(local_date)
    app.add_template_filter(local_time)
    app.add_template_filter(local_datetime)
    app.add_template_filter(local_clock)
    app.add_template_filter(local_day)
    app.add_template_filter(clock_hour)
    app.add_template_filter(public_address)
    app.add_template_filter(phone_display, "phone")

"""How times and numbers look to people: Central time, US phone format."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import phonenumbers
from flask import Flask, current_app


def local_isoformat(instant: datetime, tz_name: str) -> str:
    """ISO 8601 with the local offset, e.g. 2026-12-01T09:00:00-06:00.

    A naive instant is UTC (as SQLite returns it).
    """
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(ZoneInfo(tz_name)).isoformat()


def display_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])


def to_local(instant: datetime, tz: ZoneInfo | None = None) -> datetime:
    return instant.astimezone(tz or display_tz())


def local_date(value: datetime | date) -> str:
    if isinstance(value, datetime):
        value = to_local(value).date()
    return f"{value:%A, %B} {value.day}, {value:%Y}"


def local_time(instant: datetime) -> str:
    local = to_local(instant)
    return f"{local:%I:%M %p}".lstrip("0") + f" {local:%Z}"


def local_datetime(instant: datetime) -> str:
    return f"{local_date(instant)} at {local_time(instant)}"


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
    app.add_template_filter(phone_display, "phone")

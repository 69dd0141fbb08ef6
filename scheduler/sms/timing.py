"""When texts may go out: sending hours, the cadence before a visit, retry backoff.

Pure functions on aware datetimes; no Flask or database here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduler.availability.slots import wall_time_to_utc


@dataclass(frozen=True)
class SendingHours:
    """Texts go out only from ``start`` (inclusive) to ``end`` (exclusive), local wall time."""

    start: time = time(8, 0)
    end: time = time(21, 0)

    def contains(self, instant: datetime, tz: ZoneInfo) -> bool:
        local = instant.astimezone(tz).time()
        return self.start <= local < self.end


def next_sending_moment(instant: datetime, tz: ZoneInfo, hours: SendingHours) -> datetime:
    """``instant`` itself inside sending hours, else the next opening of them (in UTC)."""
    if hours.contains(instant, tz):
        return instant
    local = instant.astimezone(tz)
    day = local.date() if local.time() < hours.start else local.date() + timedelta(days=1)
    opening = wall_time_to_utc(day, hours.start, tz)
    if opening is None:  # an opening hour skipped by a DST change: the first moment after it
        opening = datetime.combine(day, hours.start, tzinfo=tz).astimezone(UTC)
    return opening


def sending_time(
    due: datetime, tz: ZoneInfo, hours: SendingHours, send_before: datetime | None
) -> datetime | None:
    """When a text due at ``due`` goes out; None when that is at or after ``send_before``."""
    moment = next_sending_moment(due, tz, hours)
    if send_before is not None and moment >= send_before:
        return None
    return moment


def scheduled_due_time(
    visit_start: datetime, hours_before: int, booked_at: datetime, send_if_late: bool
) -> datetime | None:
    """When a text ``hours_before`` the visit is due, for a booking made at ``booked_at``.

    A booking made after that moment gets it at once if ``send_if_late``,
    otherwise not at all (None).
    """
    due = visit_start - timedelta(hours=hours_before)
    if due >= booked_at:
        return due
    return booked_at if send_if_late else None


def retry_delay(
    attempt: int, base_seconds: float, cap_seconds: float, rng: random.Random | None = None
) -> timedelta:
    """Exponential backoff with jitter after failed attempt number ``attempt`` (1-based).

    Half of the delay is fixed and half random ("equal jitter"), so retries
    spread out but never come back at once.
    """
    ceiling = min(cap_seconds, base_seconds * 2 ** max(attempt - 1, 0))
    jitter = (rng or random).uniform(0, ceiling / 2)
    return timedelta(seconds=ceiling / 2 + jitter)

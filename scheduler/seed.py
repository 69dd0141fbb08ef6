"""The clinic's starting data. Idempotent: running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from sqlalchemy import select

from scheduler.content import CONTENT_KEYS, LANGUAGES, default_text
from scheduler.extensions import db
from scheduler.models import ContentBlock, Location, MessageSchedule, OpeningRule
from scheduler.sms.outbox import DEFAULT_SCHEDULES

PLACEHOLDER_ADDRESS = "Street address to be confirmed (placeholder: staff, please edit)"


@dataclass(frozen=True)
class LocationSeed:
    slug: str
    name: str
    code: str
    city: str


LOCATIONS = [
    LocationSeed("boerne", "Boerne", "BRN", "Boerne, TX"),
    LocationSeed("kerrville", "Kerrville", "KRV", "Kerrville, TX"),
    LocationSeed("san-antonio", "San Antonio", "SAT", "San Antonio, TX"),
]
WEEKDAYS_MON_FRI = range(5)
DEFAULT_HOURS = (time(8, 0), time(17, 0))
DEFAULT_SLOT_MINUTES = 30
DEFAULT_CAPACITY = 2


def seed_clinic(clinic_phone: str) -> list[str]:
    """Create what is missing; never overwrite what staff may have edited. Returns what it did."""
    done: list[str] = []
    for position, seed in enumerate(LOCATIONS):
        location = db.session.scalar(select(Location).where(Location.slug == seed.slug))
        if location is None:
            location = Location(
                slug=seed.slug,
                name=seed.name,
                code=seed.code,
                address=f"{PLACEHOLDER_ADDRESS}, {seed.city}",
                address_is_placeholder=True,
                phone=clinic_phone,
                timezone="America/Chicago",
                closed_on_federal_holidays=True,
                position=position,
                is_active=True,
            )
            db.session.add(location)
            done.append(f"location {seed.slug}")
        if not location.opening_rules:
            for weekday in WEEKDAYS_MON_FRI:
                location.opening_rules.append(
                    OpeningRule(
                        weekday=weekday,
                        start_time=DEFAULT_HOURS[0],
                        end_time=DEFAULT_HOURS[1],
                        slot_minutes=DEFAULT_SLOT_MINUTES,
                        capacity=DEFAULT_CAPACITY,
                    )
                )
            done.append(f"weekly hours for {seed.slug}")
    for key in CONTENT_KEYS:
        for language in LANGUAGES:
            exists = db.session.scalar(
                select(ContentBlock.id).where(
                    ContentBlock.key == key,
                    ContentBlock.language == language,
                    ContentBlock.location_id.is_(None),
                )
            )
            if exists is None:
                db.session.add(
                    ContentBlock(key=key, language=language, body=default_text(key, language))
                )
                done.append(f"text {key} ({language})")
    for kind, hours_before, send_if_late in DEFAULT_SCHEDULES:
        exists = db.session.scalar(select(MessageSchedule.id).where(MessageSchedule.kind == kind))
        if exists is None:
            db.session.add(
                MessageSchedule(kind=kind, hours_before=hours_before, send_if_late=send_if_late)
            )
            done.append(f"text schedule {kind} ({hours_before} h before)")
    db.session.commit()
    return done

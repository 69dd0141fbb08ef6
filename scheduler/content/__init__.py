"""Editable texts: defaults ship as files here, live copies are ContentBlock rows."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import ContentBlock, Location

CONTENT_DIR = Path(__file__).parent
LANGUAGES = ("en", "es")
CONTENT_KEYS = ("preconsult_instructions",)


def default_text(key: str, language: str) -> str:
    return (CONTENT_DIR / f"{key}.{language}.txt").read_text(encoding="utf-8").strip()


def content_for(key: str, location: Location | None, language: str) -> str:
    """The location's own text if staff wrote one, else the clinic-wide text."""
    scope = ContentBlock.location_id.is_(None)
    if location is not None:
        scope = scope | (ContentBlock.location_id == location.id)
    rows = db.session.scalars(
        select(ContentBlock).where(
            ContentBlock.key == key, ContentBlock.language == language, scope
        )
    ).all()
    chosen = [r for r in rows if r.location_id is not None] or rows
    return chosen[0].body if chosen else default_text(key, language)


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]

"""Editable texts: defaults ship as files here, live copies are ContentBlock rows,
read through each process's copy (``scheduler/staff_edits.py``: an edit reaches every
worker within a second)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from scheduler.audit import audit
from scheduler.extensions import db
from scheduler.models import ContentBlock, Location
from scheduler.staff_edits import staff_edits

CONTENT_DIR = Path(__file__).parent
LANGUAGES = ("en", "es")
SMS_TEMPLATE_KEYS = (
    "sms_confirmation",
    "sms_rescheduled",
    "sms_instructions",
    "sms_reminder",
    "sms_cancellation",
    "sms_closure_notice",
    "sms_help_reply",
    "sms_other_reply",
    "sms_confirmed_reply",
    "sms_reschedule_reply",
    "sms_no_appointment_reply",
    "sms_opt_out_reply",
    "sms_opt_in_reply",
    "sms_waitlist_offer",
)
# Emails: the first line is the subject (scheduler/mail/messages.py).
EMAIL_TEMPLATE_KEYS = (
    "email_confirmation",
    "email_rescheduled",
    "email_instructions",
    "email_reminder",
    "email_cancellation",
    "email_closure_notice",
    "email_waitlist_offer",
)
# Pages of the public site whose words admins edit.
PAGE_KEYS = ("preconsult_instructions", "privacy_notice")
CONTENT_KEYS = (*PAGE_KEYS, *SMS_TEMPLATE_KEYS, *EMAIL_TEMPLATE_KEYS)


@functools.cache
def default_text(key: str, language: str) -> str:
    return (CONTENT_DIR / f"{key}.{language}.txt").read_text(encoding="utf-8").strip()


def content_for(key: str, location: Location | None, language: str) -> str:
    """The location's own text if staff wrote one, else the clinic-wide text."""
    return contents_for((key,), location, language)[key]


def contents_for(keys: Iterable[str], location: Location | None, language: str) -> dict[str, str]:
    """Several texts: per key, the location's own, else the clinic-wide one, else the default."""
    blocks = staff_edits().blocks
    location_id = location.id if location is not None else None
    return {
        key: blocks.get((key, language, location_id))
        or blocks.get((key, language, None))
        or default_text(key, language)
        for key in keys
    }


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def blocks_of(text: str) -> list[tuple[str, list[str]]]:
    """A page's text as blocks: ``("heading", [text])`` for a line starting "## ",
    ``("list", items)`` for a run of lines starting "- ", ``("paragraph", [text])`` for a
    run of other lines (a blank line ends it). Everything stays plain text, escaped."""
    blocks: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        kind = (
            "heading"
            if line.startswith("## ")
            else "list"
            if line.startswith("- ")
            else "paragraph"
        )
        if not line:
            blocks.append(("break", []))
        elif kind == "heading":
            blocks.append(("heading", [line[3:].strip()]))
        elif blocks and blocks[-1][0] == kind == "list":
            blocks[-1][1].append(line[2:].strip())
        elif blocks and blocks[-1][0] == kind == "paragraph":
            blocks[-1][1][0] += " " + line
        else:
            blocks.append((kind, [line[2:].strip() if kind == "list" else line]))
    return [block for block in blocks if block[0] != "break"]


def save_content(
    key: str, language: str, location: Location | None, body: str, now: datetime
) -> ContentBlock:
    """Store staff's text for this key, language and scope (all locations when None); audited.

    The caller checks the text first and commits (texts queued from then on use it).
    """
    scope = (
        ContentBlock.location_id == location.id if location else ContentBlock.location_id.is_(None)
    )
    row = db.session.scalar(
        select(ContentBlock).where(
            ContentBlock.key == key, ContentBlock.language == language, scope
        )
    )
    if row is None:
        row = ContentBlock(
            key=key, language=language, location_id=location.id if location else None
        )
        db.session.add(row)
    before = row.body
    row.body, row.updated_at = body, now
    db.session.flush()
    audit(
        "text.edit",
        "content_block",
        row.id,
        f"{key}/{language}/{location.slug if location else 'all'}",
        before=before,
        after=body,
    )
    return row

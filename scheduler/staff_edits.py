"""What staff edit and every request reads, kept per process: the stored texts, the
cadence of texts (message schedules) and which locations are open.

The rule: each process reads them from the database at most once every
``STAFF_EDITS_CACHE_SECONDS`` (1 s by default) and keeps them in between; a
commit that wrote any of them through the ORM (staff saving a text or a
location, the seed) empties the copy of the process that made it at once. So
the worker where staff saved a change uses it from its next request on, and
every other worker, thread or process (gunicorn's, the scheduler's) within
``STAFF_EDITS_CACHE_SECONDS`` of the commit. Texts are filled when they are
queued, so a text queued in that second keeps the words it was queued with;
whether a slot can still be booked is always decided by the database itself
(``appointments.places``), never by this copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from scheduler.database import connection
from scheduler.models import ContentBlock, Location, MessageSchedule

# (key, language, location_id or None for every location) -> body
BlockKey = tuple[str, str, int | None]
EDITABLE = (ContentBlock, MessageSchedule, Location)
EXTENSION = "staff_edits"

_BLOCKS = select(
    ContentBlock.key, ContentBlock.language, ContentBlock.location_id, ContentBlock.body
)
_SCHEDULES = (
    select(MessageSchedule.kind, MessageSchedule.hours_before, MessageSchedule.send_if_late)
    .where(MessageSchedule.is_enabled)
    .order_by(MessageSchedule.id)
)
_ACTIVE_LOCATIONS = select(Location.id, Location.slug, Location.timezone).where(Location.is_active)


@dataclass(frozen=True)
class Schedule:
    """An enabled message schedule (see ``models.MessageSchedule``)."""

    kind: str
    hours_before: int
    send_if_late: bool


class LocationRef(NamedTuple):
    """What the API's slot listing needs of an open location."""

    id: int
    slug: str
    timezone: str


@dataclass(frozen=True)
class Snapshot:
    blocks: dict[BlockKey, str]
    schedules: tuple[Schedule, ...]
    active_locations: dict[str, LocationRef]  # by slug
    read_at: float


class StaffEdits:
    """One app's copy (see the module docstring)."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._snapshot: Snapshot | None = None

    def current(self) -> Snapshot:
        """The copy read less than ``max_age_s`` ago, or a fresh one (three small queries)."""
        snapshot = self._snapshot
        if snapshot is None or self.clock() - snapshot.read_at >= self.max_age_s:
            snapshot = self._read()
            self._snapshot = snapshot
        return snapshot

    def forget(self) -> None:
        self._snapshot = None

    def _read(self) -> Snapshot:
        read_at = self.clock()
        conn = connection()
        blocks = {(k, lang, loc): body for k, lang, loc, body in conn.execute(_BLOCKS)}
        schedules = tuple(Schedule(*row) for row in conn.execute(_SCHEDULES))
        locations = {row.slug: LocationRef(*row) for row in conn.execute(_ACTIVE_LOCATIONS)}
        return Snapshot(blocks, schedules, locations, read_at)


def staff_edits() -> Snapshot:
    """The current app's copy."""
    copy: StaffEdits = current_app.extensions[EXTENSION]
    return copy.current()


def init_staff_edits(app: Flask) -> None:
    app.extensions[EXTENSION] = StaffEdits(app.config["STAFF_EDITS_CACHE_SECONDS"])


@event.listens_for(Session, "after_flush")
def _note_writes(session: Session, flush_context: Any) -> None:
    touched = chain(session.new, session.dirty, session.deleted)
    if any(isinstance(obj, EDITABLE) for obj in touched):
        session.info["staff_edits_written"] = True


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    if session.info.pop("staff_edits_written", False) and has_app_context():
        copy = current_app.extensions.get(EXTENSION)
        if copy is not None:
            copy.forget()


@event.listens_for(Session, "after_rollback")
def _no_writes_after_rollback(session: Session) -> None:
    session.info.pop("staff_edits_written", None)

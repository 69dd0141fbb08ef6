"""What staff edit and every booking reads (texts, the cadence of texts), kept per process.

The rule: each process reads the stored texts and message schedules from the
database at most once every ``CONTENT_CACHE_SECONDS`` (1 s by default) and
keeps them in between; a commit that wrote any of them through the ORM (staff
saving a text, the seed) empties the cache of the process that made it at
once. So the worker where staff saved a text uses it from its next request on,
and every other worker, thread or process (gunicorn's, the scheduler's) within
``CONTENT_CACHE_SECONDS`` of the commit. Texts are filled when they are queued,
so a text queued in that second keeps the words it was queued with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from scheduler.database import connection
from scheduler.models import ContentBlock, MessageSchedule

# (key, language, location_id or None for every location) -> body
BlockKey = tuple[str, str, int | None]
EDITABLE = (ContentBlock, MessageSchedule)
EXTENSION = "stored_content"

_BLOCKS = select(
    ContentBlock.key, ContentBlock.language, ContentBlock.location_id, ContentBlock.body
)
_SCHEDULES = (
    select(MessageSchedule.kind, MessageSchedule.hours_before, MessageSchedule.send_if_late)
    .where(MessageSchedule.is_enabled)
    .order_by(MessageSchedule.id)
)


@dataclass(frozen=True)
class Schedule:
    """An enabled message schedule (see ``models.MessageSchedule``)."""

    kind: str
    hours_before: int
    send_if_late: bool


@dataclass(frozen=True)
class Snapshot:
    blocks: dict[BlockKey, str]
    schedules: tuple[Schedule, ...]
    read_at: float


class StoredContent:
    """One app's copy of the stored texts and schedules (see the module docstring)."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._snapshot: Snapshot | None = None

    def current(self) -> Snapshot:
        """The copy read less than ``max_age_s`` ago, or a fresh one (two queries)."""
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
        return Snapshot(blocks, schedules, read_at)


def stored_content() -> StoredContent:
    """The current app's copy."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def init_stored_content(app: Any) -> None:
    app.extensions[EXTENSION] = StoredContent(app.config["CONTENT_CACHE_SECONDS"])


@event.listens_for(Session, "after_flush")
def _note_writes(session: Session, flush_context: Any) -> None:
    touched = chain(session.new, session.dirty, session.deleted)
    if any(isinstance(obj, EDITABLE) for obj in touched):
        session.info["stored_content_written"] = True


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    if session.info.pop("stored_content_written", False) and has_app_context():
        cache = current_app.extensions.get(EXTENSION)
        if cache is not None:
            cache.forget()


@event.listens_for(Session, "after_rollback")
def _no_writes_after_rollback(session: Session) -> None:
    session.info.pop("stored_content_written", None)

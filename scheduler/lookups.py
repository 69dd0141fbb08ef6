"""Rows named by ids in URLs."""

from __future__ import annotations

from typing import TypeVar

from flask import abort

from scheduler.appointments.validation import MAX_ID
from scheduler.extensions import db

M = TypeVar("M")


def row_or_404(model: type[M], row_id: int, description: str) -> M:
    """The row, or 404 with ``description``; an id past MAX_ID is refused before the query
    (PostgreSQL would raise on it instead of finding nothing)."""
    if not 1 <= row_id <= MAX_ID:
        abort(404, description=description)
    return db.get_or_404(model, row_id, description=description)

"""Appointment scheduling for Freedom Spine & Pain Center.

Importing this package loads nothing else: the pure modules (slot arithmetic,
sending hours, text segments) import without Flask or a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then instance/config.py, then environment, then ``config``."""
    from scheduler.app import build_app  # Flask and the database load here, on first use

    return build_app(config)

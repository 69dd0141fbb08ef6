from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scheduler.extensions import Model
from scheduler.models.types import UTCDateTime, utcnow


class ContentBlock(Model):
    """Text staff edit without a deploy (pre-consult instructions, later SMS texts).

    A row with ``location_id`` NULL is the clinic-wide default; a row for a
    location overrides it for that location.
    """

    __tablename__ = "content_blocks"
    __table_args__ = (UniqueConstraint("key", "location_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    language: Mapped[str] = mapped_column(String(2))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

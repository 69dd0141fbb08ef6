from __future__ import annotations

from datetime import date, datetime, time
from typing import Literal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scheduler.extensions import Model
from scheduler.models.types import UTCDateTime, utcnow


class Location(Model):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    # Prefix of appointment references, e.g. KRV in KRV-7K3Q.
    code: Mapped[str] = mapped_column(String(3), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    address_is_placeholder: Mapped[bool] = mapped_column(Boolean, default=True)
    phone: Mapped[str] = mapped_column(String(20))
    timezone: Mapped[str] = mapped_column(String(64), default="America/Chicago")
    closed_on_federal_holidays: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # SHA-256 of the secret in the staff calendar feed's URL; None: no feed. A new one revokes.
    feed_token_hash: Mapped[str | None] = mapped_column(String(64))

    opening_rules: Mapped[list[OpeningRule]] = relationship(
        back_populates="location",
        order_by="(OpeningRule.weekday, OpeningRule.start_time)",
        cascade="all, delete-orphan",
    )
    exceptions: Mapped[list[ScheduleException]] = relationship(
        back_populates="location",
        order_by="ScheduleException.day",
        cascade="all, delete-orphan",
    )

    def __repr__(self) -> str:
        return f"<Location {self.slug}>"


class OpeningRule(Model):
    """A weekly opening session in local wall time (9:00 stays 9:00 across DST)."""

    __tablename__ = "opening_rules"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("start_time < end_time", name="start_before_end"),
        CheckConstraint("slot_minutes > 0", name="positive_slot_minutes"),
        CheckConstraint("capacity > 0", name="positive_capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday, as date.weekday()
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=30)
    capacity: Mapped[int] = mapped_column(Integer, default=1)

    location: Mapped[Location] = relationship(back_populates="opening_rules")


class ScheduleException(Model):
    """A dated change to the weekly rules: a closure or an extra session.

    A closure without times closes the whole day; with times, just those hours.
    """

    __tablename__ = "schedule_exceptions"
    __table_args__ = (
        CheckConstraint("kind IN ('closed', 'extra')", name="kind_known"),
        CheckConstraint(
            "(start_time IS NULL AND end_time IS NULL) OR start_time < end_time",
            name="times_ordered",
        ),
        CheckConstraint(
            "kind = 'closed' OR (start_time IS NOT NULL AND slot_minutes > 0 AND capacity > 0)",
            name="extra_complete",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[Literal["closed", "extra"]] = mapped_column(String(10))
    start_time: Mapped[time | None] = mapped_column(Time)
    end_time: Mapped[time | None] = mapped_column(Time)
    slot_minutes: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200), default="")
    # When staff added it (None for rows older than this column): bookings moved or
    # cancelled before then were not moved by this closure.
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)

    location: Mapped[Location] = relationship(back_populates="exceptions")


class Slot(Model):
    """A bookable start time, materialised from the rules (see availability.operations).

    ``booked_count`` is moved only by conditional UPDATEs in the same
    transaction as the appointment change, and the CHECK constraint makes the
    database itself refuse more than ``capacity``.
    """

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("location_id", "starts_at"),
        CheckConstraint("booked_count >= 0", name="booked_not_negative"),
        CheckConstraint("booked_count <= capacity", name="booked_within_capacity"),
        CheckConstraint("starts_at < ends_at", name="starts_before_ends"),
        Index("ix_slots_starts_at", "starts_at"),
        # Never reuse the id of a deleted slot: caches key slot data by id.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    capacity: Mapped[int] = mapped_column(Integer)
    booked_count: Mapped[int] = mapped_column(Integer, default=0)
    is_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    block_reason: Mapped[str] = mapped_column(String(200), default="")
    # Blocked by the schedule, not by a person: the rules (hours or a closure) no longer
    # produce this slot but appointments point at it. It opens again when they do.
    blocked_by_schedule: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    location: Mapped[Location] = relationship()

    @property
    def remaining(self) -> int:
        return 0 if self.is_blocked else max(self.capacity - self.booked_count, 0)

"""The waitlist: patients waiting for an earlier time at a location, and the offers they get."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scheduler.extensions import Model
from scheduler.models.appointments import Appointment, Patient
from scheduler.models.locations import Location, Slot
from scheduler.models.types import UTCDateTime, utcnow


class WaitlistStatus(enum.StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"  # an offer is out and has not run out yet
    BOOKED = "booked"  # took an offer (booked, or moved to the earlier time)
    LEFT = "left"  # the patient left the list
    REMOVED = "removed"  # staff removed them


# Statuses of someone still on the list: one such entry per person and location.
ON_THE_LIST = frozenset({WaitlistStatus.WAITING, WaitlistStatus.OFFERED})


class OfferOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    TAKEN = "taken"  # someone else took the place first, or it went within the notice
    EXPIRED = "expired"
    DECLINED = "declined"  # the patient said no, left the list, or was removed


class PartOfDay(enum.StrEnum):
    MORNING = "morning"  # starts before noon, local time
    AFTERNOON = "afternoon"


class WaitlistEntry(Model):
    """One person waiting at one location for a time between two dates."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        # One person waits once per location (the database says so, whatever races).
        Index(
            "uq_waitlist_entries_person_on_list",
            "location_id",
            "person_key",
            unique=True,
            postgresql_where=text("status IN ('waiting', 'offered')"),
            sqlite_where=text("status IN ('waiting', 'offered')"),
        ),
        Index("ix_waitlist_entries_location_status", "location_id", "status", "joined_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(10), unique=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # Who the person is for "waits once": the patient's match key, or phone and last name.
    person_key: Mapped[str] = mapped_column(String(200))
    earliest: Mapped[date] = mapped_column(Date)
    latest: Mapped[date] = mapped_column(Date)
    # Local weekdays wanted, "0,2,4" (0 = Monday); "" for any day.
    weekdays: Mapped[str] = mapped_column(String(20), default="")
    # "", morning or afternoon (local start time before or from noon).
    part_of_day: Mapped[str] = mapped_column(String(10), default="")
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default=WaitlistStatus.WAITING)
    status_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The booking the patient holds already and would be moved from; after an accepted
    # offer, the booking the list gave them.
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    # How offers reach them: by text (needs SMS consent), by email (needs an address).
    by_text: Mapped[bool] = mapped_column(Boolean, default=False)
    by_email: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(2), default="en")
    source: Mapped[str] = mapped_column(String(20))
    # Part of every link to the entry; replacing it revokes the links already sent.
    manage_nonce: Mapped[str] = mapped_column(String(32))
    # The time the patient would have been seen without the list: their booking's start,
    # or the first open time from their earliest date when they joined (None: none open).
    compared_with: Mapped[datetime | None] = mapped_column(UTCDateTime())

    location: Mapped[Location] = relationship()
    patient: Mapped[Patient] = relationship()
    appointment: Mapped[Appointment | None] = relationship()
    offers: Mapped[list[WaitlistOffer]] = relationship(
        back_populates="entry", order_by="WaitlistOffer.id"
    )

    @property
    def weekday_numbers(self) -> list[int]:
        return [int(day) for day in self.weekdays.split(",") if day.isdigit()]

    @property
    def is_on_the_list(self) -> bool:
        return self.status in ON_THE_LIST


class WaitlistOffer(Model):
    """One place offered to one waiting patient, with a signed link and an expiry."""

    __tablename__ = "waitlist_offers"
    __table_args__ = (Index("ix_waitlist_offers_slot_outcome", "slot_id", "outcome"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("waitlist_entries.id"), index=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    # Part of the offer's link (signed); the link opens this offer only.
    nonce: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the offer goes out (the next moment inside sending hours) and runs out.
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # None while the offer is open.
    outcome: Mapped[str | None] = mapped_column(String(10))
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Staff who offered the place by hand (their email); None: offered by the list.
    offered_by: Mapped[str | None] = mapped_column(String(254))
    # The booking an accepted offer made.
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    # How many days sooner than ``compared_with`` the patient is seen (accepted offers).
    days_sooner: Mapped[float | None] = mapped_column(Float)

    entry: Mapped[WaitlistEntry] = relationship(back_populates="offers")
    slot: Mapped[Slot] = relationship()
    appointment: Mapped[Appointment | None] = relationship()

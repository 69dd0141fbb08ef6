from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scheduler.extensions import Model
from scheduler.models.locations import Slot
from scheduler.models.types import UTCDateTime, utcnow


class AppointmentStatus(enum.StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    RESCHEDULED = "rescheduled"
    ARRIVED = "arrived"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


# Statuses that hold a place in their slot (booked_count counts exactly these).
HOLDS_SLOT = frozenset(
    {
        AppointmentStatus.BOOKED,
        AppointmentStatus.CONFIRMED,
        AppointmentStatus.ARRIVED,
        AppointmentStatus.COMPLETED,
        AppointmentStatus.NO_SHOW,
    }
)
# Statuses a patient may still cancel or reschedule from.
CHANGEABLE = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED})


class Patient(Model):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(60))
    last_name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(254))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    # Phone, birth date and normalised last name: a booking with the same key is the same
    # person (scheduler.appointments.patients); None without a birth date.
    match_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    language: Mapped[str] = mapped_column(String(2), default="en")
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    sms_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How consent was given (online_form, api, staff) and the exact words shown.
    sms_consent_source: Mapped[str | None] = mapped_column(String(20))
    sms_consent_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    appointments: Mapped[list[Appointment]] = relationship(back_populates="patient", viewonly=True)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Appointment(Model):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(8), unique=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=AppointmentStatus.BOOKED)
    # Pre-screen answer: yes, no, not_sure, or None when not answered.
    conservative_treatment: Mapped[str | None] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(20))
    # Makes a double-submitted form or a retried API call book once.
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    # SHA-256 of the request the key came with; the same key with another request is refused.
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # Part of every manage link; replacing it revokes the links already sent.
    manage_nonce: Mapped[str] = mapped_column(String(32))
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    slot: Mapped[Slot] = relationship()
    patient: Mapped[Patient] = relationship(back_populates="appointments")
    rescheduled_from: Mapped[Appointment | None] = relationship(remote_side=[id])
    events: Mapped[list[AppointmentEvent]] = relationship(
        back_populates="appointment", order_by="AppointmentEvent.id"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def holds_slot(self) -> bool:
        return self.status in HOLDS_SLOT

    @property
    def is_changeable(self) -> bool:
        return self.status in CHANGEABLE


class AppointmentEvent(Model):
    """One step of an appointment's status history; rows are only ever added."""

    __tablename__ = "appointment_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    # Who made the change: patient, api, staff:<id>, system.
    actor: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(String(200), default="")

    appointment: Mapped[Appointment] = relationship(back_populates="events")

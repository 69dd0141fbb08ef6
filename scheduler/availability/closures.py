"""Who a closure affects, and where each of them stands: still in the closed time, moved
elsewhere, or cancelled.

A closure over booked slots keeps those bookings (their slots blocked) for staff to
move. The affected bookings are the appointments in the slots the closure covers:
those still holding their place, and those moved or cancelled since the closure was
added. Reading them takes a fixed number of statements for any number of closures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import contains_eager, joinedload

from scheduler.availability.operations import closure_covering, location_tz
from scheduler.availability.slots import local_day_bounds
from scheduler.extensions import db
from scheduler.models import (
    HOLDS_SLOT,
    Appointment,
    AppointmentStatus,
    Channel,
    OutboundMessage,
    ScheduleException,
    Slot,
)

if TYPE_CHECKING:  # the calendar a board has read; this module needs only its shape
    from scheduler.staff.calendar import LocationDays

# The kind under which an appointment's closure notice is stored in the outbox.
NOTICE_KIND = "closure_notice"


@dataclass
class AffectedBooking:
    appointment: Appointment
    moved_to: Appointment | None = None
    notice: OutboundMessage | None = None  # the text sent about the closure, if any
    email_notice: OutboundMessage | None = None  # the email, if any

    @property
    def state(self) -> str:
        """waiting (still in the closed time), moved, or cancelled."""
        status = self.appointment.status
        if status == AppointmentStatus.RESCHEDULED:
            return "moved"
        if status == AppointmentStatus.CANCELLED:
            return "cancelled"
        return "waiting"


@dataclass
class ClosureBookings:
    closure: ScheduleException
    bookings: list[AffectedBooking] = field(default_factory=list)

    @property
    def waiting(self) -> list[AffectedBooking]:
        return [b for b in self.bookings if b.state == "waiting"]

    @property
    def to_notify(self) -> list[AffectedBooking]:
        """Bookings still in the closed time that no closure notice went to yet."""
        return [b for b in self.waiting if b.notice is None and b.appointment.status in _NOTIFIABLE]

    @property
    def to_text(self) -> list[AffectedBooking]:
        """Of those, the ones who agreed to texts."""
        return [b for b in self.to_notify if b.appointment.patient.sms_consent]

    @property
    def to_email(self) -> list[AffectedBooking]:
        """Bookings still in the closed time, with an email address, not emailed yet."""
        return [
            b
            for b in self.waiting
            if b.email_notice is None
            and b.appointment.status in _NOTIFIABLE
            and (b.appointment.patient.email or "").strip()
        ]

    @property
    def to_reach(self) -> list[AffectedBooking]:
        """Those one click would send something to: by text, by email, or both."""
        ids = {b.appointment.id for b in [*self.to_text, *self.to_email]}
        return [b for b in self.waiting if b.appointment.id in ids]


_NOTIFIABLE = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED})


def affected_by(closure: ScheduleException, appt: Appointment) -> bool:
    """Whether the closure left this appointment (in a slot it covers) without its visit."""
    if appt.status in HOLDS_SLOT:
        return True
    return closure.created_at is None or appt.updated_at >= closure.created_at


def closure_bookings(
    closures: Sequence[ScheduleException], columns: Sequence[LocationDays]
) -> list[ClosureBookings]:
    """The bookings of each closure, from a calendar already read (slots with their
    appointments), plus two statements: where the moved ones went, and the notices."""
    cells = {(c.location.id, day): cells for c in columns for day, cells in c.days.items()}
    tz_of = {c.location.id: location_tz(c.location) for c in columns}
    out: list[ClosureBookings] = []
    for closure in closures:
        found = ClosureBookings(closure)
        for cell in cells.get((closure.location_id, closure.day), []):
            tz = tz_of[closure.location_id]
            if closure_covering([closure], cell.slot.starts_at, cell.slot.ends_at, tz) is None:
                continue
            found.bookings += [
                AffectedBooking(a) for a in cell.appointments if affected_by(closure, a)
            ]
        if found.bookings:
            out.append(found)
    _add_moves_and_notices([b for c in out for b in c.bookings])
    return out


def bookings_of_closure(closure: ScheduleException) -> ClosureBookings:
    """One closure's bookings, read on their own (for the notice action): three statements."""
    location = closure.location
    tz = location_tz(location)
    start, end = local_day_bounds(closure.day, tz)
    appointments = db.session.scalars(
        select(Appointment)
        .join(Appointment.slot)
        .options(
            contains_eager(Appointment.slot),
            joinedload(Appointment.patient),
        )
        .where(Slot.location_id == location.id, Slot.starts_at >= start, Slot.starts_at < end)
        .order_by(Slot.starts_at, Appointment.id)
    ).all()
    found = ClosureBookings(closure)
    for appt in appointments:
        slot = appt.slot
        covered = closure_covering([closure], slot.starts_at, slot.ends_at, tz) is not None
        if covered and affected_by(closure, appt):
            found.bookings.append(AffectedBooking(appt))
    _add_moves_and_notices(found.bookings)
    return found


def _add_moves_and_notices(bookings: list[AffectedBooking]) -> None:
    if not bookings:
        return
    ids = [b.appointment.id for b in bookings]
    moved = {
        a.rescheduled_from_id: a
        for a in db.session.scalars(
            select(Appointment)
            .options(joinedload(Appointment.slot).joinedload(Slot.location))
            .where(Appointment.rescheduled_from_id.in_(ids))
        )
    }
    notices = {
        (m.appointment_id, m.channel): m
        for m in db.session.scalars(
            select(OutboundMessage).where(
                OutboundMessage.appointment_id.in_(ids), OutboundMessage.kind == NOTICE_KIND
            )
        )
    }
    for booking in bookings:
        appointment_id = booking.appointment.id
        booking.moved_to = moved.get(appointment_id)
        booking.notice = notices.get((appointment_id, Channel.SMS))
        booking.email_notice = notices.get((appointment_id, Channel.EMAIL))


def closures_on(location_ids: Sequence[int], day: date) -> list[ScheduleException]:
    if not location_ids:
        return []
    return list(
        db.session.scalars(
            select(ScheduleException)
            .where(
                ScheduleException.location_id.in_(location_ids),
                ScheduleException.day == day,
                ScheduleException.kind == "closed",
            )
            .order_by(ScheduleException.location_id, ScheduleException.start_time)
        )
    )

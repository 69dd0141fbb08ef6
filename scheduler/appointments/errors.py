"""Why the appointment domain refused something: ``code`` is stable for the API and for
translations, the message is for people."""

from __future__ import annotations

STALE_MESSAGE = (
    "Someone else changed this appointment a moment ago. Nothing was saved; "
    "here it is as it is now."
)


class BookingError(Exception):
    code = "booking_error"


class SlotNotFound(BookingError):
    code = "slot_not_found"


class SlotFull(BookingError):
    code = "slot_full"


class SlotNotBookable(BookingError):
    """Too soon, too far ahead, in the past or blocked."""

    code = "slot_not_bookable"


class AppointmentNotChangeable(BookingError):
    code = "appointment_not_changeable"


class StaleAppointment(BookingError):
    """Someone else changed the appointment since the page was loaded."""

    code = "stale_appointment"


class BookingCapReached(BookingError):
    """A per-phone cap (see caps.py): too many upcoming bookings, or two places in one slot."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class IdempotencyKeyReused(BookingError):
    """The key was used before for a different booking request."""

    code = "idempotency_key_reused"


class MarkNotAllowed(BookingError):
    code = "mark_not_allowed"


class NoTextConsent(BookingError):
    code = "no_text_consent"

"""All models, re-exported so Alembic and callers import one place."""

from scheduler.models.appointments import (
    CHANGEABLE,
    HOLDS_SLOT,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    Patient,
)
from scheduler.models.content import ContentBlock
from scheduler.models.locations import Location, OpeningRule, ScheduleException, Slot
from scheduler.models.messages import (
    STATUS_RANK,
    Channel,
    EmailAddressState,
    InboundMessage,
    MessageAttempt,
    MessageKind,
    MessageSchedule,
    MessageStatus,
    OutboundMessage,
    PhoneNumberState,
    StatusReport,
)
from scheduler.models.staff import (
    AppointmentNote,
    AuditEntry,
    RecoveryCode,
    StaffRole,
    StaffUser,
    staff_user_locations,
)
from scheduler.models.types import UTCDateTime, utcnow
from scheduler.models.waitlist import (
    ON_THE_LIST,
    OfferOutcome,
    PartOfDay,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)

__all__ = [
    "CHANGEABLE",
    "HOLDS_SLOT",
    "ON_THE_LIST",
    "STATUS_RANK",
    "Appointment",
    "AppointmentEvent",
    "AppointmentNote",
    "AppointmentStatus",
    "AuditEntry",
    "Channel",
    "ContentBlock",
    "EmailAddressState",
    "InboundMessage",
    "Location",
    "MessageAttempt",
    "MessageKind",
    "MessageSchedule",
    "MessageStatus",
    "OfferOutcome",
    "OpeningRule",
    "OutboundMessage",
    "PartOfDay",
    "Patient",
    "PhoneNumberState",
    "ScheduleException",
    "Slot",
    "RecoveryCode",
    "StaffRole",
    "StaffUser",
    "staff_user_locations",
    "StatusReport",
    "UTCDateTime",
    "WaitlistEntry",
    "WaitlistOffer",
    "WaitlistStatus",
    "utcnow",
]

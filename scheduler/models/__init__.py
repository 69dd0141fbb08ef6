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

__all__ = [
    "CHANGEABLE",
    "HOLDS_SLOT",
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
    "OpeningRule",
    "OutboundMessage",
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
    "utcnow",
]

"""The "add to calendar" file (RFC 5545) for one appointment, in the page's language."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _
from icalendar import Alarm, Calendar, Event

from scheduler.display import phone_display, public_address
from scheduler.i18n import page_language
from scheduler.models import Appointment

# Calendar reminders: the day before, and two hours before (time to set off).
ALARMS = (timedelta(days=1), timedelta(hours=2))


def appointment_ics(
    appt: Appointment, clinic_name: str, uid_domain: str, now: datetime, manage_link: str
) -> bytes:
    location = appt.slot.location
    phone = phone_display(location.phone)
    summary = _(
        "Consultation at %(clinic)s (%(location)s)", clinic=clinic_name, location=location.name
    )
    cal = Calendar()
    cal.add("prodid", f"-//{clinic_name}//Appointment scheduling//{page_language().upper()}")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{appt.reference}@{uid_domain}")
    event.add("dtstamp", now)
    event.add("dtstart", appt.slot.starts_at)
    event.add("dtend", appt.slot.ends_at)
    event.add("summary", summary)
    event.add("location", f"{clinic_name}, {public_address(location)}")
    event.add(
        "description",
        "\n".join(
            [
                _("Reference %(reference)s.", reference=appt.reference),
                _("Please arrive 15 minutes early."),
                _("To change or cancel: %(link)s", link=manage_link),
                _("Or call %(phone)s.", phone=phone),
            ]
        ),
    )
    event.add("url", manage_link)
    event.add("status", "CANCELLED" if not appt.holds_slot else "CONFIRMED")
    event.add("sequence", appt.version)
    if appt.holds_slot:
        for before in ALARMS:
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", summary)
            alarm.add("trigger", -before)
            event.add_component(alarm)
    cal.add_component(event)
    return cal.to_ical()

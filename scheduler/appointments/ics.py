"""The "add to calendar" file (RFC 5545) for one appointment."""

from __future__ import annotations

from datetime import datetime

from icalendar import Calendar, Event

from scheduler.models import Appointment


def appointment_ics(appt: Appointment, clinic_name: str, uid_domain: str, now: datetime) -> bytes:
    location = appt.slot.location
    cal = Calendar()
    cal.add("prodid", f"-//{clinic_name}//Appointment scheduling//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{appt.reference}@{uid_domain}")
    event.add("dtstamp", now)
    event.add("dtstart", appt.slot.starts_at)
    event.add("dtend", appt.slot.ends_at)
    event.add("summary", f"Consultation at {clinic_name} ({location.name})")
    event.add("location", f"{clinic_name}, {location.address}")
    event.add(
        "description",
        f"Reference {appt.reference}. Please arrive 15 minutes early. "
        f"To reschedule call {location.phone} or use the link in your confirmation.",
    )
    event.add("status", "CANCELLED" if not appt.holds_slot else "CONFIRMED")
    event.add("sequence", appt.version)
    cal.add_component(event)
    return cal.to_ical()

"""Plain names for what developers call by keys: the texts staff edit, and the audit log
read as sentences ("Ana closed Kerrville on Thu Dec 3: doctor at conference")."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from scheduler.display import to_local
from scheduler.models import AuditEntry

TEXT_NAMES = {
    "preconsult_instructions": "Pre-visit instructions",
    "privacy_notice": "Privacy notice",
    "sms_confirmation": "Text: booking confirmed",
    "sms_rescheduled": "Text: visit moved",
    "sms_instructions": "Text: pre-visit instructions",
    "sms_reminder": "Text: reminder",
    "sms_cancellation": "Text: visit cancelled",
    "sms_closure_notice": "Text: the clinic closed at the visit's time",
    "sms_help_reply": "Answer to HELP",
    "sms_other_reply": "Answer to any other reply",
    "sms_confirmed_reply": "Answer to C (confirm)",
    "sms_reschedule_reply": "Answer to R (reschedule)",
    "sms_no_appointment_reply": "Answer when no visit is found",
    "sms_opt_out_reply": "Answer to STOP",
    "sms_opt_in_reply": "Answer to START",
    "sms_waitlist_offer": "Text: waitlist offer",
    "email_confirmation": "Email: booking confirmed (with the calendar file)",
    "email_rescheduled": "Email: visit moved (with the calendar file)",
    "email_instructions": "Email: pre-visit instructions",
    "email_reminder": "Email: reminder",
    "email_cancellation": "Email: visit cancelled",
    "email_closure_notice": "Email: the clinic closed at the visit's time",
    "email_waitlist_offer": "Email: waitlist offer",
}
TEXT_PURPOSES = {
    "preconsult_instructions": "What to bring and when to arrive, on the confirmation page "
    "and the patient's visit page.",
    "privacy_notice": "How the clinic uses the patient's details, linked from the booking form.",
    "sms_confirmation": "Sent as soon as a visit is booked.",
    "sms_rescheduled": "Sent when a visit moves to another time.",
    "sms_instructions": "Sent a few days before the visit, with the pre-visit instructions link.",
    "sms_reminder": "Sent the day before the visit.",
    "sms_cancellation": "Sent when a visit is cancelled.",
    "sms_closure_notice": "Sent when staff tell the patients of a closure to choose a new time.",
    "sms_help_reply": "When a patient texts HELP or INFO.",
    "sms_other_reply": "When a patient texts anything the service does not understand.",
    "sms_confirmed_reply": "When a patient texts C to confirm.",
    "sms_reschedule_reply": "When a patient texts R to reschedule.",
    "sms_no_appointment_reply": "When a reply comes from a number with no visit ahead.",
    "sms_opt_out_reply": "When a patient texts STOP (if the service answers opt-outs itself).",
    "sms_opt_in_reply": "When a patient texts START again.",
    "sms_waitlist_offer": "Sent to patients on a waitlist when a time in their dates opens, "
    "with the link to take it.",
    "email_confirmation": "Emailed as soon as a visit is booked, to a patient who gave an "
    "email address.",
    "email_rescheduled": "Emailed when a visit moves to another time.",
    "email_instructions": "Emailed when the pre-visit instructions text goes, with the "
    "location's instructions in full.",
    "email_reminder": "Emailed when the reminder text goes (the day before the visit).",
    "email_cancellation": "Emailed when a visit is cancelled.",
    "email_closure_notice": "Emailed when staff tell the patients of a closure to choose a new "
    "time, to those who gave an email address.",
    "email_waitlist_offer": "Emailed to patients on a waitlist who gave an email address when a "
    "time in their dates opens, with the link to take it.",
}
LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}
CHANNEL_NAMES = {"sms": "text", "email": "email"}
NOTICE_RESULTS = {
    "sent": "told",
    "already": "told before",
    "no_consent": "no consent",
    "opted_out": "opted out",
    "no_address": "no email address",
    "unsubscribed": "unsubscribed",
    "not_ahead": "visit already past",
}
# Results that reached the patient (the others: staff call them, unless another channel did).
NOTICE_REACHED = frozenset({"sent", "already", "not_ahead"})
WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DIFF_LINES = 6


def text_name(key: str) -> str:
    return TEXT_NAMES.get(key, key.replace("_", " ").capitalize())


def person(actor: str) -> str:
    """Who did it, as a colleague would say it: "Ana Reyes" for ana.reyes@clinic.org."""
    if "@" in actor:
        local = actor.split("@", 1)[0]
        words = [w for w in local.replace("_", ".").replace("-", ".").split(".") if w]
        return " ".join(w.capitalize() for w in words) or actor
    return {
        "system": "The system",
        "system (command line)": "Someone at the command line",
        "patient (online)": "The patient (online)",
        "patient (text reply)": "The patient (by text)",
    }.get(actor, actor.capitalize())


def day_words(value: object) -> str:
    """ "Thu Dec 3" for 2026-12-03."""
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{day:%a %b} {day.day}"


def clock_words(value: object) -> str:
    """ "1:30 PM" for 13:30 (or 13:30:00)."""
    try:
        moment = time.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{(moment.hour % 12) or 12}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"


def instant_words(value: object) -> str:
    """ "Thu Dec 3, 10:00 AM" (Central) for a UTC instant in ISO 8601."""
    try:
        instant = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    local = to_local(instant)
    return f"{day_words(local.date())}, {clock_words(local.time().isoformat())}"


def text_diff(before: object, after: object) -> list[str]:
    """The lines taken out (-) and put in (+), at most DIFF_LINES of them."""
    old = str(before or "").splitlines()
    new = str(after or "").splitlines()
    lines = [
        line
        for line in difflib.unified_diff(old, new, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    shown = [f"{line[0]} {_short(line[1:])}" for line in lines[:DIFF_LINES]]
    if len(lines) > DIFF_LINES:
        shown.append(f"… and {len(lines) - DIFF_LINES} more lines changed")
    return shown


def _short(text: str, limit: int = 140) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def value_words(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return _short(str(value)) if value not in (None, "") else "empty"


def field_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """ "phone: +12105550100 → +12105550199" for each field that changed."""
    before = before or {}
    return [
        f"{name.replace('_', ' ')}: {value_words(before.get(name))} → {value_words(value)}"
        for name, value in after.items()
        if before.get(name) != value
    ]


@dataclass(frozen=True)
class Context:
    """What the log's sentences need beyond the entry: where slots and texts are."""

    slot_places: Mapping[int, str] = field(default_factory=dict)
    text_places: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sentence:
    text: str
    changes: list[str] = field(default_factory=list)
    note: str = ""


def hours_words(details: Mapping[str, Any]) -> str:
    start, end = details.get("start_time"), details.get("end_time")
    if start and end:
        return f" from {clock_words(start)} to {clock_words(end)}"
    return ""


def rule_words(rule: Mapping[str, Any]) -> str:
    try:
        weekday = WEEKDAY_NAMES[int(rule.get("weekday", 0))]
    except (ValueError, IndexError):
        weekday = str(rule.get("weekday"))
    return (
        f"{weekday} {clock_words(rule.get('start_time'))}–{clock_words(rule.get('end_time'))}"
        f" ({rule.get('slot_minutes')}-minute slots, {rule.get('capacity')} per slot)"
    )


def kept_words(details: Mapping[str, Any]) -> list[str]:
    kept = details.get("kept_appointments") or []
    return [f"kept booked: {', '.join(kept)}"] if kept else []


Describe = Callable[[str, AuditEntry, Context], Sentence]


def _appointment(verb: str) -> Describe:
    return lambda who, e, _: Sentence(f"{who} {verb} {e.target_label}")


def _mark(word: str) -> Describe:
    return lambda who, e, _: Sentence(f"{who} marked {e.target_label} {word}")


def _moved(who: str, e: AuditEntry, _: Context) -> Sentence:
    new = e.details.get("new_reference")
    return Sentence(f"{who} moved {e.target_label}" + (f" to a new visit, {new}" if new else ""))


def _closure(who: str, e: AuditEntry, _: Context) -> Sentence:
    d = e.details
    reason = f": {d['reason']}" if d.get("reason") else ""
    text = f"{who} closed {e.target_label} on {day_words(d.get('day'))}{hours_words(d)}{reason}"
    return Sentence(text, kept_words(d))


def _closure_notified(who: str, e: AuditEntry, _: Context) -> Sentence:
    """The patients of a closure told to choose a new time: by text, by email, and whom
    no channel reached (staff call them)."""
    d = e.details
    reason = f" ({d['reason']})" if d.get("reason") else ""
    text = (
        f"{who} told the patients of {e.target_label}'s closure on {day_words(d.get('day'))}"
        f"{reason} to choose a new time"
    )
    outcomes = []
    reached: dict[str, bool] = {}
    for key, refs in sorted(d.items(), key=lambda item: _channel_order(item[0])):
        channel, _sep, result = key.partition("_")
        if channel not in CHANNEL_NAMES or not isinstance(refs, list) or not refs:
            continue
        said = NOTICE_RESULTS.get(result, result.replace("_", " "))
        outcomes.append(f"{said} ({CHANNEL_NAMES[channel]}): {', '.join(refs)}")
        for ref in refs:
            reached[ref] = reached.get(ref, False) or result in NOTICE_REACHED
    unreached = [ref for ref, was in reached.items() if not was]
    if unreached:
        outcomes.append(f"to call: {', '.join(unreached)}")
    return Sentence(text, outcomes)


def _channel_order(key: str) -> tuple[int, int, str]:
    """Texts first, then emails; in each, who was told first, then who was not and why."""
    channel, _sep, result = key.partition("_")
    channels, results = list(CHANNEL_NAMES), list(NOTICE_RESULTS)
    return (
        channels.index(channel) if channel in channels else len(channels),
        results.index(result) if result in results else len(results),
        key,
    )


def _extra(who: str, e: AuditEntry, _: Context) -> Sentence:
    d = e.details
    reason = f": {d['reason']}" if d.get("reason") else ""
    return Sentence(
        f"{who} added an extra session at {e.target_label} on {day_words(d.get('day'))}"
        f"{hours_words(d)}{reason}"
    )


def _exception_deleted(who: str, e: AuditEntry, _: Context) -> Sentence:
    d = e.details
    what = "extra session" if d.get("kind") == "extra" else "closure"
    return Sentence(
        f"{who} removed the {what} at {e.target_label} on {day_words(d.get('day'))}",
        kept_words(d),
    )


def _rule_saved(who: str, e: AuditEntry, _: Context) -> Sentence:
    d = e.details
    after = rule_words(d.get("after") or {})
    if d.get("before"):
        text = f"{who} changed {e.target_label}'s hours to {after}"
        return Sentence(text, [f"before: {rule_words(d['before'])}", *kept_words(d)])
    return Sentence(f"{who} added opening hours at {e.target_label}: {after}", kept_words(d))


def _rule_deleted(who: str, e: AuditEntry, _: Context) -> Sentence:
    rule = rule_words(e.details.get("before") or {})
    return Sentence(f"{who} removed {e.target_label}'s hours {rule}", kept_words(e.details))


def _location_edit(who: str, e: AuditEntry, _: Context) -> Sentence:
    d = e.details
    changes = field_changes(d.get("before"), d.get("after") or {})
    return Sentence(f"{who} changed the details of {e.target_label}", changes + kept_words(d))


def _slot(verb: str) -> Describe:
    def describe(who: str, e: AuditEntry, context: Context) -> Sentence:
        place = context.slot_places.get(e.target_id or 0, "")
        at = f" at {place}" if place else ""
        reason = e.details.get("reason")
        because = f": {reason}" if reason and verb == "blocked" else ""
        return Sentence(f"{who} {verb} the {instant_words(e.target_label)} slot{at}{because}")

    return describe


def _text_edit(who: str, e: AuditEntry, context: Context) -> Sentence:
    key, _, rest = e.target_label.partition("/")
    language, _, place = rest.partition("/")
    where = (
        "every location"
        if place in ("", "all")
        else context.text_places.get(e.target_id or 0, place.capitalize())
    )
    text = f"{who} changed “{text_name(key)}” ({LANGUAGE_NAMES.get(language, language)}, {where})"
    return Sentence(text, text_diff(e.details.get("before"), e.details.get("after")))


def _staff_edit(who: str, e: AuditEntry, _: Context) -> Sentence:
    changes = []
    for name, change in e.details.items():
        if name == "password":
            changes.append("new password set")
        elif isinstance(change, Mapping):
            label = "locations" if name == "locations" else name
            before = (
                value_words(change.get("from"))
                if name != "locations"
                else (", ".join(change.get("from") or []) or "all")
            )
            after = (
                value_words(change.get("to"))
                if name != "locations"
                else (", ".join(change.get("to") or []) or "all")
            )
            changes.append(f"{label}: {before} → {after}")
    return Sentence(f"{who} changed {e.target_label}'s account", changes)


def _own_or_other(own: str, other: str) -> Describe:
    """A sentence about an account, said one way when it is the actor's own."""

    def describe(who: str, e: AuditEntry, _: Context) -> Sentence:
        if e.actor == e.target_label:
            return Sentence(f"{who} {own}")
        return Sentence(f"{who} {other.format(email=e.target_label)}")

    return describe


def _export(who: str, e: AuditEntry, _: Context) -> Sentence:
    first, last = e.details.get("first"), e.details.get("last")
    days = day_words(first) if first == last else f"{day_words(first)} to {day_words(last)}"
    return Sentence(f"{who} exported the appointments of {e.target_label} for {days}")


def _patient_updated(who: str, e: AuditEntry, _: Context) -> Sentence:
    fields = e.details.get("fields")
    names = ", ".join(fields) if isinstance(fields, list | dict) else ""
    return Sentence(
        f"{who} updated the contact details of {e.target_label}" + (f" ({names})" if names else "")
    )


def _patient_merged(who: str, e: AuditEntry, _: Context) -> Sentence:
    d = e.details
    return Sentence(
        f"{who} merged patient #{d.get('merged_patient_id')} into {e.target_label}",
        [f"{d.get('appointments_moved', 0)} appointments moved"],
    )


def _text_reply(who: str, e: AuditEntry, _: Context) -> Sentence:
    d = e.details
    size = f"{d.get('characters', '?')} characters, {d.get('segments', '?')} segment(s)"
    return Sentence(f"{who} answered {e.target_label} by text", [size])


def _reply_marked(state: str) -> Describe:
    def describe(who: str, e: AuditEntry, _: Context) -> Sentence:
        label = e.target_label
        about = "a reply about no visit" if label.startswith("reply") else f"a reply about {label}"
        return Sentence(f"{who} marked {about} {state}")

    return describe


def _waitlist_join(who: str, e: AuditEntry, _: Context) -> Sentence:
    d = e.details
    dates = f" for {d.get('earliest')} to {d.get('latest')}" if d.get("earliest") else ""
    where = (
        f" at {str(d.get('location', '')).replace('-', ' ').title()}" if d.get("location") else ""
    )
    return Sentence(f"{who} put {e.target_label} on the waitlist{where}{dates}")


def _waitlist_offer(who: str, e: AuditEntry, _: Context) -> Sentence:
    slot = e.details.get("slot")
    time_words = f"the {instant_words(slot)} time" if slot else "a time"
    return Sentence(f"{who} offered {time_words} to {e.target_label} on the waitlist")


SENTENCES: dict[str, Describe] = {
    "appointment.booked": _appointment("booked"),
    "appointment.cancelled": _appointment("cancelled"),
    "appointment.moved": _moved,
    "appointment.confirmed": _appointment("confirmed"),
    "appointment.arrived": _mark("arrived"),
    "appointment.completed": _mark("completed"),
    "appointment.no_show": _mark("a no-show"),
    "appointment.place_freed": _appointment("freed the place of"),
    "appointment.note": _appointment("added a private note to"),
    "appointment.resend_instructions": _appointment("sent the pre-visit instructions again for"),
    "appointment.text_reply": _text_reply,
    "inbox.reply_handled": _reply_marked("handled"),
    "inbox.reply_unhandled": _reply_marked("unread"),
    "availability.closure_added": _closure,
    "closure.notified": _closure_notified,
    "availability.extra_session_added": _extra,
    "availability.exception_deleted": _exception_deleted,
    "availability.rule_saved": _rule_saved,
    "availability.rule_deleted": _rule_deleted,
    "location.edit": _location_edit,
    "slot.block": _slot("blocked"),
    "slot.unblock": _slot("opened again"),
    "text.edit": _text_edit,
    "staff.create": lambda who, e, _: Sentence(
        f"{who} created a {e.details.get('role', 'staff')} account for {e.target_label}"
    ),
    "staff.enable": lambda who, e, _: Sentence(f"{who} enabled {e.target_label}'s account"),
    "staff.disable": lambda who, e, _: Sentence(f"{who} disabled {e.target_label}'s account"),
    "staff.edit": _staff_edit,
    "staff.password": _own_or_other("changed their own password", "set a new password for {email}"),
    "staff.totp_on": _own_or_other("turned on two-step sign-in", "turned on two-step sign-in"),
    "staff.totp_off": _own_or_other("turned off two-step sign-in", "turned off two-step sign-in"),
    "staff.totp_reset": lambda who, e, _: Sentence(
        f"{who} turned off two-step sign-in for {e.target_label} (lost phone)"
    ),
    "staff.recovery_code_used": lambda who, e, _: Sentence(
        f"{person(e.target_label)} signed in with a recovery code"
    ),
    "export.csv": _export,
    "feed.new": lambda who, e, _: Sentence(
        f"{who} made a new calendar feed address for {e.target_label}"
    ),
    "feed.revoke": lambda who, e, _: Sentence(
        f"{who} turned off the calendar feed of {e.target_label}"
    ),
    "patient.updated": _patient_updated,
    "patient.merged": _patient_merged,
    "waitlist.join": _waitlist_join,
    "waitlist.leave": lambda who, e, _: Sentence(f"{who} took {e.target_label} off the waitlist"),
    "waitlist.remove": lambda who, e, _: Sentence(
        f"{who} removed {e.target_label} from the waitlist"
    ),
    "waitlist.offer": _waitlist_offer,
    "waitlist.accept": lambda who, e, _: Sentence(
        f"{who} took an offered time for {e.target_label}: {e.details.get('appointment', '')}"
    ),
}


def describe(entry: AuditEntry, context: Context | None = None) -> Sentence:
    """The entry as a sentence, with its short list of changes and the note typed, if any."""
    who = person(entry.actor)
    found = SENTENCES.get(entry.action)
    if found is not None:
        sentence = found(who, entry, context or Context())
    else:  # an action without words yet: still readable, never a raw dump
        what = entry.action.replace(".", " ").replace("_", " ")
        sentence = Sentence(f"{who}: {what}, {entry.target_label}".rstrip(", "))
    if entry.note:
        return Sentence(sentence.text, sentence.changes, entry.note)
    return sentence

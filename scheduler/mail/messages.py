"""Emails from admins' templates: subject, plain text and HTML, the .ics, the unsubscribe.

An email template is a content block like a text's: its first line is the
subject, then a blank line, then the body. The placeholders are the texts'
minimum necessary (first name, clinic, location and its address, date, time,
reference, links) and, in the instructions, the location's pre-consult
instructions; there is none for a last name, a birth date or a diagnosis.
Admins write plain text: the HTML part is made from it, every character
escaped, links made clickable, so no template can inject markup.

The footer that says why the email came and how to unsubscribe is not part
of the template (no edit can remove it); it is in gettext, in the patient's
language.
"""

from __future__ import annotations

import email.policy
import functools
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from itertools import groupby
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from flask import current_app
from flask_babel import gettext as _
from markupsafe import Markup, escape

from scheduler.appointments.ics import appointment_ics
from scheduler.appointments.links import manage_url
from scheduler.content import contents_for, lines_of
from scheduler.display import public_address
from scheduler.i18n import FORMAT_LOCALES
from scheduler.models import Appointment, Location, MessageKind
from scheduler.sms.texts import (
    APPOINTMENT_FIELDS,
    OFFER_FIELDS,
    TemplateError,
    clinic_values,
    instructions_url,
    placeholders_in,
    sample_values,
)
from scheduler.urls import public_url

EMAIL_FIELDS = APPOINTMENT_FIELDS | {"address"}
# A waitlist offer is about no booking: no reference, no manage link.
OFFER_EMAIL_FIELDS = OFFER_FIELDS | {"address"}
EMAIL_TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "email_confirmation": EMAIL_FIELDS,
    "email_rescheduled": EMAIL_FIELDS,
    "email_reminder": EMAIL_FIELDS,
    "email_cancellation": EMAIL_FIELDS,
    "email_instructions": EMAIL_FIELDS | {"instructions"},
    "email_closure_notice": EMAIL_FIELDS,
    "email_waitlist_offer": OFFER_EMAIL_FIELDS,
}
EMAIL_TEMPLATE_OF_KIND = {
    MessageKind.CONFIRMATION: "email_confirmation",
    MessageKind.RESCHEDULED: "email_rescheduled",
    MessageKind.INSTRUCTIONS: "email_instructions",
    MessageKind.REMINDER: "email_reminder",
    MessageKind.CANCELLATION: "email_cancellation",
    MessageKind.CLOSURE_NOTICE: "email_closure_notice",
    MessageKind.WAITLIST_OFFER: "email_waitlist_offer",
}
# The emails that carry the visit as a calendar file.
WITH_CALENDAR_FILE = frozenset({MessageKind.CONFIRMATION, MessageKind.RESCHEDULED})
SUBJECT_MAX = 200
EMAIL_MAX_CHARACTERS = 20_000
UNSUBSCRIBE_SALT = b"scheduler.email-unsubscribe"
# Lines up to SMTP's limit, so a long header (List-Unsubscribe's URL) is never folded into
# an encoded word; non-ASCII text always gets a 7-bit transfer encoding (any server takes it).
MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998, cte_type="7bit")
URL = re.compile(r"https?://[^\s<>\"']+")
TRAILING_PUNCTUATION = ".,;:!?)"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def split_template(template: str) -> tuple[str, str]:
    """The subject line and the body; TemplateError unless a blank line separates them."""
    lines = template.strip().replace("\r\n", "\n").split("\n")
    if len(lines) < 3 or not lines[0].strip() or lines[1].strip():
        raise TemplateError(
            "Write the subject on the first line, then a blank line, then the email's text."
        )
    return lines[0].strip(), "\n".join(lines[2:]).strip()


def check_email_template(key: str, template: str) -> None:
    """TemplateError unless the template has a subject and only its key's placeholders."""
    subject, body = split_template(template)
    allowed = EMAIL_TEMPLATE_FIELDS[key]
    unknown = sorted(set(placeholders_in(subject) + placeholders_in(body)) - allowed)
    if unknown:
        raise TemplateError(
            "Unknown placeholder "
            + ", ".join(f"{{{name}}}" for name in unknown)
            + ". Allowed: "
            + ", ".join(f"{{{name}}}" for name in sorted(allowed))
        )


def fill_email(key: str, template: str, values: Mapping[str, str]) -> RenderedEmail:
    check_email_template(key, template)
    subject, body = split_template(template)
    filled_subject = " ".join(subject.format_map(values).split())[:SUBJECT_MAX]
    text = body.format_map(values).strip()
    if len(text) > EMAIL_MAX_CHARACTERS:
        raise TemplateError(
            f"Too long: an email may have at most {EMAIL_MAX_CHARACTERS} characters."
        )
    return RenderedEmail(filled_subject, text, html_of(filled_subject, text))


def _linked(line: str) -> Markup:
    """One line of text as HTML: escaped, with its web addresses as links."""
    out = Markup("")
    position = 0
    for found in URL.finditer(line):
        url = found.group(0).rstrip(TRAILING_PUNCTUATION)
        end = found.start() + len(url)
        out += escape(line[position : found.start()])
        out += Markup('<a href="{0}">{0}</a>').format(url)
        position = end
    return out + escape(line[position:])


def _line_kind(line: str) -> str:
    return "list" if line.startswith("- ") else "heading" if line.startswith("## ") else "text"


def html_blocks(text: str) -> Markup:
    """Paragraphs (a blank line between), lists (lines starting "- "), "## " headings."""
    parts: list[Markup] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        for kind, group in groupby(lines, key=_line_kind):
            run = list(group)
            if kind == "list":
                items = Markup("").join(
                    Markup("<li>{}</li>").format(_linked(line[2:])) for line in run
                )
                parts.append(Markup("<ul>{}</ul>").format(items))
            elif kind == "heading":
                parts.extend(Markup("<h2>{}</h2>").format(_linked(line[3:])) for line in run)
            else:
                joined = Markup("<br>\n").join(_linked(line) for line in run)
                parts.append(Markup("<p>{}</p>").format(joined))
    return Markup("\n").join(parts)


def html_of(subject: str, text: str, footer: str = "") -> str:
    body = html_blocks(text)
    if footer:
        body += Markup('\n<hr>\n<div style="color:#555;font-size:90%">{}</div>').format(
            html_blocks(footer)
        )
    # A plain str, not Markup: wherever it is shown (a staff preview's srcdoc) it is escaped.
    return str(
        Markup(
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{}</title></head>\n'
            '<body style="font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;'
            'color:#1a1a1a;max-width:40em">\n{}\n</body></html>\n'
        ).format(subject, body)
    )


# -- values --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def email_date(day: datetime, language: str) -> str:
    return format_date(day.date(), "full", locale=FORMAT_LOCALES[language])


@functools.lru_cache(maxsize=1024)
def email_time(local: datetime, language: str) -> str:
    return format_time(local.time(), "short", locale=FORMAT_LOCALES[language])


def instructions_list(location: Location | None, language: str) -> str:
    lines = lines_of(
        contents_for(["preconsult_instructions"], location, language)["preconsult_instructions"]
    )
    return "\n".join(f"- {line}" for line in lines)


def email_values(appt: Appointment) -> dict[str, str]:
    """What an appointment's emails may say, in the patient's language."""
    location = appt.slot.location
    language = appt.patient.language
    local = appt.slot.starts_at.astimezone(ZoneInfo(location.timezone))
    return {
        **clinic_values(),
        "first_name": appt.patient.first_name,
        "location": location.name,
        "address": public_address(location),
        "date": email_date(local, language),
        "time": email_time(local, language),
        "reference": appt.reference,
        "manage_url": manage_url(appt),
        "instructions_url": instructions_url(location.slug, language),
        "instructions": instructions_list(location, language),
    }


def sample_email_values(location: Location | None, language: str) -> dict[str, str]:
    """A made-up visit, for previews while editing a template."""
    values = sample_values(location, language)
    return {
        **values,
        "address": public_address(location) if location else "Kerrville, TX",
        "instructions": instructions_list(location, language),
    }


# -- unsubscribe ---------------------------------------------------------------------------


def unsubscribe_signature(reference: str, address: str) -> str:
    """Binds an unsubscribe link to one appointment and one address, without showing it."""
    key = current_app.secret_key
    if key is None:
        raise RuntimeError("the app has no SECRET_KEY: unsubscribe links cannot be signed")
    secret = key.encode() if isinstance(key, str) else key
    mac = hmac.new(secret, UNSUBSCRIBE_SALT + b"\0", hashlib.sha256)
    mac.update(f"{reference}\0{address.lower()}".encode())
    return mac.hexdigest()[:32]


def unsubscribe_url(reference: str, address: str) -> str:
    return public_url(
        "mail.unsubscribe", reference=reference, token=unsubscribe_signature(reference, address)
    )


def footer(address: str, link: str, given_for: str = "appointment") -> str:
    """Why the email came (an address given for a booking, or for the waitlist) and how
    to get no more."""
    clinic = current_app.config["CLINIC_NAME"]
    why = (
        _(
            "You get this email because %(address)s was given to join a waitlist at %(clinic)s.",
            address=address,
            clinic=clinic,
        )
        if given_for == "waitlist"
        else _(
            "You get this email because %(address)s was given for an appointment at %(clinic)s.",
            address=address,
            clinic=clinic,
        )
    )
    return "\n".join([why, _("To get no more emails from us: %(link)s", link=link)])


# -- the message ---------------------------------------------------------------------------


def sender() -> tuple[str, str]:
    name, address = parseaddr(current_app.config["MAIL_FROM"])
    return name or current_app.config["CLINIC_NAME"], address


def new_message_id() -> str:
    domain = sender()[1].rpartition("@")[2] or "localhost"
    return f"<EM{uuid.uuid4().hex}@{domain}>"


def build_email(
    rendered: RenderedEmail,
    to: str,
    now: datetime,
    *,
    reference: str,
    language: str,
    calendar_of: Appointment | None = None,
    given_for: str = "appointment",
) -> EmailMessage:
    """The whole email: headers (List-Unsubscribe, one click), text, HTML, and the visit's
    .ics when ``calendar_of`` is given.

    ``reference`` (an appointment's, or a waitlist request's) is in the unsubscribe link.
    Called under the patient's locale (the footer and the calendar file are gettext).
    """
    config = current_app.config
    link = unsubscribe_url(reference, to)
    notice = footer(to, link, given_for)
    name, address = sender()
    message = EmailMessage(policy=MAIL_POLICY)
    message["Subject"] = rendered.subject
    message["From"] = Address(name, addr_spec=address)
    message["To"] = to
    message["Date"] = format_datetime(now)  # replaced when it is sent
    message["Message-ID"] = new_message_id()
    message["List-Unsubscribe"] = f"<{link}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(f"{rendered.text}\n\n-- \n{notice}\n")
    message.add_alternative(html_of(rendered.subject, rendered.text, notice), subtype="html")
    if calendar_of is not None:
        domain = urlsplit(config["PUBLIC_BASE_URL"]).hostname or "localhost"
        calendar = appointment_ics(
            calendar_of, config["CLINIC_NAME"], domain, now, manage_url(calendar_of)
        )
        message.add_attachment(
            calendar,
            maintype="text",
            subtype="calendar",
            filename=f"{calendar_of.reference}.ics",
            params={"method": "PUBLISH"},
        )
    # After the content: set_content clears every Content-* header.
    message["Content-Language"] = language
    return message


def rendered_in_language(
    key: str, template: str, values: Mapping[str, str], language: str, fallback: str
) -> RenderedEmail:
    """The email from staff's template; from the shipped default if that cannot be filled."""
    try:
        return fill_email(key, template, values)
    except TemplateError:
        current_app.logger.error(
            "email template %s (%s) cannot be filled; using the default", key, language
        )
        return fill_email(key, fallback, values)

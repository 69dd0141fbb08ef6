"""Settings and their defaults.

Every setting here can be set in ``instance/config.py`` and overridden by an
environment variable of the same name. Values whose default is a bool or a
number are parsed from the environment as JSON (``false``, ``5``, ``0.5``), the
way Flask's ``from_prefixed_env`` does; strings are taken as they are.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    # Where the data lives. None means SQLite in the instance folder.
    "DATABASE_URL": None,
    # Signs sessions, CSRF tokens and manage links. None means: generate once
    # into instance/secret_key (owner-only permissions) and reuse it.
    "SECRET_KEY": None,
    # Links sent to patients are built from this, never from the Host header.
    "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
    "CLINIC_NAME": "Freedom Spine & Pain Center",
    "CLINIC_PHONE": "+12109208945",
    "DISPLAY_TIMEZONE": "America/Chicago",
    # Where patients' mobile numbers may be (phonenumbers regions, comma-separated: "US,PR").
    # Every other number, the other +1 countries included, is refused and never texted.
    "PHONE_REGIONS": "US",
    # Active future appointments one phone number may hold (online and API bookings).
    "MAX_ACTIVE_BOOKINGS_PER_PHONE": 2,
    # Texts one number may get in any 24 hours; more are suppressed (reason number_daily_cap).
    "SMS_MAX_PER_NUMBER_PER_DAY": 8,
    # No slot sooner than this is offered or booked.
    "MIN_NOTICE_MINUTES": 120,
    # No slot later than this many days ahead is offered or booked.
    "BOOKING_HORIZON_DAYS": 90,
    # Slot rows are kept materialised this many days past the horizon.
    "SLOT_ROLL_MARGIN_DAYS": 7,
    # How many days of slots the public booking page shows at a time.
    "BOOKING_PAGE_DAYS": 7,
    # Manage links stop working after this many days (a new one is issued on reschedule).
    "MANAGE_LINK_MAX_AGE_DAYS": 120,
    # Request bodies larger than this are refused with 413.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "WTF_CSRF_TIME_LIMIT": 4 * 3600,
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_BOOKING": "5 per minute;30 per hour",
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_HEADERS_ENABLED": True,
    # Number of trusted proxies in front of the app (X-Forwarded-For / -Proto).
    "PROXY_FIX_X_FOR": 0,
    "PROXY_FIX_X_PROTO": 0,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # Pool size per process for server databases (PostgreSQL).
    "DATABASE_POOL_SIZE": 10,
    "DATABASE_MAX_OVERFLOW": 20,
    # Test each pooled connection before use (one more round trip per request). Not needed to
    # survive a restart: dead pooled connections are noticed without a round trip.
    "DATABASE_POOL_PRE_PING": False,
    # SQLite: how long a write waits for another writer's lock before the request answers 503.
    "DATABASE_LOCK_TIMEOUT_SECONDS": 30.0,
    # PostgreSQL: how long to wait for a connection before the request answers 503.
    "DATABASE_CONNECT_TIMEOUT_SECONDS": 5,
    # What staff edit and every request reads (texts, message schedules, open locations) is
    # read again at most this often per process; the process that saves a change uses it
    # at once, the others within this many seconds (scheduler/staff_edits.py).
    "STAFF_EDITS_CACHE_SECONDS": 1.0,
    # Daily slot roll-forward and purge in the `flask scheduler` process (Central time).
    "SCHEDULER_DAILY_HOUR": 2,
    # Staff sessions end after this long without a request.
    "STAFF_IDLE_MINUTES": 30,
    "RATELIMIT_LOGIN": "10 per minute;50 per hour",
    # Admins must set up a second factor (an authenticator app) before using the workspace.
    "TOTP_REQUIRED_FOR_ADMINS": False,
    # What authenticator apps show as the account's issuer.
    "TOTP_ISSUER": "Freedom Spine front desk",
    # Text messages. console prints them (no credentials); twilio sends them.
    "SMS_BACKEND": "console",
    "TWILIO_ACCOUNT_SID": None,
    "TWILIO_AUTH_TOKEN": None,
    # One of these two is the sender.
    "TWILIO_FROM_NUMBER": None,
    "TWILIO_MESSAGING_SERVICE_SID": None,
    # A Twilio-compatible server instead of https://api.twilio.com (staging, tests).
    "TWILIO_API_BASE_URL": None,
    # Local time of the patient's location; a text due outside waits for the start.
    "SMS_SENDING_HOURS": "08:00-21:00",
    # The dispatcher looks for due texts this often (and at once when one is queued).
    "SMS_DISPATCH_INTERVAL_SECONDS": 15,
    # Texts in flight at once per dispatcher (also its HTTP connection pool size).
    "SMS_SEND_CONCURRENCY": 32,
    # A claimed text not finished by then is taken back by any dispatcher (and checked
    # with the provider before it is sent again). Live dispatchers renew the leases of the
    # texts they hold every SMS_HEARTBEAT_SECONDS, which also looks for leases others let
    # run out: a killed dispatcher's texts are taken back within the lease (15-20 s).
    "SMS_CLAIM_LEASE_SECONDS": 20,
    "SMS_HEARTBEAT_SECONDS": 5.0,
    # On SIGTERM, how long a dispatcher holding outcomes it could not write (database
    # away) waits for the database before it exits and logs them.
    "SMS_SHUTDOWN_WAIT_SECONDS": 30.0,
    "SMS_CONNECT_TIMEOUT_SECONDS": 5.0,
    "SMS_READ_TIMEOUT_SECONDS": 15.0,
    # Attempts per text before it is marked failed, and the backoff between them.
    "SMS_MAX_ATTEMPTS": 6,
    "SMS_RETRY_BASE_SECONDS": 30.0,
    "SMS_RETRY_MAX_SECONDS": 1800.0,
    # A text due at booking time behind the confirmation (late instructions) waits this long,
    # so it never arrives before the confirmation.
    "SMS_FOLLOW_UP_DELAY_SECONDS": 60,
    # Ask Twilio for delivery callbacks at PUBLIC_BASE_URL/sms/status.
    "SMS_STATUS_CALLBACKS": True,
    # Twilio's default opt-out handling answers STOP and START itself; set True
    # if Advanced Opt-Out is turned off, so the service answers them.
    "SMS_ANSWER_OPT_OUT_WORDS": False,
    # Waitlist: offers sent at a time per free place, and how long each offer holds.
    "WAITLIST_BATCH": 3,
    "WAITLIST_OFFER_MINUTES": 30,
    # Requests on the lists one mobile number may have at once (any names, any locations).
    "WAITLIST_MAX_PER_PHONE": 3,
    # The waitlist's offer job runs this often in the scheduler process.
    "WAITLIST_INTERVAL_SECONDS": 60,
    # Texts, attempts and replies older than this are deleted by the daily job.
    "SMS_RETENTION_DAYS": 365,
    # Email, through the same outbox and dispatcher as texts (claims, leases, retries with
    # the SMS_* backoff and attempt limit). console prints each email; smtp sends it.
    "MAIL_BACKEND": "console",
    "SMTP_HOST": "localhost",
    "SMTP_PORT": 587,
    "SMTP_USERNAME": None,
    "SMTP_PASSWORD": None,
    # none (plain, for a local relay), starttls (usually port 587) or ssl (usually 465).
    "SMTP_SECURITY": "starttls",
    # How long to wait for the SMTP server (connecting and each answer).
    "SMTP_TIMEOUT_SECONDS": 15.0,
    # The sender; its domain also names the emails (Message-ID). Must be an address
    # the SMTP server may send from.
    "MAIL_FROM": "Freedom Spine & Pain Center <appointments@localhost>",
    # Emails one address may get in any 24 hours; more are suppressed (address_daily_cap):
    # anyone can type anyone's address into a booking.
    "MAIL_MAX_PER_ADDRESS_PER_DAY": 8,
}


def parse_env_value(raw: str, default: Any) -> Any:
    """Parse an environment string into the type of the setting's default."""
    if isinstance(default, bool | int | float) and not isinstance(default, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        key: parse_env_value(environ[key], default)
        for key, default in DEFAULTS.items()
        if key in environ
    }


def sqlite_url_in(instance_path: str) -> str:
    return "sqlite:///" + str(Path(instance_path) / "scheduler.sqlite3")


def instance_secret_key(instance_path: str) -> str:
    """Read the generated secret key, creating it (mode 0600) on first use.

    O_EXCL makes several workers starting at once agree on one key.
    """
    path = Path(instance_path) / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty; delete it to generate a new key") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key

"""Staff passwords and the TOTP second factor: the rules, in one place for the pages and
the command line. The caller's unit of work commits."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.security import check_password_hash

from scheduler.audit import audit
from scheduler.database import rows_changed
from scheduler.extensions import db
from scheduler.models import RecoveryCode, StaffUser, utcnow
from scheduler.staff.access import check_password_problem, hash_password

RECOVERY_CODE_COUNT = 10
# Codes of the step before and after the current one are accepted (clocks drift).
TOTP_DRIFT_STEPS = 1
# Recovery codes avoid letters that read alike (0/O, 1/I/L).
RECOVERY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


class AccountError(Exception):
    """Something the person must change; the message says what, ``field`` which answer."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def set_password(user: StaffUser, password: str, actor_label: str | None = None) -> None:
    """A new password (checked against the rules); every session of the account ends.

    ``actor_label`` names who did it when nobody is signed in (the command line).
    """
    problem = check_password_problem(password)
    if problem:
        raise AccountError(problem, "new_password")
    user.password_hash = hash_password(password)
    user.sign_out_everywhere()
    audit("staff.password", "staff_user", user.id, user.email, actor_label=actor_label)


def change_own_password(user: StaffUser, current: str, new: str) -> None:
    """The signed-in person's own change: the current password first."""
    if not check_password_hash(user.password_hash, current):
        raise AccountError("That is not your current password.", "current_password")
    if hmac.compare_digest(current, new):
        raise AccountError("Choose a password other than the current one.", "new_password")
    set_password(user, new)


# --- TOTP -------------------------------------------------------------------------------


def totp_for(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)


def start_totp_setup(user: StaffUser) -> str:
    """A new secret, kept on the account but not in use until a code confirms it."""
    if user.has_totp:
        raise AccountError("Two-step sign-in is already on.")
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled_at = None
    user.totp_last_step = None
    return user.totp_secret


def provisioning_uri(user: StaffUser) -> str:
    assert user.totp_secret is not None
    return totp_for(user.totp_secret).provisioning_uri(
        name=user.email, issuer_name=current_app.config["TOTP_ISSUER"]
    )


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as inline SVG (no file, no external service)."""
    return str(
        segno.make(uri, error="m").svg_inline(
            scale=5,
            dark="#111",
            light="#fff",
            border=2,
            title="QR code: scan it with the authenticator app",
        )
    )


def grouped_secret(secret: str) -> str:
    """The secret as people type it: groups of four."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code this is, within the drift allowed, or None."""
    digits = "".join(code.split())
    if len(digits) != 6 or not digits.isdigit():
        return None
    totp = totp_for(secret)
    current = totp.timecode(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def accept_totp_code(user: StaffUser, code: str, now: datetime | None = None) -> bool:
    """True once per code: the step is recorded in the same UPDATE that checks it is newer
    than the last one accepted, so a code replayed (or raced) within its window fails."""
    if user.totp_secret is None:
        return False
    step = _matching_step(user.totp_secret, code, now or utcnow())
    if step is None:
        return False
    taken = rows_changed(
        update(StaffUser)
        .where(
            StaffUser.id == user.id,
            or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    if taken:
        set_committed_value(user, "totp_last_step", step)
    return taken == 1


def _code_hash(code: str) -> str:
    normal = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(normal.encode()).hexdigest()


def new_recovery_codes(user: StaffUser) -> list[str]:
    """Ten new one-time codes (the old ones stop working); only their hashes are kept."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.staff_user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(staff_user_id=user.id, code_hash=_code_hash(raw)))
    return codes


def use_recovery_code(user: StaffUser, code: str, now: datetime | None = None) -> bool:
    """True if ``code`` is one of the account's unused recovery codes; it is used up."""
    if len("".join(ch for ch in code if ch.isalnum())) != 10:
        return False
    used = rows_changed(
        update(RecoveryCode)
        .where(
            RecoveryCode.staff_user_id == user.id,
            RecoveryCode.code_hash == _code_hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now or utcnow())
    )
    if used:
        audit(
            "staff.recovery_code_used",
            "staff_user",
            user.id,
            user.email,
            actor_id=user.id,
            actor_label=user.email,
        )
    return used == 1


def recovery_codes_left(user: StaffUser) -> int:
    return (
        db.session.scalar(
            select(func.count(RecoveryCode.id)).where(
                RecoveryCode.staff_user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        )
        or 0
    )


@dataclass(frozen=True)
class TotpTurnedOn:
    recovery_codes: list[str]


def confirm_totp(user: StaffUser, code: str, now: datetime | None = None) -> TotpTurnedOn:
    """Turn the second factor on once a code from the app proves the secret was copied."""
    if user.has_totp:
        raise AccountError("Two-step sign-in is already on.")
    if user.totp_secret is None:
        raise AccountError("Start again: the setup was not found.")
    if not accept_totp_code(user, code, now):
        raise AccountError("That code does not match. Check the app's clock and try the new code.")
    user.totp_enabled_at = now or utcnow()
    codes = new_recovery_codes(user)
    user.sign_out_everywhere()  # other sessions signed in with the password alone end
    audit("staff.totp_on", "staff_user", user.id, user.email)
    return TotpTurnedOn(codes)


def turn_off_totp(user: StaffUser, password: str, code: str, now: datetime | None = None) -> None:
    """The person's own switch-off: password and a current code (or a recovery code)."""
    if not user.has_totp:
        raise AccountError("Two-step sign-in is not on.")
    if not check_password_hash(user.password_hash, password):
        raise AccountError("That password and code do not match.")
    if not (accept_totp_code(user, code, now) or use_recovery_code(user, code, now)):
        raise AccountError("That password and code do not match.")
    clear_totp(user)
    audit("staff.totp_off", "staff_user", user.id, user.email)


def clear_totp(user: StaffUser) -> None:
    """No second factor any more (the person's switch-off, or an admin's reset)."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.staff_user_id == user.id))

"""Who may use the workspace: sign-in, idle expiry, roles.

Every staff route needs a signed-in, enabled account (checked once, before
every request of the blueprint, so no route can forget it); admin-only
routes add ``admin_required``.
"""

from __future__ import annotations

import functools
import posixpath
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar
from urllib.parse import quote, unquote, urlsplit

from flask import Flask, abort, current_app, flash, redirect, request, session, url_for
from flask_login import current_user
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from scheduler.extensions import db, login_manager
from scheduler.models import StaffUser
from scheduler.staff.blueprint import bp

PUBLIC_ENDPOINTS = frozenset({"staff.login", "staff.login_code", "staff.calendar_feed"})
# What an admin who must set up two-step sign-in can still reach before doing so.
SETUP_ENDPOINTS = frozenset({"staff.totp_setup", "staff.totp_recovery_codes", "staff.logout"})
MIN_PASSWORD_LENGTH = 12
# Checked when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16), method="scrypt")

P = ParamSpec("P")
R = TypeVar("R")


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    """The session holds id and session nonce; a changed nonce signs that session out."""
    raw_id, _, nonce = user_id.partition(":")
    if not raw_id.isdigit() or len(raw_id) > 12:
        return None
    user = db.session.get(StaffUser, int(raw_id))
    if user is None or not user.is_enabled or not secrets.compare_digest(user.session_nonce, nonce):
        return None
    return user


@bp.before_request
def require_login() -> Response | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    session.permanent = True  # idle expiry: PERMANENT_SESSION_LIFETIME, renewed per request
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if (
        current_app.config["TOTP_REQUIRED_FOR_ADMINS"]
        and current_user.is_admin
        and not current_user.has_totp
        and request.endpoint not in SETUP_ENDPOINTS
    ):
        flash("Administrators must set up two-step sign-in before going on.", "info")
        return redirect(url_for("staff.totp_setup"))
    return None


def admin_required(view: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not current_user.is_admin:
            abort(403, description="Only an administrator can do this.")
        return view(*args, **kwargs)

    return wrapper


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def new_staff_user(email: str, role: str, password: str) -> StaffUser:
    """An enabled account, added to the session (the caller commits); email in lower case."""
    user = StaffUser(email=email.strip().lower(), role=role, password_hash=hash_password(password))
    user.sign_out_everywhere()
    db.session.add(user)
    return user


def check_password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > 200:
        return "Use at most 200 characters."
    return None


def authenticate(email: str, password: str) -> StaffUser | None:
    """The enabled account these credentials open, or None; same work either way."""
    user = db.session.scalar(db.select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.is_enabled:
        return None
    return user


def safe_next(target: str | None, default: str) -> str:
    """Follow ``?next=`` and ``return_to`` only to a path inside the staff workspace on this site.

    The path is normalised first (percent-decoding, "." and ".." segments,
    repeated slashes), so "/staff/../x" and "/staff/%2e%2e/x" lead nowhere but ``default``.
    """
    if not target or "\\" in target or any(ord(ch) < 32 for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    path = unquote(parts.path)
    if "\\" in path or any(ord(ch) < 32 for ch in path):
        return default
    normal = posixpath.normpath(path) + ("/" if path.endswith("/") else "")
    if normal.startswith("//") or not normal.startswith("/staff/"):
        return default
    return quote(normal) + (f"?{parts.query}" if parts.query else "")


def configure_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "staff.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=app.config["STAFF_IDLE_MINUTES"])
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)

"""Signing in (password, then the authenticator's code when the account has one) and out."""

from __future__ import annotations

import secrets
import time

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from scheduler.database import unit_of_work
from scheduler.extensions import db, limiter
from scheduler.models import StaffUser, utcnow
from scheduler.staff.access import authenticate, safe_next
from scheduler.staff.accounts import accept_totp_code, use_recovery_code
from scheduler.staff.blueprint import bp
from scheduler.staff.forms import CodeForm, LoginForm

# Between the password and the code: who, with which session nonce, since when, going where.
PENDING = "pending_second_factor"
PENDING_SECONDS = 300
CODE_FAILED = "That code does not match. Use the newest code in the app, or a recovery code."

# One message whether the email is unknown, the password wrong or the account disabled.
LOGIN_FAILED = "That email and password do not match an active account."


def fresh_session() -> None:
    """A new session at sign-in and sign-out (no fixation); its CSRF token is new too."""
    session.clear()
    g.pop("csrf_token", None)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"])
def login() -> Response | tuple[str, int]:
    default = url_for("staff.index")
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next"), default))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data or "", form.password.data or "")
        if user is not None and user.has_totp:
            fresh_session()  # not signed in yet: the code comes first
            session[PENDING] = {
                "id": user.id,
                "nonce": user.session_nonce,
                "since": time.time(),
                "next": safe_next(request.args.get("next"), default),
            }
            return redirect(url_for("staff.login_code"))
        if user is not None:
            return finish_sign_in(user, safe_next(request.args.get("next"), default))
        form.password.errors = [*form.password.errors, LOGIN_FAILED]
    return render_template("staff/login.html", form=form), 200 if not form.errors else 401


def finish_sign_in(user: StaffUser, target: str) -> Response:
    fresh_session()
    session.permanent = True
    login_user(user)
    with unit_of_work():
        user.last_login_at = utcnow()
    return redirect(target)


def pending_user() -> tuple[StaffUser, str] | None:
    """The account whose password was given in this session a moment ago, and where to go."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or time.time() - pending.get("since", 0) > PENDING_SECONDS:
        return None
    user = db.session.get(StaffUser, pending.get("id", 0))
    if (
        user is None
        or not user.is_enabled
        or not user.has_totp
        or not secrets.compare_digest(user.session_nonce, str(pending.get("nonce", "")))
    ):
        return None
    return user, str(pending.get("next", url_for("staff.index")))


def pending_account_key() -> str:
    """Codes tried for one account count together, from whatever address they come."""
    pending = session.get(PENDING)
    account = pending.get("id") if isinstance(pending, dict) else None
    return f"second-factor:{account}"


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"], key_func=pending_account_key
)
def login_code() -> Response | tuple[str, int]:
    """The second step: a code from the authenticator app, or one recovery code."""
    if current_user.is_authenticated:
        return redirect(url_for("staff.index"))
    pending = pending_user()
    if pending is None:
        session.pop(PENDING, None)
        flash("Sign in with your email and password first.", "info")
        return redirect(url_for("staff.login"))
    user, target = pending
    form = CodeForm()
    if form.validate_on_submit():
        code = form.code.data or ""
        with unit_of_work():
            passed = accept_totp_code(user, code) or use_recovery_code(user, code)
        if passed:
            return finish_sign_in(user, target)
        form.code.errors = [*form.code.errors, CODE_FAILED]
    status = 401 if form.errors else 200
    return render_template("staff/login_code.html", form=form), status


@bp.post("/logout")
def logout() -> Response:
    """Ends the session on the server too: a new session nonce makes every cookie issued
    before (a copied one included) worthless, on every device this account used."""
    if current_user.is_authenticated:
        with unit_of_work():
            current_user.sign_out_everywhere()
    logout_user()
    fresh_session()
    flash("You are signed out.", "info")
    return redirect(url_for("staff.login"))

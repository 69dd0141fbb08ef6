"""Signing in and out."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from scheduler.database import unit_of_work
from scheduler.extensions import limiter
from scheduler.models import utcnow
from scheduler.staff.access import authenticate, safe_next
from scheduler.staff.blueprint import bp
from scheduler.staff.forms import LoginForm

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
        if user is not None:
            fresh_session()
            session.permanent = True
            login_user(user)
            with unit_of_work():
                user.last_login_at = utcnow()
            return redirect(safe_next(request.args.get("next"), default))
        form.password.errors = [*form.password.errors, LOGIN_FAILED]
    return render_template("staff/login.html", form=form), 200 if not form.errors else 401


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

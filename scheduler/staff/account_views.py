"""The signed-in person's own account: password, and the TOTP second factor."""

from __future__ import annotations

from flask import flash, redirect, render_template, session, url_for
from flask_login import current_user, login_user
from werkzeug.wrappers import Response

from scheduler.database import unit_of_work
from scheduler.models import StaffUser, utcnow
from scheduler.staff.accounts import (
    AccountError,
    change_own_password,
    confirm_totp,
    grouped_secret,
    provisioning_uri,
    qr_svg,
    recovery_codes_left,
    start_totp_setup,
    turn_off_totp,
)
from scheduler.staff.blueprint import bp
from scheduler.staff.forms import CodeForm, PasswordChangeForm, TotpOffForm

# The recovery codes are shown once, on the page right after the confirmation.
SHOWN_CODES = "totp_recovery_codes"


def stay_signed_in(user: StaffUser) -> None:
    """After a change that signs every session out, keep this one (with the new nonce)."""
    login_user(user)


def account_page(**forms: object) -> str:
    user = current_user
    return render_template(
        "staff/account.html",
        password_form=forms.get("password_form") or PasswordChangeForm(formdata=None),
        off_form=forms.get("off_form") or TotpOffForm(formdata=None),
        codes_left=recovery_codes_left(user) if user.has_totp else 0,
        locations=None if user.is_admin else list(user.locations),
    )


@bp.get("/account")
def account() -> str:
    return account_page()


@bp.post("/account/password")
def change_password() -> str | Response | tuple[str, int]:
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            with unit_of_work():
                change_own_password(
                    user, form.current_password.data or "", form.new_password.data or ""
                )
        except AccountError as error:
            field = form[error.field] if error.field in form else form.new_password
            field.errors = [*field.errors, str(error)]
        else:
            stay_signed_in(user)
            flash("Your password is changed. Other devices signed in are signed out.", "success")
            return redirect(url_for("staff.account"))
    return account_page(password_form=form), 422


@bp.route("/account/two-step", methods=["GET", "POST"])
def totp_setup() -> str | Response | tuple[str, int]:
    """Set up the authenticator app: a QR code and the secret, then a code to confirm."""
    user = current_user._get_current_object()
    if user.has_totp:
        return redirect(url_for("staff.account"))
    form = CodeForm()
    if form.validate_on_submit() and user.totp_secret:
        try:
            with unit_of_work():
                turned_on = confirm_totp(user, form.code.data or "")
        except AccountError as error:
            form.code.errors = [*form.code.errors, str(error)]
        else:
            stay_signed_in(user)
            session[SHOWN_CODES] = turned_on.recovery_codes
            return redirect(url_for("staff.totp_recovery_codes"))
    elif not form.is_submitted() or not user.totp_secret:
        with unit_of_work():
            start_totp_setup(user)  # a new secret each time the page is opened
    uri = provisioning_uri(user)
    return render_template(
        "staff/totp_setup.html",
        form=form,
        qr=qr_svg(uri),
        secret=grouped_secret(user.totp_secret or ""),
    ), (422 if form.errors else 200)


@bp.get("/account/two-step/recovery-codes")
def totp_recovery_codes() -> str | Response:
    """The recovery codes, once: they are not kept anywhere they could be shown again."""
    codes = session.pop(SHOWN_CODES, None)
    if not codes:
        flash("Recovery codes are shown only once, right after turning two-step sign-in on.")
        return redirect(url_for("staff.account"))
    return render_template("staff/totp_codes.html", codes=codes)


@bp.post("/account/two-step/off")
def totp_off() -> str | Response | tuple[str, int]:
    form = TotpOffForm()
    user = current_user._get_current_object()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                turn_off_totp(user, form.password.data or "", form.code.data or "", utcnow())
        except AccountError as error:
            form.code.errors = [*form.code.errors, str(error)]
        else:
            flash("Two-step sign-in is off.", "success")
            return redirect(url_for("staff.account"))
    return account_page(off_form=form), 422

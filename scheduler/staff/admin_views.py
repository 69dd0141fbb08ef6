"""Admin only: staff accounts, message templates, the audit log, calendar feed secrets."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from scheduler.audit import audit
from scheduler.availability.operations import active_locations
from scheduler.content import (
    EMAIL_TEMPLATE_KEYS,
    LANGUAGES,
    PAGE_KEYS,
    SMS_TEMPLATE_KEYS,
    blocks_of,
    contents_for,
    lines_of,
    save_content,
)
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.lookups import row_or_404
from scheduler.mail.messages import EMAIL_TEMPLATE_FIELDS, fill_email, sample_email_values
from scheduler.models import ContentBlock, Location, StaffUser, utcnow
from scheduler.sms.segments import segment_count
from scheduler.sms.texts import (
    TEMPLATE_FIELDS,
    TemplateError,
    check_text_size,
    fill_template,
    sample_values,
)
from scheduler.staff.access import admin_required, hash_password, new_staff_user
from scheduler.staff.accounts import clear_totp
from scheduler.staff.blueprint import bp
from scheduler.staff.forms import (
    SelectChoice,
    SlotBlockForm,
    StaffAccountForm,
    StaffUserForm,
    TemplateForm,
)
from scheduler.staff.words import TEXT_NAMES, TEXT_PURPOSES, text_name

EDITABLE_KEYS = (*PAGE_KEYS, *SMS_TEMPLATE_KEYS, *EMAIL_TEMPLATE_KEYS)
# What the editor takes: a text fits in 1,600 characters (checked with its values), an email
# or a page may be longer.
BODY_MAX = {key: 1600 for key in SMS_TEMPLATE_KEYS}
EDITOR_MAX = 8000
# Something that reads as a placeholder ({last_name}) in a text that takes none.
PLACEHOLDER = re.compile(r"\{[^{}\s]*\}")


@bp.route("/users", methods=["GET", "POST"])
@admin_required
def users() -> str | Response | tuple[str, int]:
    form = StaffUserForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                user = new_staff_user(
                    form.email.data or "", form.role.data, form.password.data or ""
                )
                email = user.email
                db.session.flush()
                audit("staff.create", "staff_user", user.id, email, role=user.role)
        except IntegrityError:
            form.email.errors = [*form.email.errors, "There is already an account with this email."]
        else:
            flash(f"Account created for {email}.", "success")
            return redirect(url_for("staff.users"))
    accounts = db.session.scalars(
        select(StaffUser).options(selectinload(StaffUser.locations)).order_by(StaffUser.email)
    ).all()
    status = 422 if form.errors else 200
    return render_template(
        "staff/users.html",
        form=form,
        accounts=accounts,
        toggle_form=SlotBlockForm(),
        account_forms={a.id: account_form(a, submitted=False) for a in accounts},
    ), status


def account_form(user: StaffUser, submitted: bool = True) -> StaffAccountForm:
    """The admin's form for one account (as saved, or as submitted); its location choices
    are every location there is."""
    if submitted:
        form = StaffAccountForm(prefix=f"a{user.id}")
    else:
        form = StaffAccountForm(obj=user, formdata=None, prefix=f"a{user.id}")
        form.locations.data = [loc.id for loc in user.locations]
    form.locations.choices = [
        SelectChoice(loc.id, loc.name)
        for loc in db.session.scalars(select(Location).order_by(Location.position, Location.id))
    ]
    return form


@bp.post("/users/<int:user_id>/<any(enable, disable):action>")
@admin_required
def toggle_user(user_id: int, action: str) -> Response:
    user = row_or_404(StaffUser, user_id, "No such account.")
    if user.id == current_user.id:
        flash("You cannot disable your own account.", "error")
        return redirect(url_for("staff.users"))
    with unit_of_work():
        user.is_enabled = action == "enable"
        user.sign_out_everywhere()
        audit(f"staff.{action}", "staff_user", user.id, user.email)
    flash(f"{user.email} is {action}d.", "success")
    return redirect(url_for("staff.users"))


@bp.post("/users/<int:user_id>")
@admin_required
def edit_user(user_id: int) -> Response:
    user = row_or_404(StaffUser, user_id, "No such account.")
    form = account_form(user)
    if not form.validate_on_submit():
        flash("; ".join(e for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("staff.users"))
    if user.id == current_user.id and form.role.data != user.role:
        flash("You cannot change your own role.", "error")
        return redirect(url_for("staff.users"))
    changed: dict[str, Any] = {}
    if form.role.data != user.role:
        changed["role"] = {"from": user.role, "to": form.role.data}
        user.role = form.role.data
    if form.password.data:
        user.password_hash = hash_password(form.password.data)
        changed["password"] = "changed"
    chosen = set(form.locations.data or [])
    if chosen != {loc.id for loc in user.locations}:
        names = {loc.id: loc.name for loc in db.session.scalars(select(Location))}
        changed["locations"] = {
            "from": sorted(loc.name for loc in user.locations),
            "to": sorted(names[i] for i in chosen),
        }
        user.locations = list(db.session.scalars(select(Location).where(Location.id.in_(chosen))))
    if changed:
        with unit_of_work():
            user.sign_out_everywhere()
            audit("staff.edit", "staff_user", user.id, user.email, **changed)
        flash(f"{user.email}: saved.", "success")
    return redirect(url_for("staff.users"))


@bp.post("/users/<int:user_id>/two-step-off")
@admin_required
def reset_user_totp(user_id: int) -> Response:
    """For someone who lost their phone and their recovery codes: they sign in with the
    password alone, then set two-step sign-in up again."""
    user = row_or_404(StaffUser, user_id, "No such account.")
    form = SlotBlockForm()
    if not form.validate_on_submit():
        abort(400, description="This form has expired. Reload the page and try again.")
    if user.has_totp:
        with unit_of_work():
            clear_totp(user)
            user.sign_out_everywhere()
            audit("staff.totp_reset", "staff_user", user.id, user.email)
        flash(f"Two-step sign-in is off for {user.email}; they can set it up again.", "success")
    return redirect(url_for("staff.users"))


@bp.get("/texts")
@admin_required
def texts() -> str:
    rows = db.session.scalars(select(ContentBlock).order_by(ContentBlock.key)).all()
    overrides = {(r.key, r.location_id, r.language) for r in rows}
    return render_template(
        "staff/texts.html",
        names=TEXT_NAMES,
        purposes=TEXT_PURPOSES,
        keys=EDITABLE_KEYS,
        languages=LANGUAGES,
        locations=active_locations(),
        overrides=overrides,
    )


def _scope(slug: str | None) -> Location | None:
    if not slug:
        return None
    location = db.session.scalar(select(Location).where(Location.slug == slug))
    if location is None:
        abort(404, description="No such location.")
    return location


def preview_of(key: str, body: str, language: str, location: Location | None) -> dict[str, object]:
    """The text as a patient would get it for a sample visit, with its length.

    A page (the instructions, the privacy notice) comes as ``blocks``, the headings,
    lists and paragraphs patients see on /prepare/<slug> and /privacy. An email comes
    as its subject, text and HTML part.
    """
    if key in EMAIL_TEMPLATE_FIELDS:
        return email_preview(key, body, language, location)
    if key not in TEMPLATE_FIELDS:
        unknown = PLACEHOLDER.findall(body)
        if unknown:
            names = ", ".join(dict.fromkeys(unknown))
            return {
                "ok": False,
                "error": f"Unknown placeholder {names}: the instructions take no placeholders; "
                "write the text as patients should read it.",
            }
        blocks = [("list", lines_of(body))] if key == "preconsult_instructions" else blocks_of(body)
        return {
            "ok": True,
            "text": body,
            "blocks": blocks,
            "characters": len(body),
            "segments": None,
        }
    try:
        text = fill_template(key, body, sample_values(location, language))
        check_text_size(key, body, location, language)
    except TemplateError as error:
        return {"ok": False, "error": str(error)}
    count = segment_count(text)
    return {
        "ok": True,
        "text": text,
        "characters": count.characters,
        "segments": count.segments,
        "encoding": count.encoding,
    }


def email_preview(
    key: str, body: str, language: str, location: Location | None
) -> dict[str, object]:
    """The email for a sample visit: subject, plain text and the HTML part made from it."""
    try:
        rendered = fill_email(key, body, sample_email_values(location, language))
    except TemplateError as error:
        return {"ok": False, "error": str(error)}
    return {
        "ok": True,
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        "characters": len(rendered.text),
        "segments": None,
    }


@bp.route("/texts/<key>/<language>", methods=["GET", "POST"])
@admin_required
def edit_text(key: str, language: str) -> str | Response | tuple[str, int]:
    if key not in EDITABLE_KEYS or language not in LANGUAGES:
        abort(404, description="No such text.")
    location = _scope(request.args.get("location"))
    current = contents_for([key], location, language)[key]
    form = TemplateForm(body=current)
    if form.validate_on_submit():
        body = (form.body.data or "").strip().replace("\r\n", "\n")
        preview = preview_of(key, body, language, location)
        if not preview["ok"]:
            form.body.errors = [*form.body.errors, str(preview["error"])]
        else:
            with unit_of_work():
                save_content(key, language, location, body, utcnow())
            flash("Saved. Texts queued from now on use it.", "success")
            return redirect(url_for("staff.texts"))
    preview = preview_of(key, form.body.data or "", language, location)
    return render_template(
        "staff/text_edit.html",
        name=text_name(key),
        purpose=TEXT_PURPOSES.get(key, ""),
        is_page=key in PAGE_KEYS,
        key=key,
        language=language,
        location=location,
        form=form,
        preview=preview,
        fields=sorted(TEMPLATE_FIELDS.get(key, ()) or EMAIL_TEMPLATE_FIELDS.get(key, ())),
        body_max=BODY_MAX.get(key, EDITOR_MAX),
    ), (422 if form.errors else 200)


@bp.post("/texts/<key>/<language>/preview")
@admin_required
def preview_text(key: str, language: str) -> Response:
    """The live preview the editor asks for while typing (CSRF-protected like any form)."""
    if key not in EDITABLE_KEYS or language not in LANGUAGES:
        abort(404, description="No such text.")
    body = request.form.get("body", "")[: BODY_MAX.get(key, EDITOR_MAX)]
    return jsonify(preview_of(key, body, language, _scope(request.args.get("location"))))


def feed_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_off_confirmation(location: Location) -> str:
    return render_template(
        "staff/confirm.html",
        question=f"Turn off the {location.name} calendar feed?",
        consequences=[
            "Every calendar app subscribed to the current address stops getting "
            "this location's bookings at once.",
            "This cannot be undone: the address never works again. A new address can be "
            "made later, and everyone must then subscribe to it again.",
        ],
        action=url_for("staff.rotate_feed", slug=location.slug),
        fields={"revoke": "y"},
        confirm_label="Yes, turn the feed off",
        back_url=url_for("staff.availability", slug=location.slug),
        back_label="No, keep it",
    )


@bp.get("/locations/<slug>/feed/off")
@admin_required
def confirm_feed_off(slug: str) -> str:
    location = _scope(slug)
    assert location is not None
    return feed_off_confirmation(location)


@bp.post("/locations/<slug>/feed")
@admin_required
def rotate_feed(slug: str) -> str:
    location = _scope(slug)
    assert location is not None
    revoke = request.form.get("revoke") == "y"
    if revoke and request.form.get("confirm") != "yes":  # one tap never turns it off
        return feed_off_confirmation(location)
    token = None if revoke else secrets.token_urlsafe(24)
    with unit_of_work():
        location.feed_token_hash = feed_token_hash(token) if token else None
        audit("feed.revoke" if revoke else "feed.new", "location", location.id, location.name)
    return render_template("staff/feed.html", location=location, token=token)

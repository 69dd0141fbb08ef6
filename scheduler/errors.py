"""Errors: JSON under /api/, a friendly page elsewhere, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

FRIENDLY = {
    400: _l("Something in that request was not right."),
    404: _l("We could not find that page."),
    405: _l("That action is not available here."),
    410: _l("This page is no longer available."),
    413: _l("That was more data than we accept at once."),
    429: _l("Too many attempts in a short time. Please wait a minute and try again."),
    500: _l("Something went wrong on our side. Please try again, or call us."),
    503: _l("The service is briefly unavailable. Please try again in a moment."),
}
# Page titles in the page's language (Werkzeug's names are English).
TITLES = {
    400: _l("Bad request"),
    404: _l("Page not found"),
    405: _l("Not available"),
    410: _l("No longer available"),
    413: _l("Too much data"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong"),
    503: _l("Briefly unavailable"),
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_name(error: HTTPException) -> str:
    return (error.name or "error").lower().replace(" ", "_").replace("'", "")


def render_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    custom = error.description if error.description != type(error).description else None
    kept_headers = {
        k: v for k, v in error.get_response().headers.items() if k in ("Retry-After", "Allow")
    }
    if wants_json():
        body = jsonify(error=error_name(error), message=custom or error.name)
        return body, status, kept_headers
    page = render_template(
        "errors/page.html",
        status=status,
        title=TITLES.get(status, error.name),
        message=custom or FRIENDLY.get(status, error.name),
    )
    return page, status, kept_headers


def handle_csrf(error: CSRFError) -> ResponseReturnValue:
    error.description = gettext(
        "This form has expired or was sent from another page. "
        "Please go back, reload the page and try again."
    )
    return render_error(error)


def handle_unexpected(error: Exception) -> ResponseReturnValue:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_error(InternalServerError())


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, render_error)
    app.register_error_handler(Exception, handle_unexpected)

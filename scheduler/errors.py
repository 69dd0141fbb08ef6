"""Errors: JSON under /api/, a friendly page elsewhere, never a stack trace."""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError

from scheduler.database import outage
from scheduler.extensions import db, limiter

log = logging.getLogger(__name__)
# How soon clients are asked to try again while the database is unavailable.
RETRY_AFTER_SECONDS = 10

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


def rate_limit_retry_after() -> str:
    """Seconds until the limit this request hit lets the client in again (at least 1)."""
    current = limiter.current_limit
    if current is None:
        return "60"
    return str(max(1, math.ceil(current.reset_at - time.time())))


def render_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    custom = error.description if error.description != type(error).description else None
    kept_headers = {
        k: v for k, v in error.get_response().headers.items() if k in ("Retry-After", "Allow")
    }
    if status == 429:
        kept_headers.setdefault("Retry-After", rate_limit_retry_after())
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


def is_outage(error: Exception) -> bool:
    """The database cannot be reached, or stayed locked past its timeout: not a bug."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def database_unavailable() -> ResponseReturnValue:
    """503 with Retry-After: {"error": "unavailable"} under /api/, a friendly page elsewhere."""
    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the session is discarded at teardown anyway
        pass
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if wants_json():
        body = jsonify(error="unavailable", message="The service is briefly unavailable.")
        return body, 503, headers
    page = render_template(
        "errors/page.html",
        status=503,
        title=TITLES[503],
        message=FRIENDLY[503],
    )
    return page, 503, headers


def handle_unexpected(error: Exception) -> ResponseReturnValue:
    if is_outage(error):
        outage.failed(error)
        return database_unavailable()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_error(InternalServerError())


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, render_error)
    app.register_error_handler(Exception, handle_unexpected)

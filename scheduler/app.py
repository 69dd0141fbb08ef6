"""The application factory: settings, extensions, blueprints, commands."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from scheduler.appointments.lifecycle import subscribe, subscribe_to_places
from scheduler.appointments.validation import parse_regions
from scheduler.cli import register_commands
from scheduler.config import DEFAULTS, instance_secret_key, settings_from_env, sqlite_url_in
from scheduler.database import create_private_sqlite_file, engine_options
from scheduler.display import register_filters
from scheduler.errors import register_error_handlers
from scheduler.extensions import csrf, db, limiter, migrate
from scheduler.i18n import register_i18n
from scheduler.mail.backends import check_mail_settings
from scheduler.mail.subscriber import emails_for
from scheduler.security import register_security
from scheduler.sms.backends import check_sms_settings
from scheduler.sms.subscriber import texts_for
from scheduler.staff_edits import init_staff_edits
from scheduler.waitlist.subscriber import follow_moves, offers_for


def build_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then instance/config.py, then environment, then ``config``."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(settings_from_env(os.environ))
    if config:
        app.config.update(config)
    finish_config(app)

    if app.config["PROXY_FIX_X_FOR"] or app.config["PROXY_FIX_X_PROTO"]:
        # Flask's documented way to add WSGI middleware; mypy sees a method being replaced.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=app.config["PROXY_FIX_X_FOR"],
            x_proto=app.config["PROXY_FIX_X_PROTO"],
        )

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=os.path.join(app.root_path, os.pardir, "migrations"),
        render_as_batch=True,
        compare_type=True,
    )
    csrf.init_app(app)
    limiter.init_app(app)
    register_i18n(app)
    register_blueprints(app)
    register_subscribers(app)
    init_staff_edits(app)
    register_error_handlers(app)
    register_security(app)
    register_filters(app)
    register_commands(app)
    return app


def finish_config(app: Flask) -> None:
    """Derive the settings that depend on others or on the instance folder."""
    config = app.config
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = sqlite_url_in(app.instance_path)
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS",
        engine_options(
            config["DATABASE_URL"],
            config["DATABASE_POOL_SIZE"],
            config["DATABASE_MAX_OVERFLOW"],
            config["DATABASE_POOL_PRE_PING"],
            config["DATABASE_LOCK_TIMEOUT_SECONDS"],
            config["DATABASE_CONNECT_TIMEOUT_SECONDS"],
        ),
    )
    create_private_sqlite_file(config["DATABASE_URL"])
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = instance_secret_key(app.instance_path)
    parse_regions(config["PHONE_REGIONS"])  # an unknown region stops the start, with its name
    config["SESSION_COOKIE_SECURE"] = config["PUBLIC_BASE_URL"].startswith("https://")
    check_sms_settings(config)
    check_mail_settings(config)


def register_subscribers(app: Flask) -> None:
    """What follows an appointment's changes, in the same transaction (see the lifecycle)."""
    subscribe(app, texts_for)
    subscribe(app, emails_for)
    subscribe(app, follow_moves)
    subscribe_to_places(app, offers_for)


def register_blueprints(app: Flask) -> None:
    """The doors into the domain, imported here so that importing a domain or pure
    module never loads a website (and so the packages cannot import each other in a cycle)."""
    from scheduler import health
    from scheduler.api.views import bp as api
    from scheduler.booking.views import bp as booking
    from scheduler.mail.views import bp as mail
    from scheduler.sms.views import bp as sms
    from scheduler.staff.access import configure_login
    from scheduler.staff.views import bp as staff
    from scheduler.waitlist.views import bp as waitlist

    configure_login(app)
    app.register_blueprint(booking)
    app.register_blueprint(waitlist)
    app.register_blueprint(api)
    app.register_blueprint(health.bp)
    app.register_blueprint(sms)
    app.register_blueprint(mail)
    app.register_blueprint(staff)
    csrf.exempt(api)
    csrf.exempt(sms)  # Twilio signs its webhooks; the signature is checked instead
    csrf.exempt(mail)  # one-click unsubscribe (RFC 8058): the signed link is the permission
    limiter.exempt(health.bp)

"""Extensions, created unbound here and initialised in ``create_app``."""

from typing import TYPE_CHECKING, cast

from flask import Flask, current_app, g
from flask.wrappers import Response
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from werkzeug.local import LocalProxy

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Objects keep their values after commit: operations refresh explicitly what
# another transaction may have changed, and views can answer without re-reading.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
# The models' base class. Flask-SQLAlchemy builds ``db.Model`` at runtime from ``Base``
# (adding table naming and the session binding), which a type checker cannot follow;
# to it, the models derive from ``Base`` itself.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)
login_manager = LoginManager()
babel = Babel()


def current_app_object() -> Flask:
    """The application itself behind the ``current_app`` proxy: for a thread to keep, or as
    a signal's sender. (Flask types the proxy as the app, so mypy cannot see its method.)"""
    return cast("LocalProxy[Flask]", current_app)._get_current_object()


def counts_toward_booking_limit(response: Response) -> bool:
    """A submit the form refused for a field error (``g.booking_field_errors``) is free:
    it books nothing and texts no one, and the patient must be able to correct it."""
    return response.status_code != 429 and not g.pop("booking_field_errors", False)


# One budget for every booking door (the public form, rescheduling, the API), per client address.
booking_limit = limiter.shared_limit(
    lambda: current_app.config["RATELIMIT_BOOKING"],
    scope="booking",
    methods=["POST"],
    deduct_when=counts_toward_booking_limit,
)

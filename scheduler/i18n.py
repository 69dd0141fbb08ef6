"""The page's language: English or Spanish, chosen per request.

In order: ``?lang=es`` or ``?lang=en`` (then remembered in a cookie), the
cookie, on manage pages the patient's own language, the browser's
``Accept-Language`` (``es``, ``es-MX``, ``es-US`` give Spanish), English.
Staff pages, the API and Twilio's webhooks are always English.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask, g, request
from flask_babel import get_locale, refresh
from werkzeug.wrappers import Response

from scheduler.extensions import babel

LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"
# What each language is called in itself: the switch shows the other one.
LANGUAGE_NAMES = {"en": "English", "es": "Español"}
# Formats (dates, times) follow United States usage in both languages: "9:00 a.m.", not "9:00".
FORMAT_LOCALES = {"en": "en_US", "es": "es_US"}
LANGUAGE_COOKIE = "lang"
LANGUAGE_COOKIE_MAX_AGE = 365 * 86400
ENGLISH_ONLY_BLUEPRINTS = frozenset({"staff", "api", "sms", "health"})


def select_locale() -> str:
    if request.blueprint in ENGLISH_ONLY_BLUEPRINTS or request.path.startswith(
        ("/staff/", "/api/", "/sms/")
    ):
        return DEFAULT_LANGUAGE
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    remembered = request.cookies.get(LANGUAGE_COOKIE)
    if remembered in LANGUAGES:
        return remembered
    patient_language = g.get("patient_language")
    if patient_language in LANGUAGES:
        return patient_language
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def page_language() -> str:
    """``en`` or ``es``: the language of this request's page (English outside a request)."""
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LANGUAGE


def format_locale(language: str | None = None) -> str:
    return FORMAT_LOCALES[language or page_language()]


def use_patient_language(language: str) -> None:
    """On a manage page: the patient's language, unless they chose one with the switch."""
    g.patient_language = language
    refresh()


def switch_url(language: str) -> str:
    """This page in another language (a GET of the same address)."""
    args = request.args.to_dict()
    args["lang"] = language
    return f"{request.path}?{urlencode(args)}"


def start_request() -> None:
    # Tests run several requests in one app context; each request chooses afresh.
    g.pop("patient_language", None)
    refresh()


def remember_choice(response: Response) -> Response:
    asked = request.args.get("lang")
    if (
        asked in LANGUAGES
        and request.cookies.get(LANGUAGE_COOKIE) != asked
        and request.blueprint not in ENGLISH_ONLY_BLUEPRINTS
    ):
        response.set_cookie(
            LANGUAGE_COOKIE,
            asked,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response


def template_values() -> dict[str, object]:
    language = page_language()
    return {
        "page_language": language,
        "other_language": next(code for code in LANGUAGES if code != language),
        "language_names": LANGUAGE_NAMES,
        "switch_url": switch_url,
    }


def register_i18n(app: Flask) -> None:
    babel.init_app(
        app,
        default_locale=DEFAULT_LANGUAGE,
        default_timezone=app.config["DISPLAY_TIMEZONE"],
        locale_selector=select_locale,
    )
    # {% trans %} blocks are read with their line breaks and indentation collapsed, as
    # `pybabel extract` reads them (babel.cfg: trimmed).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.before_request(start_request)
    app.after_request(remember_choice)
    app.context_processor(template_values)

"""WCAG 2.2 AA in Chromium: axe-core on every public page (both languages, phone and desktop,
normal, error and empty states) and every staff page, plus what axe cannot see: focus rings,
target sizes, text size, reflow, the skip link and the error summary's focus."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, time, timedelta
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import time_machine
from flask import Flask, abort

from scheduler.appointments.links import manage_token
from scheduler.extensions import db
from scheduler.mail.messages import unsubscribe_signature
from scheduler.models import Appointment, ScheduleException
from scheduler.waitlist.links import entry_url, offer_url
from tests.booking.conftest import MONDAY_AFTERNOON, slot_at
from tests.e2e.a11y import (
    DESKTOP_SIZE,
    PHONE_SIZE,
    REFLOW_SIZES,
    axe_violations,
    focus_rings,
    scrolls_sideways,
    small_targets,
    small_text,
)
from tests.factories import cancel, make_appointment, make_slot, seeded_clinic
from tests.staff.conftest import PASSWORD, make_staff
from tests.waitlist.conftest import join

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config() -> dict:
    # A small booking budget, so that the form's "too many attempts" state can be reached.
    return {
        "WTF_CSRF_ENABLED": True,
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_BOOKING": "3 per minute",
        "MAX_ACTIVE_BOOKINGS_PER_PHONE": 100,
    }


@pytest.fixture
def frozen() -> Iterator[Any]:
    with time_machine.travel(MONDAY_AFTERNOON, tick=False) as traveller:
        yield traveller


@pytest.fixture
def clinic(app: Flask, frozen: Any) -> dict[str, Any]:
    """Seeded clinic with a week of slots and appointments in each state; an outage page."""
    app.add_url_rule("/test-outage", "outage", lambda: abort(503))
    locations = seeded_clinic()
    boerne = locations[0]
    slots = [make_slot(boerne, starts_at=slot_at(d, time(h))) for d in (1, 2, 3) for h in (9, 13)]
    make_slot(boerne, starts_at=slot_at(1, time(11)), capacity=1)
    full = make_slot(boerne, starts_at=slot_at(2, time(11)), capacity=1)
    make_appointment(full)
    booked = make_appointment(
        make_slot(boerne, starts_at=slot_at(4)), language="es", email="rosa@example.com"
    )
    quiet = make_appointment(make_slot(boerne, starts_at=slot_at(5)), sms_consent=False)
    cancelled = make_appointment(make_slot(boerne, starts_at=slot_at(6)))
    cancel(cancelled)
    # Someone on the waitlist, offered a freed place.
    freed = make_appointment(make_slot(boerne, starts_at=slot_at(2, time(15)), capacity=1))
    waiting = join(boerne)
    cancel(freed)
    return {
        "waiting": waiting,
        "location": boerne,
        "slot": slots[0],
        "full": full,
        "booked": booked,
        "quiet": quiet,
        "cancelled": cancelled,
    }


def manage(appt: Appointment) -> str:
    return f"/manage/{appt.reference}/{manage_token(appt)}"


def unsubscribe_path(appt: Appointment) -> str:
    address = appt.patient.email or ""
    return f"/email/unsubscribe/{appt.reference}/{unsubscribe_signature(appt.reference, address)}"


def public_pages(clinic: dict[str, Any]) -> dict[str, str]:
    where = clinic["location"].slug
    later = slot_at(40).date().isoformat()
    booked = manage(clinic["booked"])
    return {
        "home": "/",
        "slots": f"/book/{where}",
        "slots, empty": f"/book/kerrville?from={later}",
        "form": f"/book/{where}/{clinic['slot'].id}",
        "form, slot taken": f"/book/{where}/{clinic['full'].id}",
        "prepare": f"/prepare/{where}",
        "privacy": "/privacy",
        "confirmation": booked + "?booked=1",
        "manage, no texts": manage(clinic["quiet"]),
        "manage, cancelled": manage(clinic["cancelled"]),
        "cancel": booked + "/cancel",
        "reschedule": booked + "/reschedule",
        "reschedule, empty": booked + f"/reschedule?from={later}",
        "reschedule confirm": booked + f"/reschedule/{clinic['slot'].id}",
        "link not valid": f"/manage/{clinic['booked'].reference}/not-a-token",
        "waitlist": f"/book/{where}/waitlist",
        "waitlist from a booking": booked + "/waitlist",
        "waitlist entry": urlsplit(entry_url(clinic["waiting"])).path,
        "waitlist offer": urlsplit(offer_url(clinic["waiting"].offers[0])).path,
        "stop emails": unsubscribe_path(clinic["booked"]),
        "not found": "/nowhere",
        "outage": "/test-outage",
    }


def submit_with_mistakes(page: Any) -> None:
    page.locator("#first_name").fill("Ann3")
    page.locator("#phone").fill("555")
    page.locator("#date_of_birth-month").fill("13")
    with page.expect_navigation():
        page.locator("button[type=submit]").click()


def fill_correctly(page: Any, phone: str = "(830) 257-4811") -> None:
    page.locator("#first_name").fill("Rosa")
    page.locator("#last_name").fill("Treviño")
    page.locator("#phone").fill(phone)
    page.locator("#date_of_birth-month").fill("4")
    page.locator("#date_of_birth-day").fill("15")
    page.locator("#date_of_birth-year").fill("1956")


def new_page(browser: Any, size: dict[str, int], language: str, base: str) -> Any:
    context = browser.new_context(
        viewport=size,
        is_mobile=size["width"] < 800,
        has_touch=size["width"] < 800,
        locale="es-MX" if language == "es" else "en-US",
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base}/?lang={language}")
    return page


def check_page(page: Any, name: str, problems: list[str], phone: bool) -> None:
    problems.extend(f"{name}: {v}" for v in axe_violations(page))
    if phone:
        problems.extend(f"{name}: small target {t}" for t in small_targets(page))
        problems.extend(f"{name}: small text {t}" for t in small_text(page))


@pytest.mark.parametrize("size", [PHONE_SIZE, DESKTOP_SIZE], ids=["phone", "desktop"])
@pytest.mark.parametrize("language", ["en", "es"])
def test_public_pages_have_no_axe_violations(
    browser: Any,
    live_server: str,
    clinic: dict[str, Any],
    size: dict[str, int],
    language: str,
) -> None:
    page = new_page(browser, size, language, live_server)
    phone = size == PHONE_SIZE
    problems: list[str] = []
    for name, path in public_pages(clinic).items():
        page.goto(live_server + path)
        assert page.locator("html").get_attribute("lang") == language, name
        check_page(page, name, problems, phone)
    # The form's error state, its "too many attempts" state, and the details opened.
    page.goto(live_server + public_pages(clinic)["form"])
    page.locator("details summary").click()
    check_page(page, "form, terms open", problems, phone)
    submit_with_mistakes(page)
    assert page.locator("#error-summary").is_visible()
    check_page(page, "form, errors", problems, phone)
    for n in range(4):  # the budget is 3 a minute, and the clock is stopped
        fill_correctly(page, phone=f"(830) 257-48{20 + n}")
        with page.expect_navigation():
            page.locator("button[type=submit]").click()
        if "/manage/" in page.url:
            page.goto(live_server + public_pages(clinic)["form"])
    assert page.locator("#problem").is_visible()
    assert page.locator("#first_name").input_value() == "Rosa"
    check_page(page, "form, too many attempts", problems, phone)
    # The check itself finds what it should.
    page.set_content("<html><body><img src='x.png'><a href='#'></a></body></html>")
    assert {v.split(" ")[0] for v in axe_violations(page)} >= {"image-alt", "link-name"}
    page.context.close()
    assert problems == []


def test_pages_reflow_at_320_px_and_200_percent_zoom(
    browser: Any, live_server: str, clinic: dict[str, Any]
) -> None:
    overflowing = []
    for size in REFLOW_SIZES:
        for language in ("en", "es"):
            page = new_page(browser, size, language, live_server)
            for name, path in public_pages(clinic).items():
                page.goto(live_server + path)
                if scrolls_sideways(page):
                    overflowing.append(f"{name} ({language}, {size['width']} px)")
            page.goto(live_server + public_pages(clinic)["form"])
            submit_with_mistakes(page)
            if scrolls_sideways(page):
                overflowing.append(f"form, errors ({language}, {size['width']} px)")
            page.context.close()
    assert overflowing == []


def test_every_control_shows_a_focus_ring_of_3_to_1(
    browser: Any, live_server: str, clinic: dict[str, Any]
) -> None:
    page = new_page(browser, PHONE_SIZE, "en", live_server)
    weak = []
    for name in ("home", "slots", "form", "confirmation", "cancel", "reschedule confirm"):
        page.goto(live_server + public_pages(clinic)[name])
        rings = focus_rings(page)
        assert len(rings) >= 4, name
        weak.extend(f"{name}: {r}" for r in rings if r["ratio"] < 3 or r["width"] < 2)
    page.goto(live_server + public_pages(clinic)["form"])
    submit_with_mistakes(page)
    weak.extend(f"form, errors: {r}" for r in focus_rings(page) if r["ratio"] < 3)
    page.context.close()
    assert weak == []


def test_skip_link_and_error_summary_take_the_keyboard_where_it_is_needed(
    browser: Any, live_server: str, clinic: dict[str, Any]
) -> None:
    page = new_page(browser, PHONE_SIZE, "en", live_server)
    page.goto(live_server + public_pages(clinic)["slots"])
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    assert skip.inner_text() == "Skip to main content" and skip.is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main') !== null")

    page.goto(live_server + public_pages(clinic)["form"])
    submit_with_mistakes(page)
    assert page.evaluate("document.activeElement.id") == "error-summary"
    links = page.locator("#error-summary a")
    assert links.count() == 4  # first name, last name, phone, the day of birth
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#phone"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "phone"
    page.locator("#error-summary a[href='#date_of_birth-day']").click()
    assert page.evaluate("document.activeElement.id") == "date_of_birth-day"
    page.context.close()


def test_the_form_books_with_javascript_turned_off(
    browser: Any, live_server: str, clinic: dict[str, Any]
) -> None:
    context = browser.new_context(viewport=PHONE_SIZE, java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server + public_pages(clinic)["form"] + "?lang=en")
    submit_with_mistakes(page)
    assert page.locator("#error-summary").is_visible()
    fill_correctly(page)
    page.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/manage/"))
    assert "You're booked, Rosa" in page.locator("main").inner_text()
    context.close()


# Pages beyond one per route: other views, searches, filters, the plain-name editors.
STAFF_PAGES = [
    "/staff/calendar?view=week",
    "/staff/calendar?view=day&location=boerne",
    "/staff/appointments?q=Garza",
    "/staff/inbox?location=unmatched",
    "/staff/texts/privacy_notice/es",
    "/staff/texts/preconsult_instructions/en",
    "/staff/texts/sms_confirmation/en",
    "/staff/audit?person=1&from=2020-01-01",
    "/staff/texts/sms_waitlist_offer/es",
]
# GET routes that are not pages: a download, a calendar feed, and the two steps that
# only exist inside a sign-in or right after turning two-step sign-in on (visited below).
NOT_PAGES = {
    "staff.export_csv",
    "staff.calendar_version",  # the board's poll: JSON
    "staff.calendar_feed",
    "staff.login_code",
    "staff.totp_recovery_codes",
    "staff.totp_setup",
}
# Controls a busy front desk taps: at least 44 px tall.
STAFF_INPUTS = (
    "main input[type=password], main input[type=time], main input[type=number], "
    "main input[type=date], main input[type=text], main input[type=email], main select, "
    "button.sign-out"
)
SHORT_INPUTS_JS = """(selector) => [...document.querySelectorAll(selector)]
  .map((el) => [el.name || el.className, el.getBoundingClientRect().height])
  .filter(([, height]) => height > 0 && height < 44)"""


def staff_page_paths(app: Flask, values: dict[str, Any]) -> list[str]:
    """One address per staff GET route in the URL map (new pages are checked too)."""
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("staff.") or "GET" not in (rule.methods or ()):
            continue
        if rule.endpoint in NOT_PAGES:
            continue
        missing = set(rule.arguments) - set(values) - set(rule.defaults or {})
        assert not missing, f"give {rule.endpoint}'s {missing} a value in this test"
        args = {name: values[name] for name in rule.arguments if name in values}
        paths.append(app.url_map.bind("localhost").build(rule.endpoint, args))
    return paths


def sign_in_page(page: Any, base: str, email: str, password: str) -> None:
    page.goto(base + "/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_staff_pages_have_no_serious_or_critical_axe_violations(
    app: Flask, browser: Any, live_server: str, clinic: dict[str, Any], frozen: Any
) -> None:
    today = make_slot(clinic["location"], starts_at=MONDAY_AFTERNOON + timedelta(hours=2))
    patient = make_appointment(today, first_name="Luz")
    cancel(make_appointment(today, first_name="Ana"))
    boerne = clinic["location"]
    closure = ScheduleException(day=date(2031, 1, 7), kind="closed", reason="Training")
    boerne.exceptions.append(closure)
    db.session.commit()
    admin = make_staff("admin@clinic.test", "admin")
    values = {
        "appointment_id": patient.id,
        "slot_id": clinic["slot"].id,
        "slug": boerne.slug,
        "rule_id": boerne.opening_rules[0].id,
        "exception_id": closure.id,
        "patient_id": patient.patient_id,
        "user_id": admin.id,
        "key": "preconsult_instructions",
        "language": "es",
        "status": "arrived",
        "action": "block",
        "location_id": boerne.id,
    }
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []

    def check(name: str) -> None:
        assert "/staff/login" not in page.url or name.startswith("login"), (name, page.url)
        problems.extend(f"{name}: {v}" for v in axe_violations(page, "serious"))
        short = page.evaluate(SHORT_INPUTS_JS, STAFF_INPUTS)
        problems.extend(f"{name}: {field} is {height:.0f} px tall" for field, height in short)

    page.goto(live_server + "/staff/login")
    check("login")
    sign_in_page(page, live_server, admin.email, "not the password at all")
    check("login (wrong password)")
    sign_in_page(page, live_server, admin.email, PASSWORD)
    page.wait_for_url(re.compile(r"/staff/$"))
    paths = staff_page_paths(app, values)
    assert {"/staff/account", "/staff/users", "/staff/audit", "/staff/texts"} <= set(paths)
    for path in [*paths, *STAFF_PAGES]:
        page.goto(live_server + path)
        assert page.title(), path
        check(path)
    # A form's error state: a password change with the wrong current password.
    page.goto(live_server + "/staff/account")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password", exact=True).fill("a new long passphrase")
    page.get_by_label("New password again").fill("a new long passphrase")
    page.get_by_role("button", name="Change password").click()
    check("account (wrong current password)")
    # Two-step sign-in: setup, recovery codes, sign out, the code step and its error.
    page.goto(live_server + "/staff/account/two-step")
    check("two-step setup")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    page.wait_for_url(re.compile(r"/recovery-codes$"))
    check("recovery codes")
    assert page.locator(".recovery-codes li").count() == 10
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/staff/login$"))
    frozen.shift(timedelta(seconds=30))  # a new code: the setup's was used
    sign_in_page(page, live_server, admin.email, PASSWORD)
    page.wait_for_url(re.compile(r"/staff/login/code$"))
    check("login: code step")
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    check("login: wrong code")
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/staff/$"))
    page.goto(live_server + "/staff/account")
    check("account with two-step sign-in on")
    context.close()
    assert problems == [], "\n".join(problems)

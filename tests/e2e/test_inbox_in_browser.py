"""The inbox in Chromium at 820 px: read a reply and answer it; axe-core on the inbox, on
its empty state and on the reply form's warning, with no serious or critical violation."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import InboundMessage, OutboundMessage, utcnow
from scheduler.sms.replies import Inbound, handle_inbound
from tests.e2e.a11y import axe_violations, scrolls_sideways
from tests.e2e.inbox_steps import answer_first_unread_reply
from tests.e2e.test_booking_in_browser import shot
from tests.factories import make_appointment, make_slot, new_phone, seeded_clinic
from tests.staff.conftest import PASSWORD, make_staff

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config() -> dict:
    return {"WTF_CSRF_ENABLED": True}


def sign_in(page: Any, base_url: str, email: str) -> None:
    page.goto(base_url + "/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/staff/$"))


@pytest.mark.clock  # a Tuesday morning: the answer goes out at once
def test_reading_and_answering_a_reply_in_the_inbox(
    app: Flask, live_server: str, tablet_page: Any
) -> None:
    kerrville = seeded_clinic()[1]
    phone = new_phone()
    appt = make_appointment(make_slot(kerrville, days_ahead=2), phone=phone, first_name="Rosa")
    now = utcnow()
    handle_inbound(Inbound("SM1", phone, "+12105550100", "Can I bring my wife?"), now)
    handle_inbound(Inbound("SM2", new_phone(), "+12105550100", "Who is this?"), now)
    older = make_appointment(make_slot(kerrville, days_ahead=3), first_name="Luz")
    handle_inbound(
        Inbound("SM3", older.patient.phone, "+12105550100", "Thanks!"), now - timedelta(hours=1)
    )
    admin = make_staff("admin@clinic.test", "admin")
    page = tablet_page
    sign_in(page, live_server, admin.email)
    assert page.locator("#inbox-unread").inner_text().startswith("3")

    problems: list[str] = []
    for path in (
        "/staff/inbox",
        f"/staff/inbox?location={kerrville.slug}",
        "/staff/inbox?location=unmatched",
    ):
        page.goto(live_server + path)
        problems += [f"{path}: {v}" for v in axe_violations(page, "serious")]
        assert not scrolls_sideways(page), path
    page.goto(live_server + "/staff/inbox")
    shot(page, "inbox-1-all")
    thanks = page.locator("li.inbox-item", has_text="Thanks!")
    thanks.get_by_role("button", name="Mark handled").click()
    page.wait_for_load_state()
    assert "The reply is marked handled." in page.locator("main").inner_text()
    problems += [f"inbox with a handled reply: {v}" for v in axe_violations(page, "serious")]
    page.goto(live_server + "/staff/inbox?location=boerne")
    problems += [f"empty inbox: {v}" for v in axe_violations(page, "serious")]

    page.goto(live_server + "/staff/")
    clicks = answer_first_unread_reply(page, live_server, "Of course, Rosa. Your stenosis is fine.")
    assert clicks == 4  # Inbox, Answer, Send reply, Send anyway (the diagnosis word)
    assert "The reply is on its way to the patient." in page.locator("main").inner_text()
    assert page.locator("#inbox-unread").inner_text().startswith("1")  # "Who is this?"
    text = db.session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "staff_reply#1"))
    assert text is not None and text.appointment_id == appt.id
    handled = db.session.scalar(
        select(InboundMessage.handled_at)
        .where(InboundMessage.provider_sid == "SM1")
        .execution_options(populate_existing=True)
    )
    assert handled is not None

    page.goto(live_server + f"/staff/appointments/{appt.id}")
    page.locator("#reply-body").fill("Born 4/2/1956? See you for the MILD procedure.")
    live = page.locator("#reply-live")
    live.get_by_text("It names the procedure").wait_for()  # the live check, as staff type
    assert "1 text message (GSM-7)" in live.inner_text()
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_load_state()
    assert page.locator("#reply-warnings").is_visible()
    shot(page, "inbox-2-reply-warning")
    problems += [f"reply warning: {v}" for v in axe_violations(page, "serious")]
    assert problems == [], "\n".join(problems)

"""Staff see on an appointment's text thread that a text was reconciled, not sent again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask

from scheduler.sms.dispatch import Dispatcher
from tests.factories import CHICAGO, book, booking_request, make_slot, texts_of
from tests.sms.conftest import twilio_settings
from tests.staff.conftest import FreshContextClient, make_staff, sign_in
from tests.twilio_server import FakeTwilio

BOOKED = datetime(2026, 12, 1, 10, 0, tzinfo=CHICAGO).astimezone(UTC)


@pytest.fixture
def app_config(twilio: FakeTwilio) -> dict[str, Any]:
    return twilio_settings(twilio)


def test_a_text_found_at_twilio_after_its_dispatcher_died_shows_as_reconciled(
    app: Flask, twilio: FakeTwilio
) -> None:
    app.test_client_class = FreshContextClient
    slot = make_slot(starts_at=BOOKED + timedelta(days=8))
    appt = book(booking_request(slot), now=BOOKED)
    at = [BOOKED]
    lease = timedelta(seconds=app.config["SMS_CLAIM_LEASE_SECONDS"])
    with time_machine.travel(BOOKED, tick=True):
        with Dispatcher(app, worker="host:4242:dead", clock=lambda: at[0]) as dead:
            [text] = dead.claim(BOOKED, 1)
            dead.backend.send(text.to_phone, text.body, None)  # Twilio takes it; then, kill
        at[0] += lease + timedelta(seconds=1)
        with Dispatcher(app, clock=lambda: at[0]) as dispatcher:
            report = dispatcher.dispatch_due(BOOKED)
    assert (report.taken_back, report.reconciled, report.sent) == (1, 1, 0)
    assert twilio.accepted_count() == 1
    sid = twilio.requests[0].sid
    assert texts_of(appt)["confirmation"].provider_sid == sid

    client = app.test_client()
    assert sign_in(client, make_staff()).status_code == 302
    page = client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert "reconciled with Twilio, not resent" in page
    assert "attempt 1 · dispatcher stopped mid-send" in page
    assert "attempt 2 · reconciled: already at Twilio, not sent again · already at the " in page
    assert f"provider as {sid} (sent): not sent again" in page
    assert "possibly sent twice" not in page

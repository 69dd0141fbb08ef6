"""The audit log reads as sentences, shows short diffs, and filters by person, dates,
location and appointment."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scheduler.audit import audit
from scheduler.database import unit_of_work
from tests.conftest import Clock
from tests.factories import days_from_today, make_appointment, make_slot, seeded_clinic
from tests.staff.conftest import make_staff, post, sign_in


@pytest.fixture
def ana(app: Flask) -> FlaskClient:
    """An admin whose email says who she is."""
    user = make_staff("ana.reyes@clinic.test", "admin")
    client = app.test_client()
    assert sign_in(client, user).status_code == 302
    return client


def log_of(client: FlaskClient, **filters: object) -> str:
    response = client.get("/staff/audit", query_string=filters)
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    return html[html.index('class="audit-entries"') :]


def sentences(html: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", s).strip() for s in re.findall(r'<p class="audit-what">([^<]*)', html)
    ]


@pytest.mark.clock
def test_a_closure_reads_as_a_sentence(clock: Clock, app: Flask, ana: FlaskClient) -> None:
    seeded_clinic()
    day = days_from_today(9)
    response = post(
        ana,
        "/staff/locations/kerrville/exceptions",
        {"day": day.isoformat(), "kind": "closed", "reason": "doctor at conference"},
    )
    assert response.status_code == 302
    html = log_of(ana)
    expected = f"Ana Reyes closed Kerrville on {day:%a %b} {day.day}: doctor at conference."
    assert expected in sentences(html)
    assert "availability.closure_added" not in html


def test_a_text_edit_shows_a_short_diff_with_plain_names(app: Flask, ana: FlaskClient) -> None:
    seeded_clinic()
    editor = ana.get("/staff/texts/preconsult_instructions/en").get_data(as_text=True)
    body = re.search(r"<textarea[^>]*>\n?([^<]*)</textarea>", editor)
    assert body
    lines = body.group(1).replace("&#39;", "'").replace("&amp;", "&").strip().splitlines()
    changed = [*lines[:-1], "Bring a list of your questions."]
    response = post(ana, "/staff/texts/preconsult_instructions/en", {"body": "\n".join(changed)})
    assert response.status_code == 302
    html = log_of(ana)
    assert "Ana Reyes changed “Pre-visit instructions” (English, every location)." in sentences(
        html
    )
    assert '<li class="added">+ Bring a list of your questions.</li>' in html
    assert '<li class="removed">- ' in html
    assert lines[0].replace("&", "&amp;") not in html  # an unchanged line is not repeated
    assert "content_block" not in html and "preconsult" not in html


def test_the_log_filters_by_person_location_appointment_and_dates(
    app: Flask, ana: FlaskClient
) -> None:
    boerne, kerrville, _ = seeded_clinic()
    ben = make_staff("ben@clinic.test")
    in_boerne = make_appointment(make_slot(boerne, days_ahead=3))
    in_kerrville = make_appointment(make_slot(kerrville, days_ahead=3))
    with unit_of_work():
        audit(
            "appointment.note",
            "appointment",
            in_boerne.id,
            in_boerne.reference,
            actor_id=ben.id,
            actor_label=ben.email,
            at=datetime(2026, 11, 2, 17, tzinfo=UTC),
        )
        audit(
            "appointment.note",
            "appointment",
            in_kerrville.id,
            in_kerrville.reference,
            actor_id=ben.id,
            actor_label=ben.email,
            at=datetime(2026, 11, 20, 17, tzinfo=UTC),
        )
        audit(
            "feed.new",
            "location",
            kerrville.id,
            kerrville.name,
            actor_id=None,
            actor_label="system",
            at=datetime(2026, 11, 21, 5, 30, tzinfo=UTC),
        )
    ben_note = f"Ben added a private note to {in_kerrville.reference}."
    boerne_note = f"Ben added a private note to {in_boerne.reference}."
    feed = "The system made a new calendar feed address for Kerrville."
    by_person = sentences(log_of(ana, person=ben.id))
    assert set(by_person) == {ben_note, boerne_note}
    by_place = sentences(log_of(ana, location=kerrville.id))
    assert ben_note in by_place and feed in by_place and boerne_note not in by_place
    by_appointment = sentences(log_of(ana, appointment=in_boerne.reference.lower()))
    assert boerne_note in by_appointment and ben_note not in by_appointment
    # Dates are Central days: 05:30 UTC on Nov 21 is still Nov 20 in Texas.
    by_dates = sentences(log_of(ana, **{"from": "2026-11-20", "to": "2026-11-20"}))
    assert set(by_dates) == {ben_note, feed}
    both = sentences(log_of(ana, person=ben.id, **{"from": "2026-11-01", "to": "2026-11-10"}))
    assert both == [boerne_note]


def test_bad_filters_are_said_on_the_page(app: Flask, ana: FlaskClient) -> None:
    for query, message in (
        ({"from": "2026-12-05", "to": "2026-12-01"}, "end date is before the start"),
        ({"from": "yesterday"}, "dates look like"),
        ({"appointment": "NOP-0000"}, "No appointment has the reference NOP-0000"),
    ):
        response = ana.get("/staff/audit", query_string=query)
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    assert ana.get("/staff/audit?person=abc&location=99999999999&page=-3").status_code == 200


def test_the_log_is_paginated(app: Flask, ana: FlaskClient) -> None:
    with unit_of_work():
        for n in range(60):
            audit("feed.new", "location", None, f"Place {n}", actor_label="system")
    first = log_of(ana)
    assert len(sentences(first)) == 50
    assert "Place 59." in first and "Place 10." in first and "Place 9." not in first
    assert "page=2" in first and "Newer" not in first
    second = log_of(ana, page=2)
    assert len(sentences(second)) == 10
    assert (
        "Place 9." in second
        and "Place 0." in second
        and "Newer" in second
        and "Older" not in second
    )


def test_every_action_the_code_audits_has_words(app: Flask) -> None:
    """No entry falls back to its raw action name: every audit() call site has a sentence."""
    from pathlib import Path

    from scheduler.staff.words import SENTENCES

    source = "\n".join(p.read_text(encoding="utf-8") for p in Path("scheduler").rglob("*.py"))
    actions = set(re.findall(r'audit(?:_now|_values)?\(\s*f?"([a-z_]+\.[a-z_{}]+)"', source))
    expanded = set()
    for action in actions:
        if "{action}" in action:
            prefix = action.split("{")[0]
            expanded |= {a for a in SENTENCES if a.startswith(prefix)}
        elif "{" not in action:
            expanded.add(action)
    assert actions and expanded <= SENTENCES.keys(), expanded - SENTENCES.keys()


def test_a_day_of_the_filter_is_a_central_day_across_the_dst_change(
    app: Flask, ana: FlaskClient
) -> None:
    """Sunday Nov 1, 2026 has 25 hours in Texas: 05:00 UTC that day to 06:00 UTC the next."""
    instants = {
        "last minute of Oct 31": datetime(2026, 11, 1, 4, 59, tzinfo=UTC),
        "first minute of Nov 1": datetime(2026, 11, 1, 5, 0, tzinfo=UTC),
        "1:30 CST, the second one": datetime(2026, 11, 1, 7, 30, tzinfo=UTC),
        "last minute of Nov 1": datetime(2026, 11, 2, 5, 59, tzinfo=UTC),
        "first minute of Nov 2": datetime(2026, 11, 2, 6, 0, tzinfo=UTC),
    }
    with unit_of_work():
        for label, at in instants.items():
            audit("feed.new", "location", None, label, actor_label="system", at=at)
    shown = " ".join(sentences(log_of(ana, **{"from": "2026-11-01", "to": "2026-11-01"})))
    inside = {"first minute of Nov 1", "1:30 CST, the second one", "last minute of Nov 1"}
    for label in instants:
        assert (label in shown) == (label in inside), label

"""The reply editor's warnings: dates of birth, diagnoses and the procedure's name, in
English and Spanish, without crying wolf at ordinary words and appointment dates."""

from __future__ import annotations

from datetime import date

import pytest

from scheduler.sms.reply_warnings import birth_date_spellings, reply_warnings

BORN = date(1956, 4, 2)


def kinds(text: str, born: date | None = BORN) -> list[str]:
    return [w.kind for w in reply_warnings(text, born)]


@pytest.mark.parametrize(
    "text",
    [
        "See you Thursday at 9:00 AM. Bring your insurance card.",
        "Your visit is on Tue Dec 3 at 10:30 in Kerrville.",
        "The pain should be mild after a day or two.",
        "Mild discomfort is normal.",
        "Su cita es el martes 3 de diciembre a las 9:00.",
        "Call us at 830-257-4811 if you need anything.",
        "Room 12-B, suite 4",
        "",
    ],
)
def test_ordinary_replies_raise_nothing(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("The doctor will discuss your stenosis.", "stenosis"),
        ("Your herniated disc", "herniated"),
        ("about the SCIATICA", "SCIATICA"),
        ("spondylolisthesis grade 1", "spondylolisthesis"),
        ("degenerative changes", "degenerative"),
        ("arthritis in the back", "arthritis"),
        ("neuropathy", "neuropathy"),
        ("a small fracture", "fracture"),
        ("Su ciática", "ciatica"),
        ("la estenosis lumbar", "estenosis"),
        ("neuropatía", "neuropatia"),
        ("una fractura", "fractura"),
        ("artritis", "artritis"),
    ],
)
def test_diagnosis_words_are_found_in_english_and_spanish(text: str, found: str) -> None:
    [warning] = reply_warnings(text)
    assert (warning.kind, warning.found) == ("diagnosis", found)


@pytest.mark.parametrize(
    "text",
    [
        "We will talk about MILD at the visit.",
        "the M.I.L.D. option",
        "before your mild procedure",
        "Before your Mild Procedure",
        "minimally invasive lumbar decompression",
        "su procedimiento MILD",
        "la descompresión lumbar",
    ],
)
def test_the_procedure_is_found_by_its_names_not_by_the_word_mild(text: str) -> None:
    assert kinds(text) == ["procedure"]


def test_the_patients_own_date_of_birth_in_any_common_spelling() -> None:
    for spelling in ("4/2/1956", "04/02/56", "1956-04-02", "04-02-1956", "4 / 2 / 1956"):
        [warning] = reply_warnings(f"We have you as born {spelling}, right?", BORN)
        assert warning.kind == "date_of_birth", spelling
    assert "4/2/1956" in birth_date_spellings(BORN)
    # Part of a longer number is not the date.
    assert kinds("Ref 14/2/19567", BORN) == []


@pytest.mark.parametrize(
    "text",
    [
        "Is your birthday 03/14/1960?",
        "DOB please",
        "Confirm your date of birth",
        "born March 14, 1960",
        "nacido el 14 de marzo de 1960",
        "¿Su fecha de nacimiento?",
        "1960-03-14",
    ],
)
def test_dates_with_a_year_and_birth_words_are_warned_about(text: str) -> None:
    assert kinds(text, None) == ["date"]


def test_each_kind_once_and_messages_name_what_was_found() -> None:
    warnings = reply_warnings("Stenosis and sciatica; MILD on 4/2/1956", BORN)
    assert [w.kind for w in warnings] == ["date_of_birth", "diagnosis", "procedure"]
    assert warnings[1].message == "It names a diagnosis (“Stenosis”)."
    assert warnings[2].message == "It names the procedure (“MILD”)."

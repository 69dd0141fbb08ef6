"""Dates of birth read the way people type them (pure functions, no app)."""

from __future__ import annotations

from datetime import date

import pytest

from scheduler.appointments.birthdates import (
    BirthDateError,
    birth_date_from_parts,
    parse_birth_date,
)

TODAY = date(2026, 4, 13)


@pytest.mark.parametrize(
    ("month", "day", "year", "expected"),
    [
        ("4", "15", "1956", date(1956, 4, 15)),
        ("04", "05", "1956", date(1956, 4, 5)),
        (" 4 ", "15.", "1956", date(1956, 4, 15)),
        ("April", "15", "1956", date(1956, 4, 15)),
        ("apr.", "15", "1956", date(1956, 4, 15)),
        ("abril", "15", "1956", date(1956, 4, 15)),
        ("Septiembre", "1", "1949", date(1949, 9, 1)),
        ("ENE", "31", "1950", date(1950, 1, 31)),
        ("4", "15", "56", date(1956, 4, 15)),
        ("4", "15", "26", date(2026, 4, 15)),
        ("2", "29", "1956", date(1956, 2, 29)),
    ],
)
def test_three_boxes_accept_what_people_type(
    month: str, day: str, year: str, expected: date
) -> None:
    assert birth_date_from_parts(month, day, year, TODAY) == expected


@pytest.mark.parametrize(
    ("month", "day", "year", "code"),
    [
        ("", "15", "1956", "missing_month"),
        ("4", "", "1956", "missing_day"),
        ("4", "15", " ", "missing_year"),
        ("13", "15", "1956", "month"),
        ("0", "15", "1956", "month"),
        ("Abrl", "15", "1956", "month"),
        ("4", "32", "1956", "day"),
        ("4", "x", "1956", "day"),
        ("4", "15", "195", "year"),
        ("4", "15", "19566", "year"),
        ("4", "31", "1956", "invalid"),
        ("2", "29", "1957", "invalid"),
    ],
)
def test_each_mistake_names_its_box(month: str, day: str, year: str, code: str) -> None:
    with pytest.raises(BirthDateError) as raised:
        birth_date_from_parts(month, day, year, TODAY)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1956-04-15", date(1956, 4, 15)),
        ("04/15/1956", date(1956, 4, 15)),
        ("4/15/56", date(1956, 4, 15)),
        ("4-15-1956", date(1956, 4, 15)),
        ("4.15.1956", date(1956, 4, 15)),
        ("15/4/1956", date(1956, 4, 15)),  # only day-first makes sense
        ("4/2/1956", date(1956, 4, 2)),  # both make sense: the US order, as the hint says
        ("April 15, 1956", date(1956, 4, 15)),
        ("15 de abril de 1956", date(1956, 4, 15)),
        ("15 April 1956", date(1956, 4, 15)),
    ],
)
def test_one_piece_of_text_is_read_too(text: str, expected: date) -> None:
    assert parse_birth_date(text, TODAY) == expected


@pytest.mark.parametrize("text", ["0000-00-00", "1956-02-30", "April 1956", "4/15", "abc", ""])
def test_text_that_is_no_date_is_refused(text: str) -> None:
    with pytest.raises(BirthDateError):
        parse_birth_date(text, TODAY)

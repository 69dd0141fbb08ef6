"""Reading a date of birth the way people type it.

The form asks for month, day and year in three boxes; the month may be a
number or a name in English or Spanish ("4", "04", "Apr", "abril"), the year
may have two digits. One box with the whole date is read too ("4/15/1956",
"1956-04-15", "April 15, 1956", "15 de abril de 1956"), as the API and older
pages send it. Errors are codes; the form says them in the page's language.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

MONTH_NAMES = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan", "enero", "ene"),
            ("february", "feb", "febrero"),
            ("march", "mar", "marzo"),
            ("april", "apr", "abril", "abr"),
            ("may", "mayo"),
            ("june", "jun", "junio"),
            ("july", "jul", "julio"),
            ("august", "aug", "agosto", "ago"),
            ("september", "sep", "sept", "septiembre", "setiembre", "set"),
            ("october", "oct", "octubre"),
            ("november", "nov", "noviembre"),
            ("december", "dec", "diciembre", "dic"),
        ],
        start=1,
    )
    for name in names
}
FILLER_WORDS = {"de", "del", "of", "the"}
TOKEN = re.compile(r"\d+|[^\W\d_]+")


class BirthDateError(ValueError):
    """``code`` says what is wrong: missing_month, missing_day, missing_year, month,
    day, year or invalid."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _plain(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).rstrip(".")


def month_number(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    number = MONTH_NAMES.get(_plain(text))
    if number is None:
        raise BirthDateError("month")
    return number


def full_year(text: str, today: date) -> int:
    """Four digits as given; two digits in the last hundred years (56 is 1956)."""
    if not text.isdigit() or len(text) not in (2, 4):
        raise BirthDateError("year")
    year = int(text)
    if len(text) == 2:
        year += 2000 if year <= today.year % 100 else 1900
    return year


def birth_date_from_parts(month: str, day: str, year: str, today: date) -> date:
    """The date from the three boxes, each stripped of spaces."""
    month, day, year = (part.strip().rstrip(".,") for part in (month, day, year))
    for code, part in (("missing_month", month), ("missing_day", day), ("missing_year", year)):
        if not part:
            raise BirthDateError(code)
    month_no = month_number(month)
    if not 1 <= month_no <= 12:
        raise BirthDateError("month")
    if not day.isdigit() or not 1 <= int(day) <= 31:
        raise BirthDateError("day")
    year_no = full_year(year, today)
    try:
        return date(year_no, month_no, int(day))
    except ValueError:
        raise BirthDateError("invalid") from None  # April 31, February 29 of 1957


def parse_birth_date(text: str, today: date) -> date:
    """The date in one piece of text: ISO, US month/day/year, or with a month name."""
    tokens = [t for t in TOKEN.findall(text) if _plain(t) not in FILLER_WORDS]
    if len(tokens) != 3:
        raise BirthDateError("invalid")
    words = [t for t in tokens if not t.isdigit()]
    if len(words) > 1:
        raise BirthDateError("invalid")
    if words:
        numbers = [t for t in tokens if t.isdigit()]
        year = next((n for n in numbers if len(n) == 4), numbers[-1])
        day = next(n for n in numbers if n is not year)
        return birth_date_from_parts(words[0], day, year, today)
    first, second, third = tokens
    if len(first) == 4:  # 1956-04-15
        return birth_date_from_parts(second, third, first, today)
    if int(first) > 12 >= int(second):  # 15/4/1956 can only be day first
        return birth_date_from_parts(second, first, third, today)
    return birth_date_from_parts(first, second, third, today)

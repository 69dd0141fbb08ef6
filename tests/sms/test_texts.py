"""Templates: only known placeholders, the default texts valid and short."""

from __future__ import annotations

import pytest

from scheduler.content import LANGUAGES, SMS_TEMPLATE_KEYS, default_text
from scheduler.sms.segments import segment_count
from scheduler.sms.texts import (
    APPOINTMENT_FIELDS,
    TEMPLATE_FIELDS,
    TemplateError,
    check_template,
    fill_template,
    placeholders_in,
)

# Longest values a real text carries, to measure the defaults against.
SAMPLE = {
    "clinic": "Freedom Spine & Pain Center",
    "clinic_phone": "(210) 920-8945",
    "booking_url": "https://book.freedomspine.example/",
    "first_name": "Guadalupe",
    "location": "San Antonio",
    "date": "Wed, Dec 30",
    "time": "12:30 PM",
    "reference": "SAT-7K3Q",
    "manage_url": "https://book.freedomspine.example/manage/SAT-7K3Q/"
    "dm8aOO6Q-b0V_WfL.awSILA.5eu4zIMNg4_N-1jJZ0NxEdq83pg",
    "instructions_url": "https://book.freedomspine.example/prepare/san-antonio",
}
SAMPLE_IN = {
    "es": {
        "date": "mié, 30 dic",
        "time": "12:30 p.m.",
        "instructions_url": SAMPLE["instructions_url"] + "?lang=es",
    }
}


def test_placeholders_are_plain_names_only() -> None:
    assert placeholders_in("Hi {first_name}, {{literal}} at {time}") == ["first_name", "time"]
    for bad in ("{first_name.__class__}", "{date!r}", "{time:>40}", "{0}", "{}", "{first_name"):
        with pytest.raises(TemplateError):
            placeholders_in(bad)


def test_unknown_placeholders_are_refused_with_the_allowed_list() -> None:
    with pytest.raises(TemplateError, match=r"Unknown placeholder \{last_name\}.*\{first_name\}"):
        check_template("sms_reminder", "Hi {first_name} {last_name}")
    with pytest.raises(TemplateError, match=r"\{date_of_birth\}"):
        check_template("sms_confirmation", "{date_of_birth}")
    # A reply without an appointment cannot name one.
    with pytest.raises(TemplateError, match=r"\{first_name\}"):
        check_template("sms_help_reply", "Hi {first_name}")


def test_no_placeholder_can_reveal_more_than_the_minimum() -> None:
    forbidden = {"last_name", "full_name", "date_of_birth", "dob", "email", "diagnosis"}
    forbidden |= {"conservative_treatment", "screening", "procedure", "phone"}
    for fields in TEMPLATE_FIELDS.values():
        assert not fields & forbidden
    assert set(TEMPLATE_FIELDS) == set(SMS_TEMPLATE_KEYS)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("key", SMS_TEMPLATE_KEYS)
def test_default_texts_are_valid_and_fit_two_segments(key: str, language: str) -> None:
    template = default_text(key, language)
    check_template(key, template)
    text = fill_template(key, template, SAMPLE | SAMPLE_IN.get(language, {}))
    assert "{" not in text and "}" not in text
    count = segment_count(text)
    assert count.encoding == "GSM-7", f"{key}.{language} needs UCS-2: {text}"
    assert count.segments <= 2, f"{key}.{language}: {count}: {text}"
    lowered = text.lower()
    for word in ("mild", "stenosis", "estenosis", "lumbar", "garza", "1956"):
        assert word not in lowered.split(), f"{key}.{language} says {word!r}"


def test_segment_counts() -> None:
    assert segment_count("x" * 160).segments == 1
    assert segment_count("x" * 161).segments == 2
    assert segment_count("x" * 306).segments == 2
    assert segment_count("€" * 80).segments == 1  # extension characters count twice
    assert segment_count("€" * 81).segments == 2
    assert segment_count("más" + "x" * 67).encoding == "UCS-2"
    assert segment_count("á" * 70).segments == 1
    assert segment_count("á" * 71).segments == 2
    assert segment_count("😀" * 35).segments == 1  # two UTF-16 units each
    assert segment_count("¿Preguntas? Llame al teléfono").encoding == "GSM-7"


def test_fill_template_uses_only_what_it_is_given() -> None:
    values = dict.fromkeys(APPOINTMENT_FIELDS, "x")
    assert fill_template("sms_reminder", "{first_name} {time}", values) == "x x"

"""The message catalog: every message of the code has a Spanish translation, and the
helpers that find English left on a Spanish page (used by the page tests)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "scheduler" / "translations"
SPANISH_PO = TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.po"
# The keywords of README's `pybabel extract` command (plus Babel's defaults).
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def source_messages() -> set[str | tuple[str, ...]]:
    """Every message the code and templates ask gettext for, read as pybabel extract reads them."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"trimmed": "true"}}
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT / "scheduler"), method_map, options, keywords=KEYWORDS
    ):
        found.add(message)
    return found


def spanish_catalog() -> Any:
    with SPANISH_PO.open("rb") as po:
        return read_po(po, locale="es")


def test_every_message_of_the_code_has_a_spanish_translation() -> None:
    catalog = spanish_catalog()
    untranslated = []
    for message in sorted(source_messages(), key=str):
        entry = catalog.get(message if isinstance(message, str) else message[0])
        strings = (
            (
                [entry.string]
                if entry and isinstance(entry.string, str)
                else list(entry.string or ())
            )
            if entry
            else []
        )
        if entry is None or entry.fuzzy or not strings or not all(strings):
            untranslated.append(message)
    assert untranslated == [], "messages without a Spanish translation (see README: Translations)"


def test_the_catalog_has_no_empty_fuzzy_or_broken_entries() -> None:
    catalog = spanish_catalog()
    problems = [
        (message.id, [str(error) for error in errors]) for message, errors in catalog.check()
    ]
    assert problems == []
    for message in catalog:
        if message.id:
            assert not message.fuzzy, message.id
            assert message.string and all(message.string), message.id


def test_the_template_lists_what_the_code_uses() -> None:
    with (TRANSLATIONS / "messages.pot").open("rb") as pot:
        template = {m.id if isinstance(m.id, str) else tuple(m.id) for m in read_po(pot) if m.id}
    assert template == source_messages()


def plain(value: Any) -> Any:
    return value if isinstance(value, str) else tuple(value)


def test_the_compiled_catalog_matches_the_po_file() -> None:
    """bin/run and bin/test compile it (pybabel compile); a stale .mo would show old Spanish."""
    with SPANISH_PO.with_suffix(".mo").open("rb") as mo:
        compiled = {plain(m.id): plain(m.string) for m in read_mo(mo) if m.id}
    assert compiled == {plain(m.id): plain(m.string) for m in spanish_catalog() if m.id}


class VisibleText(HTMLParser):
    """The text a person sees or hears: text nodes and labels, minus what is marked English."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.english_depth: list[str] = []
        self.skip: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "style"):
            self.skip.append(tag)
        if values.get("lang") == "en" and tag != "html":
            self.english_depth.append(tag)
        elif self.english_depth and tag == self.english_depth[-1]:
            self.english_depth.append(tag)
        if not self.english_depth:
            for name in ("aria-label", "title", "alt", "placeholder"):
                if values.get(name):
                    self.parts.append(values[name] or "")

    def handle_endtag(self, tag: str) -> None:
        if self.skip and tag == self.skip[-1]:
            self.skip.pop()
        if self.english_depth and tag == self.english_depth[-1]:
            self.english_depth.pop()

    def handle_data(self, data: str) -> None:
        if not self.skip and not self.english_depth:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    text = " ".join(" ".join(parser.parts).split())
    return re.sub(r"https?://\S+", " ", text)


def english_phrases() -> list[str]:
    """Literal pieces of every catalog message whose Spanish differs from its English."""
    phrases = set()
    for message in spanish_catalog():
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if ids == strings:
            continue
        for text in ids:
            for piece in re.split(r"%\(\w+\)[sd]|[:;.,?!()→←]", text):
                piece = piece.strip()
                if len(piece) >= 2 and piece not in strings[0]:
                    phrases.add(piece)
    return sorted(phrases)


def english_found(html: str, phrases: list[str]) -> list[str]:
    text = visible_text(html)
    return [p for p in phrases if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text)]

"""How many SMS segments a text takes (what carriers bill and what splits on phones).

A text in the GSM 03.38 alphabet takes 160 characters in one segment, 153
per segment when split (the extension characters count twice). Any other
character makes the whole text UCS-2: 70 in one segment, 67 per part,
counted in UTF-16 units (an emoji counts twice).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

from anyascii import anyascii

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # GSM-7 or UCS-2
    characters: int
    segments: int


def segment_count(text: str) -> SegmentCount:
    if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text):
        units = sum(2 if ch in GSM_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else math.ceil(units / multi)
    return SegmentCount(encoding=encoding, characters=len(text), segments=max(segments, 1))


def gsm_safe(value: str) -> str:
    """``value`` with only the characters GSM-7 lacks transliterated (María -> Maria,
    Łukasz -> Lukasz, 李 -> Li), so one accented name cannot turn a whole text into
    UCS-2 and double its segments; é, ñ, ü and the rest of GSM-7 stay as they are."""
    out = []
    for ch in unicodedata.normalize("NFC", value):
        if ch in GSM_BASIC or ch in GSM_EXTENSION:
            out.append(ch)
        else:
            out.append("".join(c for c in anyascii(ch) if c in GSM_BASIC))
    return "".join(out)

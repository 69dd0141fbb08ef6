"""What a staff member should think twice about before texting it: health details.

A text can be read by anyone holding the patient's phone, so the reply editor
warns (it does not forbid) when an answer carries a date of birth or a date
that looks like one, a diagnosis, or the name of the procedure. Appointment
dates without a year ("Thu Dec 3 at 9:00") are ordinary and not warned about.

Pure: no Flask, no database.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

# Spine and pain diagnoses, English and Spanish, compared without accents or case.
DIAGNOSIS_WORDS = (
    "stenosis",
    "estenosis",
    "herniated",
    "herniation",
    "hernia",
    "herniada",
    "herniado",
    "sciatica",
    "ciatica",
    "spondylolisthesis",
    "espondilolistesis",
    "spondylosis",
    "espondilosis",
    "degenerative",
    "degenerativa",
    "degenerativo",
    "arthritis",
    "artritis",
    "osteoarthritis",
    "osteoartritis",
    "neuropathy",
    "neuropatia",
    "radiculopathy",
    "radiculopatia",
    "fracture",
    "fractura",
    "scoliosis",
    "escoliosis",
    "osteoporosis",
    "myelopathy",
    "mielopatia",
    "claudication",
    "claudicacion",
    "diagnosis",
    "diagnostico",
)
_DIAGNOSIS = re.compile(r"\b(" + "|".join(DIAGNOSIS_WORDS) + r")\b", re.IGNORECASE)

# The procedure: "MILD" in capitals (the ordinary word "mild" is not it), or its names.
_PROCEDURE_CAPS = re.compile(r"\bM\.?I\.?L\.?D\.?(?![A-Za-z])")
_PROCEDURE_NAMES = re.compile(
    r"\b(mild\s+(procedure|procedimiento|treatment|tratamiento)"
    r"|(procedure|procedimiento)\s+mild"
    r"|(minimally\s+invasive\s+)?lumbar\s+decompression"
    r"|descompresion\s+lumbar"
    r"|decompression\s+surgery|cirugia\s+de\s+descompresion)\b",
    re.IGNORECASE,
)

_MONTHS = (
    "jan|january|feb|february|mar|march|apr|april|may|jun|june|jul|july|aug|august|"
    "sep|sept|september|oct|october|nov|november|dec|december|"
    "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|"
    "noviembre|diciembre"
)
# Dates with a year: 3/14/1956, 14-03-56, 1956-03-14, March 14, 1956, 14 de marzo de 1956.
_DATE_WITH_YEAR = re.compile(
    r"\b\d{1,2}\s*[/.-]\s*\d{1,2}\s*[/.-]\s*\d{2,4}\b"
    r"|\b\d{4}\s*[/.-]\s*\d{1,2}\s*[/.-]\s*\d{1,2}\b"
    rf"|\b({_MONTHS})\.?\s+\d{{1,2}}(st|nd|rd|th)?,?\s+\d{{4}}\b"
    rf"|\b\d{{1,2}}\s+(de\s+)?({_MONTHS})\.?,?\s+(de\s+|del\s+)?\d{{4}}\b",
    re.IGNORECASE,
)
_BIRTH_WORDS = re.compile(
    r"\b(dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*date|birthday|born"
    r"|fecha\s+de\s+nacimiento|nacimiento|nacio|nacida|nacido|cumpleanos)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ReplyWarning:
    kind: str  # date_of_birth, date, diagnosis, procedure
    found: str  # the words in the reply that raised it

    @property
    def message(self) -> str:
        return {
            "date_of_birth": f"It contains the patient's date of birth (“{self.found}”).",
            "date": f"It contains a date that may be a date of birth (“{self.found}”).",
            "diagnosis": f"It names a diagnosis (“{self.found}”).",
            "procedure": f"It names the procedure (“{self.found}”).",
        }[self.kind]


def plain(text: str) -> str:
    """Without accents (ciática -> ciatica), same length for the ASCII it keeps."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def birth_date_spellings(born: date) -> list[str]:
    """How a date of birth is commonly typed: 3/14/1956, 03/14/56, 1956-03-14, ..."""
    m, d, y = born.month, born.day, born.year
    forms = set()
    for month in (str(m), f"{m:02d}"):
        for day in (str(d), f"{d:02d}"):
            for year in (str(y), f"{y % 100:02d}"):
                for sep in "/-.":
                    forms.add(f"{month}{sep}{day}{sep}{year}")
                    forms.add(f"{day}{sep}{month}{sep}{year}")
    forms.add(born.isoformat())
    return sorted(forms)


def reply_warnings(text: str, date_of_birth: date | None = None) -> list[ReplyWarning]:
    """Every reason to look again before sending ``text``, at most one of each kind."""
    warnings: list[ReplyWarning] = []
    flat = plain(text)
    if date_of_birth is not None:
        compact = re.sub(r"\s+", "", flat)
        for spelling in birth_date_spellings(date_of_birth):
            if re.search(rf"(?<!\d){re.escape(spelling)}(?!\d)", compact):
                warnings.append(ReplyWarning("date_of_birth", spelling))
                break
    if not any(w.kind == "date_of_birth" for w in warnings):
        dated = _DATE_WITH_YEAR.search(flat) or _BIRTH_WORDS.search(flat)
        if dated:
            warnings.append(ReplyWarning("date", dated.group(0)))
    diagnosis = _DIAGNOSIS.search(flat)
    if diagnosis:
        warnings.append(ReplyWarning("diagnosis", diagnosis.group(0)))
    procedure = _PROCEDURE_CAPS.search(flat) or _PROCEDURE_NAMES.search(flat)
    if procedure:
        warnings.append(ReplyWarning("procedure", procedure.group(0)))
    return warnings

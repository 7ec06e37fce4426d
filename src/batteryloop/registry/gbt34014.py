"""GB/T 34014-2017 traction battery codes: parse, validate and compose the 24-character code.

Every pack, module and cell sold in China carries this code, and the traceability platform keys
batteries by it, so the registry must read it exactly (strict mode, for codes we issue) and
forgivingly (lenient mode, for codes typed or scanned from real labels). Layout and code tables
come from ``data/gbt34014.toml``, which cites a source for each table and marks the ones we could
not confirm against a public copy of the standard (``verified = false``).
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass
from functools import cache

from batteryloop.errors import ValidationFailed
from batteryloop.registry import facts

STANDARD = "GB/T 34014"
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]")


@dataclass(frozen=True)
class GBT34014Code:
    """A decoded code; ``lenient``/``warnings`` say what a lenient parse had to tolerate."""

    code: str  # normalised (upper case, stripped)
    manufacturer: str
    product_type: str  # "pack" | "module" | "cell"
    battery_type: str  # machine name from the TOML, e.g. "LFP"; "UNKNOWN" (lenient only)
    battery_type_code: str
    specification: str
    traceability: str
    production_date: datetime.date  # year resolved in the latest cycle not after the reference year
    serial: str
    lenient: bool
    warnings: tuple[str, ...]


class CodeError(ValidationFailed):
    """A code that breaks the standard, located at its first bad character (1-based position)."""

    def __init__(self, code: str, *, position: int, field: str, expected: str, got: str) -> None:
        self.code = code
        self.position = position
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(
            f"position {position} ({field}): expected {expected}, got {got}",
            location=f"{STANDARD} code {code!r}",
            details={"position": position, "field": field, "expected": expected, "got": got},
        )


@dataclass(frozen=True)
class _Segment:
    field: str
    label: str
    start: int  # 1-based position of the first character
    length: int
    alphabet: str
    lenient: str

    @property
    def expected(self) -> str:
        return f"one of {_describe(self.alphabet)}"

    def slice(self, text: str) -> str:
        return text[self.start - 1 : self.start - 1 + self.length]


@dataclass(frozen=True)
class _Tables:
    length: int
    segments: tuple[_Segment, ...]
    product_types: dict[str, str]  # letter -> "pack" | "module" | "cell"
    battery_types: dict[str, str]  # letter -> machine name
    symbols: str  # date symbols; symbol i (1-based) stands for the number i
    year_base: int

    def segment(self, field: str) -> _Segment:
        return next(s for s in self.segments if s.field == field)


@cache
def _tables() -> _Tables:
    """The TOML, read once and turned into segments with their alphabets."""
    raw = facts.load("gbt34014")
    date = raw["date"]
    product_types = dict(raw["product_type"]["codes"])
    battery_types = {row["code"]: row["name"] for row in raw["battery_type"]["codes"]}
    alphabets = {
        **raw["alphabets"],
        "product_type": "".join(product_types),
        "battery_type": "".join(battery_types),
        "year": date["symbols"],
        "month": date["symbols"][: date["months"]],
        "day": date["symbols"],
    }
    segments, start = [], 1
    for row in raw["layout"]:
        alphabet = alphabets[row["alphabet"]]
        lenient = alphabets[row.get("lenient", row["alphabet"])]
        length = row["length"]
        segments.append(_Segment(row["field"], row["label"], start, length, alphabet, lenient))
        start += length
    if start - 1 != raw["length"]:
        raise RuntimeError(f"gbt34014.toml: layout has {start - 1} characters, not {raw['length']}")
    return _Tables(
        length=raw["length"],
        segments=tuple(segments),
        product_types=product_types,
        battery_types=battery_types,
        symbols=date["symbols"],
        year_base=date["year_base"],
    )


def _describe(alphabet: str) -> str:
    """'123456789ABC' -> '1-9, A-C': runs of three or more consecutive characters as ranges."""
    parts: list[str] = []
    i = 0
    while i < len(alphabet):
        j = i
        while j + 1 < len(alphabet) and ord(alphabet[j + 1]) == ord(alphabet[j]) + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{alphabet[i]}-{alphabet[j]}")
        else:
            parts.extend(alphabet[i : j + 1])
        i = j + 1
    return ", ".join(parts)


def _normalise(code: str) -> tuple[str, list[str]]:
    """Lenient clean-up of a label as typed or scanned, with a warning for each change made."""
    warnings: list[str] = []
    text = code.strip()
    if text != code:
        warnings.append("removed surrounding whitespace")
    joined = _SEPARATORS.sub("", text)
    if joined != text:
        warnings.append("removed separators (spaces, hyphens)")
    upper = "".join(c.upper() if "a" <= c <= "z" else c for c in joined)  # ASCII only: keeps length
    if upper != joined:
        warnings.append("converted lower case to upper case")
    return upper, warnings


def _resolve_year(value: int, reference_year: int, tables: _Tables) -> int:
    """The year of symbol ``value`` in the latest cycle not after ``reference_year``.

    A year whose first cycle is already after the reference year decodes to that first cycle.
    """
    first = tables.year_base + value
    return first + max(0, (reference_year - first) // len(tables.symbols)) * len(tables.symbols)


def parse(code: str, *, lenient: bool = False, reference_year: int | None = None) -> GBT34014Code:
    """Decode ``code``; raise :class:`CodeError` at the first character that breaks the standard.

    Strict mode takes the code exactly as the standard writes it. Lenient mode, for real labels,
    first drops surrounding whitespace and separators and upper-cases, then also accepts letters
    in the serial and unknown battery-type letters, listing each tolerance in ``warnings``. Both
    modes reject a wrong length and an impossible date. ``reference_year`` (default: this year)
    picks the cycle of the repeating year code.
    """
    tables = _tables()
    text, warnings = _normalise(code) if lenient else (code, [])
    if len(text) != tables.length:
        raise CodeError(
            text,
            position=min(len(text), tables.length) + 1,
            field="length",
            expected=f"{tables.length} characters",
            got=str(len(text)),
        )
    for seg in tables.segments:
        allowed = seg.lenient if lenient else seg.alphabet
        value = seg.slice(text)
        for offset, ch in enumerate(value):
            if ch not in allowed:
                raise CodeError(
                    text,
                    position=seg.start + offset,
                    field=seg.label,
                    expected=f"one of {_describe(allowed)}",
                    got=repr(ch),
                )
        if any(ch not in seg.alphabet for ch in value):
            warnings.append(f"{seg.label} {value!r} is not {seg.expected}; accepted leniently")

    year_ch, month_ch, day_ch = (tables.segment(f).slice(text) for f in ("year", "month", "day"))
    ref = datetime.date.today().year if reference_year is None else reference_year
    year = _resolve_year(tables.symbols.index(year_ch) + 1, ref, tables)
    month = tables.symbols.index(month_ch) + 1
    day = tables.symbols.index(day_ch) + 1
    last = calendar.monthrange(year, month)[1]
    if day > last:
        raise CodeError(
            text,
            position=tables.segment("day").start,
            field=tables.segment("day").label,
            expected=f"a day of {year}-{month:02d} (1-{last})",
            got=f"{day_ch!r} (day {day})",
        )

    battery_code = tables.segment("battery_type").slice(text)
    return GBT34014Code(
        code=text,
        manufacturer=tables.segment("manufacturer").slice(text),
        product_type=tables.product_types[tables.segment("product_type").slice(text)],
        battery_type=tables.battery_types.get(battery_code, "UNKNOWN"),
        battery_type_code=battery_code,
        specification=tables.segment("specification").slice(text),
        traceability=tables.segment("traceability").slice(text),
        production_date=datetime.date(year, month, day),
        serial=tables.segment("serial").slice(text),
        lenient=bool(warnings),
        warnings=tuple(warnings),
    )


def is_valid(code: str, *, lenient: bool = False) -> bool:
    """Whether :func:`parse` accepts ``code`` (for filters and checks that need no reason)."""
    if not isinstance(code, str):
        return False
    try:
        parse(code, lenient=lenient)
    except CodeError:
        return False
    return True


def _letter(value: str, table: dict[str, str]) -> str | None:
    """The table letter for a name (any case) or for the letter itself."""
    by_name = {name.casefold(): letter for letter, name in table.items()}
    return by_name.get(value.casefold(), value if value in table else None)


def compose(
    manufacturer: str,
    product_type: str,
    battery_type: str,
    specification: str,
    traceability: str,
    production_date: datetime.date,
    serial: str,
) -> str:
    """Build a strictly valid code (demo data, tests, labels we issue) or raise :class:`CodeError`.

    ``product_type`` is "pack"/"module"/"cell" or its letter; ``battery_type`` a machine name
    such as "LFP" or its letter. Errors name the position the bad part would occupy.
    """
    tables = _tables()
    draft = "".join([manufacturer, product_type, battery_type, specification, traceability, serial])

    def fail(field: str, expected: str, got: str) -> CodeError:
        seg = tables.segment(field)
        return CodeError(draft, position=seg.start, field=seg.label, expected=expected, got=got)

    pt = _letter(product_type, tables.product_types)
    if pt is None:
        names, letters = ", ".join(tables.product_types.values()), ", ".join(tables.product_types)
        raise fail("product_type", f"one of {names} (or {letters})", repr(product_type))
    bt = _letter(battery_type, tables.battery_types)
    if bt is None:
        names = ", ".join(tables.battery_types.values())
        letters = _describe("".join(tables.battery_types))
        raise fail("battery_type", f"one of {names} (or {letters})", repr(battery_type))
    first_year = tables.year_base + 1
    if production_date.year < first_year:
        raise fail("year", f"a year from {first_year}", str(production_date.year))
    symbols = tables.symbols
    date_code = (
        symbols[(production_date.year - first_year) % len(symbols)]
        + symbols[production_date.month - 1]
        + symbols[production_date.day - 1]
    )
    values = {
        "manufacturer": manufacturer,
        "specification": specification,
        "traceability": traceability,
        "serial": serial,
    }
    for field, value in values.items():
        seg = tables.segment(field)
        if len(value) != seg.length:
            raise fail(field, f"{seg.length} characters", str(len(value)))
    code = "".join([manufacturer, pt, bt, specification, traceability, date_code, serial])
    parse(code, reference_year=production_date.year)  # checks every alphabet, positions exact
    return code

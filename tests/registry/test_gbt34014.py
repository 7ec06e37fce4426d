"""GB/T 34014-2017 battery codes: round trips, exact error positions, strict vs lenient, dates.

The expectations below restate the layout independently of data/gbt34014.toml, so a wrong table
there fails here.
"""

from __future__ import annotations

import string
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batteryloop.errors import ValidationFailed
from batteryloop.registry import facts
from batteryloop.registry.gbt34014 import CodeError, compose, is_valid, parse

ALNUM = string.digits + string.ascii_uppercase
DATE_SYMBOLS = "123456789ABCDEFGHJKLMNPRSTUVWXY"  # symbol i stands for i; year = 2010 + i
BATTERY_NAMES = dict(
    zip("ABCDEFGZ", ["NiMH", "LFP", "LMO", "LCO", "NMC", "SUPERCAP", "LTO", "OTHER"], strict=True)
)
# (1-based position, field label, allowed characters in strict mode)
LAYOUT = (
    [(p, "manufacturer code", ALNUM) for p in (1, 2, 3)]
    + [(4, "product type", "PMC"), (5, "battery type", "ABCDEFGZ")]
    + [(p, "specification code", ALNUM) for p in (6, 7)]
    + [(p, "traceability information", ALNUM) for p in range(8, 15)]
    + [(15, "production year", DATE_SYMBOLS), (16, "production month", DATE_SYMBOLS[:12])]
    + [(17, "production day", DATE_SYMBOLS)]
    + [(p, "serial number", string.digits) for p in range(18, 25)]
)

# A CATL 302Ah LFP cell label, as printed (https://alladin.pk/pages/lithium-cell-verification).
CATL = "001CB240000003B3C0221953"
VALID = "ABCPE12TRACE99L6F0000042"  # pack, NMC, 2030-06-15


def with_char(code: str, position: int, ch: str) -> str:
    return code[: position - 1] + ch + code[position:]


def with_date(code: str, date_code: str) -> str:
    return code[:14] + date_code + code[17:]


def test_decodes_a_real_cell_label() -> None:
    c = parse(CATL, reference_year=2024)
    assert (c.manufacturer, c.product_type, c.battery_type) == ("001", "cell", "LFP")
    assert c.battery_type_code == "B"
    assert (c.specification, c.traceability, c.serial) == ("24", "0000003", "0221953")
    assert c.production_date == date(2021, 3, 12)
    assert (c.code, c.lenient, c.warnings) == (CATL, False, ())


@pytest.mark.parametrize(
    ("date_code", "expected"),
    [
        ("111", date(2011, 1, 1)),
        ("7A1", date(2017, 10, 1)),
        ("AB9", date(2020, 11, 9)),
        ("BCY", date(2021, 12, 31)),
        ("L6F", date(2030, 6, 15)),
        ("UCX", date(2037, 12, 30)),
    ],
)
def test_date_symbols(date_code: str, expected: date) -> None:
    assert parse(with_date(VALID, date_code), reference_year=2041).production_date == expected


def test_year_code_cycles_every_31_years_relative_to_reference_year() -> None:
    code = with_date(VALID, "111")  # 2011 or 2042 or ...
    assert parse(code, reference_year=2041).production_date.year == 2011
    assert parse(code, reference_year=2042).production_date.year == 2042
    assert parse(code, reference_year=2100).production_date.year == 2073
    # no cycle before the reference year: the first cycle
    assert parse(with_date(VALID, "L61"), reference_year=2025).production_date.year == 2030


codes = st.fixed_dictionaries(
    {
        "manufacturer": st.text(ALNUM, min_size=3, max_size=3),
        "product_type": st.sampled_from(["pack", "module", "cell"]),
        "battery_type": st.sampled_from(sorted(BATTERY_NAMES.values())),
        "specification": st.text(ALNUM, min_size=2, max_size=2),
        "traceability": st.text(ALNUM, min_size=7, max_size=7),
        "production_date": st.dates(date(2011, 1, 1), date(2200, 12, 31)),
        "serial": st.text(string.digits, min_size=7, max_size=7),
    }
)


@given(codes, st.integers(0, 30))
def test_compose_parse_round_trip(parts: dict, years_later: int) -> None:
    code = compose(**parts)
    assert len(code) == 24 and is_valid(code)
    c = parse(code, reference_year=parts["production_date"].year + years_later)
    assert c.code == code
    assert (c.lenient, c.warnings) == (False, ())
    assert c.battery_type_code == code[4] and BATTERY_NAMES[code[4]] == c.battery_type
    for field, value in parts.items():
        assert getattr(c, field) == value, field
    assert parse(code, lenient=True, reference_year=c.production_date.year) == c


@given(codes, st.data())
def test_lenient_reads_labels_as_typed(parts: dict, data: st.DataObject) -> None:
    code = compose(**parts)
    cut = data.draw(st.integers(1, 23))
    sep = data.draw(st.sampled_from([" ", "-", " - "]))
    typed = f"  {code[:cut].lower()}{sep}{code[cut:]}\n"
    c = parse(typed, lenient=True, reference_year=parts["production_date"].year)
    assert c.code == code and c.production_date == parts["production_date"]
    assert c.lenient and "removed separators (spaces, hyphens)" in c.warnings
    assert "removed surrounding whitespace" in c.warnings
    with pytest.raises(CodeError):
        parse(typed)


@pytest.mark.parametrize(("position", "label", "allowed"), LAYOUT)
def test_each_position_is_named_in_the_error(position: int, label: str, allowed: str) -> None:
    with pytest.raises(CodeError) as err:
        parse(with_char(VALID, position, "*"))
    e = err.value
    assert (e.position, e.field, e.got) == (position, label, "'*'")
    assert f"position {position} ({label})" in str(e)
    assert str(e).startswith(f"GB/T 34014 code '{with_char(VALID, position, '*')}': ")


@given(st.sampled_from(LAYOUT), st.characters(codec="ascii"))
def test_any_character_outside_the_alphabet_fails_at_its_position(spot: tuple, ch: str) -> None:
    position, label, allowed = spot
    bad = with_char(VALID, position, ch)
    if ch in allowed:
        return  # valid characters are covered by the round trip
    with pytest.raises(CodeError) as err:
        parse(bad, reference_year=2041)
    assert (err.value.position, err.value.field) == (position, label)


@pytest.mark.parametrize(
    ("position", "ch", "expected"),
    [
        (4, "X", "one of P, M, C"),
        (5, "H", "one of A-G, Z"),
        (15, "0", "one of 1-9, A-H, J-N, P, R-Y"),
        (15, "I", "one of 1-9, A-H, J-N, P, R-Y"),
        (16, "D", "one of 1-9, A-C"),
        (17, "Z", "one of 1-9, A-H, J-N, P, R-Y"),
        (17, "O", "one of 1-9, A-H, J-N, P, R-Y"),
        (20, "A", "one of 0-9"),
        (2, "b", "one of 0-9, A-Z"),
    ],
)
def test_error_message_states_the_expectation(position: int, ch: str, expected: str) -> None:
    with pytest.raises(CodeError) as err:
        parse(with_char(VALID, position, ch))
    assert err.value.expected == expected
    where = f"position {position} ({err.value.field})"
    assert str(err.value).endswith(f"{where}: expected {expected}, got {ch!r}")


def test_first_problem_is_reported() -> None:
    bad = with_char(with_char(VALID, 20, "A"), 5, "H")
    with pytest.raises(CodeError) as err:
        parse(bad)
    assert err.value.position == 5


@pytest.mark.parametrize(
    ("code", "position"), [(VALID[:-1], 24), (VALID + "1", 25), ("", 1), (VALID[:10], 11)]
)
@pytest.mark.parametrize("lenient", [False, True])
def test_wrong_length(code: str, position: int, lenient: bool) -> None:
    with pytest.raises(CodeError) as err:
        parse(code, lenient=lenient)
    assert (err.value.position, err.value.expected) == (position, "24 characters")
    assert f"expected 24 characters, got {len(code)}" in str(err.value)


@pytest.mark.parametrize(
    ("date_code", "message"),
    [
        ("D2X", "expected a day of 2023-02 (1-28), got 'X' (day 30)"),
        ("D2W", "expected a day of 2023-02 (1-28), got 'W' (day 29)"),
        ("E4Y", "expected a day of 2024-04 (1-30), got 'Y' (day 31)"),
        ("BBY", "expected a day of 2021-11 (1-30), got 'Y' (day 31)"),
    ],
)
@pytest.mark.parametrize("lenient", [False, True])
def test_impossible_dates_fail_at_the_day(date_code: str, message: str, lenient: bool) -> None:
    with pytest.raises(CodeError) as err:
        parse(with_date(VALID, date_code), lenient=lenient, reference_year=2030)
    assert err.value.position == 17
    assert str(err.value).endswith(f"position 17 (production day): {message}")


def test_leap_day_depends_on_resolved_year() -> None:
    assert parse(with_date(VALID, "E2W"), reference_year=2030).production_date == date(2024, 2, 29)
    with pytest.raises(CodeError):
        parse(with_date(VALID, "F2W"), reference_year=2030)


def test_lenient_tolerates_letters_in_serial_and_unknown_battery_types() -> None:
    label = with_char(with_char(VALID, 5, "H"), 20, "K")
    with pytest.raises(CodeError) as err:
        parse(label)
    assert err.value.position == 5
    c = parse(label, lenient=True, reference_year=2030)
    assert (c.battery_type, c.battery_type_code, c.serial) == ("UNKNOWN", "H", "00K0042")
    assert c.lenient
    assert c.warnings == (
        "battery type 'H' is not one of A-G, Z; accepted leniently",
        "serial number '00K0042' is not one of 0-9; accepted leniently",
    )


@pytest.mark.parametrize(("position", "ch"), [(4, "X"), (15, "0"), (16, "D"), (9, "*"), (22, "#")])
def test_lenient_still_checks_the_other_alphabets(position: int, ch: str) -> None:
    with pytest.raises(CodeError) as err:
        parse(with_char(VALID, position, ch), lenient=True)
    assert err.value.position == position


def test_lenient_without_deviations_is_not_flagged() -> None:
    c = parse(VALID, lenient=True, reference_year=2030)
    assert (c.lenient, c.warnings) == (False, ())
    assert c == parse(VALID, reference_year=2030)


def test_lenient_positions_refer_to_the_normalised_code() -> None:
    with pytest.raises(CodeError) as err:
        parse("abc-xe12 trace99 l6f 0000042", lenient=True)
    assert err.value.position == 4 and err.value.code == "ABCXE12TRACE99L6F0000042"


def test_code_error_is_a_validation_failure_with_details() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse(with_char(VALID, 4, "X"))
    assert err.value.status == 422
    assert err.value.details == {
        "position": 4,
        "field": "product type",
        "expected": "one of P, M, C",
        "got": "'X'",
    }


def test_is_valid() -> None:
    assert is_valid(VALID) and is_valid(CATL)
    assert not is_valid(VALID.lower())
    assert is_valid(VALID.lower(), lenient=True)
    assert not is_valid(VALID[:-1], lenient=True)
    assert not is_valid(None)  # type: ignore[arg-type]


def test_compose_accepts_letters_and_names() -> None:
    by_name = compose("001", "cell", "lfp", "24", "0000003", date(2021, 3, 12), "0221953")
    by_letter = compose("001", "C", "B", "24", "0000003", date(2021, 3, 12), "0221953")
    assert by_name == by_letter == CATL


@pytest.mark.parametrize(
    ("change", "position", "expected"),
    [
        ({"manufacturer": "AB"}, 1, "3 characters"),
        ({"product_type": "tray"}, 4, "one of pack, module, cell (or P, M, C)"),
        (
            {"battery_type": "NaIon"},
            5,
            "one of NiMH, LFP, LMO, LCO, NMC, SUPERCAP, LTO, OTHER (or A-G, Z)",
        ),
        ({"specification": "1"}, 6, "2 characters"),
        ({"traceability": "TRACE9"}, 8, "7 characters"),
        ({"production_date": date(2010, 12, 31)}, 15, "a year from 2011"),
        ({"serial": "12345678"}, 18, "7 characters"),
        ({"serial": "00000A1"}, 23, "one of 0-9"),
        ({"traceability": "TRACE-9"}, 13, "one of 0-9, A-Z"),
    ],
)
def test_compose_rejects_bad_parts(change: dict, position: int, expected: str) -> None:
    parts = {
        "manufacturer": "ABC",
        "product_type": "pack",
        "battery_type": "NMC",
        "specification": "12",
        "traceability": "TRACE99",
        "production_date": date(2030, 6, 15),
        "serial": "0000042",
    }
    assert compose(**parts) == VALID
    with pytest.raises(CodeError) as err:
        compose(**{**parts, **change})
    assert (err.value.position, err.value.expected) == (position, expected)


def test_every_table_cites_a_source() -> None:
    raw = facts.load("gbt34014")
    for table in ("layout_source", "product_type", "battery_type", "date"):
        assert raw[table]["source"].startswith("GB/T 34014-2017"), table
        assert isinstance(raw[table]["verified"], bool), table
    assert all(isinstance(row["verified"], bool) for row in raw["battery_type"]["codes"])

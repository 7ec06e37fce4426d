"""Corrupted copies made in tmp_path: clear errors or findings, as fits each fault."""

from __future__ import annotations

import random

import polars as pl
import pytest

from batteryloop.cycling import CyclerFileError, read
from batteryloop.cycling.validate import validate

ARBIN = "arbin/2017-05-09_test-TC-contact_CH33.csv"
LANDT = "bdf/SINTEF__LiGrR2032__2024-04-30__25degC__Landt.csv"


def _lines(path):
    return path.read_bytes().split(b"\n")


def test_truncated_last_line_is_dropped_and_reported(cycler_file, tmp_path):
    src = cycler_file(ARBIN)
    data = src.read_bytes().rstrip(b"\n")
    cut = tmp_path / "cut.csv"
    cut.write_bytes(data[: data.rfind(b",", 0, len(data) - 10)])  # stop mid-line
    full, _ = read(src)
    df, meta = read(cut)
    assert df.height == full.height - 1
    f = [x for x in meta.findings if x.code == "truncated_file"]
    assert f and f[0].severity == "warning" and meta.truncated_at_row == full.height + 1


def test_shuffled_rows_are_an_error_not_a_silent_sort(cycler_file, tmp_path):
    lines = _lines(cycler_file(ARBIN))
    header, body = lines[0], [ln for ln in lines[1:] if ln]
    random.Random(7).shuffle(body)
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_bytes(b"\n".join([header, *body]) + b"\n")
    _, meta = read(shuffled)
    errors = [f for f in meta.findings if f.code == "time_not_monotonic"]
    assert errors and errors[0].severity == "error" and errors[0].count > 50
    assert not any("unwrapped" in n for n in meta.normalisations)
    with pytest.raises(CyclerFileError, match="shuffled.csv"):
        read(shuffled, strict=True)


def test_utf16_and_cp1252_copies_read_like_the_original(cycler_file, tmp_path):
    src = cycler_file("novonix/test_Nova_Form-CH01-01_short.csv")
    text = src.read_text(encoding="utf-8")
    want, _ = read(src)
    for enc in ("utf-16", "cp1252"):
        p = tmp_path / f"nova_{enc}.csv"
        p.write_bytes(text.encode(enc, errors="replace"))
        got, _ = read(p)
        assert got.equals(want), enc


def test_non_numeric_cell_names_file_and_line(cycler_file, tmp_path):
    lines = _lines(cycler_file(ARBIN))
    fields = lines[10].split(b",")
    fields[7] = b"3.3x"  # Voltage column
    lines[10] = b",".join(fields)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(CyclerFileError) as err:
        read(bad)
    assert err.value.row == 11 and "bad.csv" in str(err.value) and "3.3x" in str(err.value)


def test_impossible_voltage_and_nan_run_are_findings(cycler_file, tmp_path):
    lines = _lines(cycler_file(ARBIN))
    for i in (20, 21, 22):
        f = lines[i].split(b",")
        f[7] = b""
        lines[i] = b",".join(f)
    f = lines[40].split(b",")
    f[7] = b"42.0"
    lines[40] = b",".join(f)
    p = tmp_path / "odd.csv"
    p.write_bytes(b"\n".join(lines))
    _, meta = read(p)
    by = {f.code: f for f in meta.findings}
    assert by["voltage_out_of_range"].row == 39 and by["voltage_out_of_range"].severity == "error"
    assert by["nan_run"].row == 19 and by["nan_run"].count == 3 and by["nan_run"].column == "voltage_volt"


def test_current_sign_contradicting_capacity_is_an_error(cycler_file, tmp_path):
    lines = _lines(cycler_file(ARBIN))
    for i in range(100, 201):  # a third of a charging-only file gets a negative current
        f = lines[i].split(b",")
        f[6] = b"-" + f[6]
        lines[i] = b",".join(f)
    p = tmp_path / "sign.csv"
    p.write_bytes(b"\n".join(lines))
    _, meta = read(p)
    bad = [f for f in meta.findings if f.code == "current_sign_contradiction"]
    assert bad and bad[0].severity == "error" and bad[0].row == 99


def test_whole_file_sign_flip_is_fixed_and_recorded(cycler_file, tmp_path):
    lines = _lines(cycler_file(ARBIN))
    for i in range(1, len(lines)):
        if lines[i]:
            f = lines[i].split(b",")
            f[6] = b"-" + f[6]
            lines[i] = b",".join(f)
    p = tmp_path / "flipped.csv"
    p.write_bytes(b"\n".join(lines))
    want, _ = read(cycler_file(ARBIN))
    got, meta = read(p)
    assert got["current_ampere"].to_list() == pytest.approx(want["current_ampere"].to_list())
    assert any(n.startswith("current sign flipped") for n in meta.normalisations)
    assert not [f for f in meta.findings if f.severity == "error"]


def test_time_reset_is_unwrapped(cycler_file, tmp_path):
    src = cycler_file(LANDT)
    lines = _lines(src)
    head = next(i for i, ln in enumerate(lines) if ln.startswith(b"channel_index"))
    cut_at = head + 1 + 10000
    t0 = float(lines[cut_at].split(b",")[4])
    for i in range(cut_at, len(lines)):
        if lines[i]:
            f = lines[i].split(b",")
            f[4] = f"{float(f[4]) - t0 + 0.02:.3f}".encode()
            lines[i] = b",".join(f)
    p = tmp_path / "reset.csv"
    p.write_bytes(b"\n".join(lines))
    want, _ = read(src)
    got, meta = read(p)
    assert got["test_time_second"].diff().drop_nulls().min() >= 0
    assert any("reset at table row(s) [10000]" in n for n in meta.normalisations)
    # After the reset, times match the original up to the constant the tester lost.
    gap = (want["test_time_second"] - got["test_time_second"]).to_numpy()
    assert abs(gap[:10000]).max() < 1e-9 and gap[10000:].std() < 1e-6


def test_missing_required_column_is_an_error():
    df = pl.DataFrame({"test_time_second": [0.0, 1.0], "voltage_volt": [None, None],
                       "current_ampere": [0.0, 0.0]}, schema_overrides={"voltage_volt": pl.Float64})
    report = validate(df)
    assert not report.ok and report.errors[0].code == "missing_column"
    assert report.errors[0].column == "voltage_volt"

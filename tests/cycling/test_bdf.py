"""BDF CSV in both header styles, and the Landt original of one BDF file (same test)."""

from __future__ import annotations

import polars as pl
import pytest

from batteryloop.cycling import read

from .helpers import column, data_lines

LANDT_BDF = "bdf/SINTEF__LiGrR2032__2024-04-30__25degC__Landt.bdf.csv"
LANDT_RAW = "bdf/SINTEF__LiGrR2032__2024-04-30__25degC__Landt.csv"


def test_bdf_file_agrees_with_its_landt_original(cycler_file):
    bdf, mb = read(cycler_file(LANDT_BDF))
    raw, mr = read(cycler_file(LANDT_RAW))
    assert (mb.file_format, mr.file_format) == ("bdf_csv", "landt_csv")
    assert bdf.height == raw.height == 25162
    for col in ("test_time_second", "voltage_volt", "current_ampere", "step_id",
                "charging_capacity_ah", "discharging_capacity_ah", "step_type"):
        assert bdf[col].to_list() == pytest.approx(raw[col].to_list(), abs=1e-9) \
            if bdf[col].dtype.is_float() else bdf[col].to_list() == raw[col].to_list(), col
    # The BDF file has no cycle column: our derived cycles match the tester's own numbering.
    assert bdf["cycle_count"].to_list() == raw["cycle_count"].to_list()
    header, rows = data_lines(cycler_file(LANDT_RAW), "channel_index")
    assert raw["cycle_count"].to_list() == [int(c) for c in column(header, rows, "cycle_index")]
    # Energy: the BDF file has none, we integrate V dQ; the Landt file's own energy agrees to 1 %.
    assert bdf["discharging_energy_wh"][-1] == pytest.approx(raw["discharging_energy_wh"][-1], rel=0.01)


def test_label_style_bdf_units_sign_and_cycles(cycler_file):
    path = cycler_file("bdf/batmo_bdf.csv")
    header, rows = data_lines(path, "Test Time")
    df, meta = read(path)
    assert df.height == len(rows) == 21206
    assert df["cycle_count"].max() == int(max(column(header, rows, "Cycle Count / 1"))) == 109
    assert df["test_time_second"].to_list() == pytest.approx(
        [h * 3600 for h in column(header, rows, "Test Time / h")])
    # The file writes discharge current positive; the capacities say which is which.
    assert "current sign flipped: discharge was positive (judged from capacity columns)" in \
        meta.normalisations
    dis = df.filter(pl.col("step_type") == "discharge")
    assert dis["current_ampere"].max() <= 0
    # The file's capacities restart each step (cycle 1 has two discharge steps, 0.1169 and
    # 0.1598 Ah): a cycle's discharge capacity is the sum of its steps' ends.
    ic, ist, iq = (header.index(n) for n in ("Cycle Count / 1", "Step Index / 1",
                                              "Discharge Capacity / Ah"))
    ends: dict[tuple[int, int], float] = {}
    for r in rows:
        key = (int(r[ic]), int(r[ist]))
        ends[key] = max(ends.get(key, 0.0), float(r[iq]))
    want: dict[int, float] = {}
    for (c, _), q in ends.items():
        want[c] = want.get(c, 0.0) + q
    got = df.group_by("cycle_count").agg(pl.col("cycle_discharging_capacity_ah").max())
    got = dict(zip(got["cycle_count"].to_list(), got["cycle_discharging_capacity_ah"].to_list()))
    assert want[1] == pytest.approx(0.116898 + 0.159789, abs=1e-6)
    for c, q in want.items():
        assert got[c] == pytest.approx(q, rel=1e-9, abs=1e-12)
    # Physics: over the whole test, the charge taken out after the first charge cannot exceed
    # the charge put in (coulombic efficiency <= 1, 1 % tolerance). Per-cycle ratios are not
    # used because this file's cycles do not all start with a charge.
    first_charge = df["step_type"].cast(pl.String).to_list().index("charge")
    before = df["discharging_capacity_ah"][first_charge]
    out = df["discharging_capacity_ah"][-1] - before
    assert 0.9 < out / df["charging_capacity_ah"][-1] <= 1.01


def test_basytec_bdf_time_unit_is_flagged(cycler_file):
    df, meta = read(cycler_file("bdf/DLR__LiGrHydra0b__20230131__POCV__25degC__Basytec.bdf.csv"))
    assert df.height == 39193
    assert meta.cell_id == "LiGrHydra0b" and meta.tester == "Basytec"
    # 1.33e9 'seconds' is 42 years: the validator says the unit is probably not seconds.
    assert "time_span_implausible" in {f.code for f in meta.findings}
    assert any("integrated from current" in n for n in meta.normalisations)


def test_basytec_lnmo_bdf_reads(cycler_file):
    path = cycler_file("bdf/DLR__LiLNMOHydra0b__20221125__POCV__25degC__Basytec.bdf.csv")
    header, rows = data_lines(path, "test_time_second")
    df, _ = read(path)
    assert df.height == len(rows) == 17860
    assert df["voltage_volt"].to_list() == pytest.approx(column(header, rows, "voltage_volt"))
    assert 2.9 < df["voltage_volt"].min() and df["voltage_volt"].max() < 4.95  # LNMO window

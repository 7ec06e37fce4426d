"""Neware CSV export and .ndax binary (via NewareNDA)."""

from __future__ import annotations

from collections import defaultdict

import polars as pl
import pytest

from batteryloop.cycling import read

from .helpers import data_lines


def test_csv_rows_cycles_and_capacities(cycler_file):
    path = cycler_file("neware/neware_uio.csv")
    header, rows = data_lines(path, "DataPoint")
    df, meta = read(path)
    assert meta.file_format == "neware_csv"
    assert df.height == len(rows) == 9065
    ic = header.index("Cycle Index")
    assert df["cycle_count"].max() == max(int(r[ic]) for r in rows) == 4
    # Neware's Chg./DChg. Cap. restart each step: a cycle's capacity is the sum of step ends.
    istep, idc = header.index("Step Index"), header.index("DChg. Cap.(Ah)")
    ends: dict[tuple, float] = {}
    for r in rows:
        ends[(int(r[ic]), int(r[istep]))] = float(r[idc])
    want: dict[int, float] = defaultdict(float)
    for (c, _), q in ends.items():
        want[c] += q
    got = df.group_by("cycle_count").agg(pl.col("cycle_discharging_capacity_ah").max())
    got = dict(zip(got["cycle_count"].to_list(), got["cycle_discharging_capacity_ah"].to_list()))
    for c, q in want.items():
        assert got[c] == pytest.approx(q, rel=1e-6, abs=1e-9)
    # Cumulative Time '144:02:18' is hours past 24.
    assert df["test_time_second"][-1] == 144 * 3600 + 2 * 60 + 18
    # Current sign agrees with the step names.
    assert df.filter(pl.col("step_type") == "discharge")["current_ampere"].max() <= 0
    assert df.filter(pl.col("step_type") == "charge")["current_ampere"].min() >= 0


def test_ndax_reads_through_newarenda(cycler_file):
    pytest.importorskip("NewareNDA")
    df, meta = read(cycler_file("neware/filetype14-0.ndax"))
    assert meta.file_format == "neware_ndax"
    assert df.height == 67
    assert set(df["step_type"].to_list()) == {"rest"}
    assert df["current_ampere"].abs().max() == 0
    # Records every 10 s from the first time stamp; the last one ends the rest early.
    dt = df["test_time_second"].diff().drop_nulls().to_list()
    assert dt[:-1] == pytest.approx([10.0] * 65) and 0 < dt[-1] < 10
    assert 0.003 < df["voltage_volt"].mean() < 0.0034

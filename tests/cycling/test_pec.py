"""PEC CSV export: mV/mA/mAh converted, '(mWh)' capacity columns read as energies."""

from __future__ import annotations

import polars as pl
import pytest

from batteryloop.cycling import read

from .helpers import column, data_lines


def test_pec_rows_units_and_cycles(cycler_file):
    path = cycler_file("pec/pec.csv")
    header, rows = data_lines(path, "Test,Cell,Rack")
    df, meta = read(path)
    assert meta.file_format == "pec_csv"
    assert df.height == len(rows) == 16255
    assert df["voltage_volt"].to_list() == pytest.approx(
        [v / 1000 for v in column(header, rows, "Voltage (mV)")])
    assert any("mAh -> Ah" in n for n in meta.normalisations)
    # PEC restarts its capacity counters each cycle: per-cycle maxima match the file's.
    ic = header.index("Cycle")
    qd = column(header, rows, "Discharge Capacity (mAh)")
    want: dict[int, float] = {}
    for r, q in zip(rows, qd):
        want[int(r[ic])] = max(want.get(int(r[ic]), 0.0), q / 1000)
    got = df.group_by("cycle_count").agg(pl.col("cycle_discharging_capacity_ah").max())
    got = dict(zip(got["cycle_count"].to_list(), got["cycle_discharging_capacity_ah"].to_list()))
    assert got.keys() == want.keys()
    for c, q in want.items():
        assert got[c] == pytest.approx(q, rel=1e-6, abs=1e-9)
    # Physics: coulombic efficiency of the full cycle 1 (charge then discharge) <= 1 (+0.5 %).
    c1 = df.filter(pl.col("cycle_count") == 1)
    ce = c1["cycle_discharging_capacity_ah"].max() / c1["cycle_charging_capacity_ah"].max()
    assert 0.95 < ce <= 1.005
    # Energy ~ capacity x mean voltage (LFP, ~3.2-3.3 V).
    e = c1["cycle_discharging_energy_wh"].max() / c1["cycle_discharging_capacity_ah"].max()
    assert 2.8 < e < 3.5
    assert meta.start_time_unix == pytest.approx(1550852495.0)  # 02/22/2019 16:21:35 UTC

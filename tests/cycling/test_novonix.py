"""Novonix CSV with summary header, quoted data lines and a per-cycle metadata sidecar."""

from __future__ import annotations

import polars as pl
import pytest

from batteryloop.cycling import read


def _raw(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("[Data]") + 1
    header = lines[start].strip('"').split(",")
    rows = [ln.strip('"').split(",") for ln in lines[start + 1:] if ln.strip()]
    return header, rows


def test_novonix_rows_units_and_step_capacity(cycler_file):
    path = cycler_file("novonix/test_Nova_Form-CH01-01_short.csv")
    header, rows = _raw(path)
    df, meta = read(path)
    assert meta.file_format == "novonix_csv"
    assert df.height == len(rows) == 3942
    assert meta.channel == "01" and meta.nominal_capacity_ah == 0.24
    t_h = [float(r[header.index("Run Time (h)")]) for r in rows]
    assert df["test_time_second"].to_list() == pytest.approx([t * 3600 for t in t_h])
    # 'Capacity (Ah)' does NOT restart between consecutive charge steps (file line 1124: step 3
    # starts at 0.00067 Ah, where step 2 ended). The file only charges, so the total charge is
    # simply its last value ...
    icap = header.index("Capacity (Ah)")
    assert df["charging_capacity_ah"][-1] == pytest.approx(float(rows[-1][icap]), rel=1e-9)
    # ... and equals the integral of current over time (physics, independent of that column).
    t = df["test_time_second"].to_numpy()
    i = df["current_ampere"].to_numpy()
    q = float(((i[1:] + i[:-1]) / 2 * (t[1:] - t[:-1])).sum() / 3600)
    assert q == pytest.approx(df["charging_capacity_ah"][-1], rel=0.01)
    # Physics: the formation charge so far is within the cell's 0.24 Ah rating, and not more
    # than the full cycle-1 charge the tester reported in the sidecar (this file is cut short).
    summary = meta.extra["cycle_summary"]
    assert summary[0]["Cycle"] == 1
    assert 0 < df["charging_capacity_ah"].max() <= min(0.24, summary[0]["Qc"])
    assert df.filter(pl.col("step_type") == "rest")["current_ampere"].abs().max() == 0

"""Maccor raw (.0NN) and text (.txt) exports, checked against the files' own Amp-hr/State columns."""

from __future__ import annotations

import math
from collections import defaultdict

import polars as pl
import pytest

from batteryloop.cycling import read

from .helpers import data_lines

RAW = ["maccor/PreDiag_000229_000229_truncated.034",
       "maccor/PredictionDiagnostics_000109_tztest.010",
       "maccor/xTESLADIAG_000019_CH70.070"]


def _step_capacity_by_cycle(header, rows, state):
    """Sum over steps of the last Amp-hr in each step with the given State, per cycle.

    Maccor's Amp-hr restarts at each step, so a cycle's capacity is the sum of its steps' ends.
    """
    ic, ist, iah, istate = (header.index(n) for n in ("Cyc#", "Step", "Amp-hr", "State"))
    last: dict[tuple, float] = {}
    order = []
    prev_key = None
    run = 0
    for r in rows:
        key = (int(r[ic]), int(r[ist]))
        if key != prev_key:
            run += 1
            prev_key = key
        if r[istate] == state:
            k = (run, int(r[ic]))
            if k not in last:
                order.append(k)
            last[k] = float(r[iah])
    out: dict[int, float] = defaultdict(float)
    for run_id, cyc in order:
        out[cyc] += last[(run_id, cyc)]
    return dict(out)


@pytest.mark.parametrize("rel", RAW)
def test_raw_rows_cycles_and_capacities_match_the_file(cycler_file, rel):
    path = cycler_file(rel)
    header, rows = data_lines(path, "Rec#", sep="\t")
    df, meta = read(path)
    assert meta.file_format == "maccor_raw" and meta.tester == "Maccor"
    assert df.height == len(rows)
    assert sorted(df["cycle_count"].unique().to_list()) == sorted({int(r[1]) for r in rows})
    for state, col in (("D", "cycle_discharging_capacity_ah"), ("C", "cycle_charging_capacity_ah")):
        expected = _step_capacity_by_cycle(header, rows, state)
        got = df.group_by("cycle_count").agg(pl.col(col).max())
        got = dict(zip(got["cycle_count"].to_list(), got[col].to_list()))
        for cyc, q in expected.items():
            assert got[cyc] == pytest.approx(q, rel=1e-6, abs=1e-9), (state, cyc)
    # Signed current in these exports: discharge rows negative, charge rows positive.
    states = [r[header.index("State")] for r in rows]
    cur = df["current_ampere"].to_list()
    assert all(c <= 0 for c, s in zip(cur, states) if s == "D")
    assert all(c >= 0 for c, s in zip(cur, states) if s == "C")
    assert df["test_time_second"].diff().drop_nulls().min() >= 0
    assert not [f for f in meta.findings if f.severity == "error"]


def test_raw_channel_and_barcode_come_from_the_preamble(cycler_file):
    _, meta = read(cycler_file("maccor/xTESLADIAG_000019_CH70.070"))
    assert meta.channel == "70" and meta.cell_id == "EXP"
    _, meta = read(cycler_file("maccor/PreDiag_000229_000229_truncated.034"))
    assert meta.cell_id == "000229"


def test_text_export_with_unsigned_current_is_signed_from_state(cycler_file):
    path = cycler_file("maccor/maccor_001.txt")
    header, rows = data_lines(path, "Rec#", sep="\t")
    df, meta = read(path)
    assert meta.file_format == "maccor_text"
    assert df.height == len(rows) == 6704
    states = [r[header.index("State")] for r in rows]
    amps = [float(r[header.index("Amps")]) for r in rows]
    # The file writes discharge current as a positive number ...
    assert max(a for a, s in zip(amps, states) if s == "D") > 0.4
    # ... and we give it back negative, with the same magnitude, and say so.
    cur = df["current_ampere"].to_list()
    d = [(c, a) for c, a, s in zip(cur, amps, states) if s == "D"]
    assert all(c == pytest.approx(-a) for c, a in d)
    assert any("unsigned" in n for n in meta.normalisations)
    # 'TestTime' like '  2d 02:52:51.57' -> seconds: last row is 2 days 2:52:51.57.
    assert df["test_time_second"][-1] == pytest.approx(2 * 86400 + 2 * 3600 + 52 * 60 + 51.57, abs=0.01)
    # Physics: an INR21700-M50 cell (the procedure is 'M50_Validation'), 5 Ah nominal: no single
    # discharge step can deliver more than its rating plus 5 %.
    steps = df.filter(pl.col("step_type") == "discharge").group_by("step_count").agg(
        pl.col("discharging_capacity_ah").max() - pl.col("discharging_capacity_ah").min())
    assert 4.0 < steps["discharging_capacity_ah"].max() <= 5.0 * 1.05
    # Aux #1 reads about -2500 C (no sensor): that is not a temperature.
    assert df["temperature_t1_celsius"].null_count() == df.height
    assert meta.channel == "1"
    assert not math.isnan(df["unix_time_second"][0])

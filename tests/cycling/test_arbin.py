"""Arbin CSV exports (+ metadata sidecars) and the .res Access database."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess

import polars as pl
import pytest

from batteryloop.cycling import read

from .helpers import column, data_lines


def test_fastcharge_csv_rows_units_and_sidecar(cycler_file):
    path = cycler_file("arbin/FastCharge_000025_CH8.csv")
    header, rows = data_lines(path, "Data_Point")
    df, meta = read(path)
    assert meta.file_format == "arbin_csv"
    assert df.height == len(rows) == 248
    assert df["test_time_second"].to_list() == pytest.approx(column(header, rows, "Test_Time"))
    assert df["unix_time_second"].to_list() == pytest.approx(column(header, rows, "DateTime"))
    assert df["temperature_t1_celsius"].to_list() == pytest.approx(column(header, rows, "Temperature"))
    # Sidecar: IV_Ch_ID 7 is channel 8 (the file name says CH8), Item_ID is the cell.
    assert meta.channel == "8" and meta.cell_id == "EL150800453116"
    assert meta.start_time_unix == 1494645214
    # This excerpt is the opening rest: no current, no capacity, one cycle.
    assert set(df["step_type"].to_list()) == {"rest"}
    assert df["charging_capacity_ah"].max() == 0


def test_tc_contact_csv_charge_matches_file_capacity(cycler_file):
    path = cycler_file("arbin/2017-05-09_test-TC-contact_CH33.csv")
    header, rows = data_lines(path, "Data_Point")
    df, meta = read(path)
    assert df.height == len(rows) == 287
    assert meta.channel == "33"
    # Step/cycle columns are empty in this export: cycles are derived, and said to be.
    assert df["cycle_count"].unique().to_list() == [1]
    assert any("cycle_count derived" in n for n in meta.normalisations)
    # Arbin's Charge_Capacity is cumulative here: our test-cumulative column equals it.
    assert df["charging_capacity_ah"].to_list() == pytest.approx(
        column(header, rows, "Charge_Capacity"), abs=1e-9)
    # Physics: 6.6 A then 1.1 A into a 1.1 Ah LFP cell (the fast-charge cells) for 1023 s:
    # charge passed = integral of I dt, close to the tester's own counter.
    t = df["test_time_second"].to_numpy()
    i = df["current_ampere"].to_numpy()
    q = float(((i[1:] + i[:-1]) / 2 * (t[1:] - t[:-1])).sum() / 3600)
    gained = df["charging_capacity_ah"][-1] - df["charging_capacity_ah"][0]
    assert q == pytest.approx(gained, rel=0.02)
    assert df["current_ampere"].min() > 0  # charging only, charge-positive


@pytest.fixture()
def res_path(cycler_file):
    if shutil.which("mdb-export") is None:
        # scripts/apt-packages.txt lists mdbtools, so CI must have it.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mdbtools (mdb-export) missing under CI")
        pytest.skip("mdbtools not installed (scripts/apt-packages.txt lists it)")
    return cycler_file("arbin/20160805_test001_45_cc_01.res")


def _mdb(path, table):
    out = subprocess.run(["mdb-export", str(path), table], capture_output=True, check=True).stdout
    return list(csv.DictReader(io.StringIO(out.decode())))


def test_res_rows_cycles_and_per_cycle_capacity(res_path):
    rows = _mdb(res_path, "Channel_Normal_Table")
    df, meta = read(res_path)
    assert meta.file_format == "arbin_res" and meta.tester == "Arbin"
    assert df.height == len(rows) == 10261
    cycles = sorted({int(r["Cycle_Index"]) for r in rows})
    assert df["cycle_count"].unique().sort().to_list() == cycles and cycles[-1] == 18
    # Arbin restarts Charge/Discharge_Capacity each cycle: the file's per-cycle maximum is the
    # cycle's capacity.
    want: dict[int, float] = {}
    for r in rows:
        c = int(r["Cycle_Index"])
        want[c] = max(want.get(c, 0.0), float(r["Discharge_Capacity"]))
    got = df.group_by("cycle_count").agg(pl.col("cycle_discharging_capacity_ah").max())
    got = dict(zip(got["cycle_count"].to_list(), got["cycle_discharging_capacity_ah"].to_list()))
    for c, q in want.items():
        assert got[c] == pytest.approx(q, rel=1e-6, abs=1e-12)
    # Physics: the Global_Table rates the electrode at MASS (g) x Specific_Capacity (Ah/g).
    g = _mdb(res_path, "Global_Table")[0]
    rating = float(g["MASS"]) * float(g["Specific_Capacity"])
    assert 0 < df["cycle_discharging_capacity_ah"].max() <= rating
    assert meta.channel == g["Channel_Index"]
    # OLE date -> unix: first record DateTime 42587.6815162037 days is 2016-08-05 16:21:23 UTC.
    assert df["unix_time_second"][0] == pytest.approx(1470414083.0, abs=1.0)

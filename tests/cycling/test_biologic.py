"""BioLogic .mpr (our own binary reader) and EC-Lab text export with its .mpl settings."""

from __future__ import annotations

import struct

import numpy as np
import polars as pl
import pytest

from batteryloop.cycling import read


def test_mpr_records_and_charge_balance(cycler_file):
    path = cycler_file("biologic/biol.mpr")
    raw = path.read_bytes()
    df, meta = read(path)
    assert meta.file_format == "biologic_mpr"
    # Record count declared at the start of the 'VMP data' module (old-style 16-byte header).
    at = raw.find(b"MODULEVMP data") + 41 + 16
    assert df.height == struct.unpack_from("<I", raw, at)[0] == 23561
    # Physics: the charge counted in the file's dq column equals the integral of its current
    # column (two independent measurements) to within 1 %.
    t = df["test_time_second"].to_numpy()
    i = df["current_ampere"].to_numpy()
    net_from_current = float(((i[1:] + i[:-1]) / 2 * np.diff(t)).sum() / 3600)
    net_from_dq = df["charging_capacity_ah"][-1] - df["discharging_capacity_ah"][-1]
    assert net_from_current == pytest.approx(net_from_dq, rel=0.01)
    # Si/C half cell against Li: 0.1-1.0 V, sub-mA currents.
    assert 0.1 < df["voltage_volt"].min() and df["voltage_volt"].max() <= 1.0
    assert df["current_ampere"].abs().max() < 1e-3
    assert df["test_time_second"].diff().drop_nulls().min() >= 0


def test_mpr_new_style_header(cycler_file):
    df, meta = read(cycler_file("biologic/GCPL-0.mpr"))
    assert df.height == 4 and meta.extra["data_module_version"] == 11
    assert df["voltage_volt"].to_list() == pytest.approx([3.5151, 3.5148, 3.5148, 3.5147], abs=1e-4)
    assert df["test_time_second"].to_list() == pytest.approx([0.0, 1.0, 2.0, 2.813], abs=1e-3)


def test_text_export_with_settings_file(cycler_file):
    path = cycler_file("biologic/test_loopsnewoutput_MB_CE1_short10k.csv")
    cycler_file("biologic/test_loopsnewoutput_MB_CE1_short10k.mpl")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(";")
    rows = [ln.split(";") for ln in lines[1:] if ln]
    df, meta = read(path)
    assert meta.file_format == "biologic_text" and meta.channel == "E1"
    assert df.height == len(rows) == 9999
    assert df["current_ampere"].to_list() == pytest.approx(
        [float(r[header.index("I/mA")]) / 1000 for r in rows])
    # The .mpl says acquisition started 05/05/2021 15:36:22 (MMDDYYYY): first record is then.
    assert meta.start_time_unix == 1620228982.0
    assert df["unix_time_second"][0] == pytest.approx(1620228982.757, abs=1e-3)
    # Per-cycle charge equals the file's own 'Q charge/mA.h' at its largest, in Ah.
    ic, iq = header.index("cycle number"), header.index("Q charge/mA.h")
    want: dict[int, float] = {}
    for r in rows:
        want[int(float(r[ic]))] = max(want.get(int(float(r[ic])), 0.0), float(r[iq]) / 1000)
    got = df.group_by("cycle_count").agg(pl.col("cycle_charging_capacity_ah").max())
    got = dict(zip(got["cycle_count"].to_list(), got["cycle_charging_capacity_ah"].to_list()))
    for c, q in want.items():
        assert got[c] == pytest.approx(q, rel=1e-6)
    # Physics: cycle 1 is charge then discharge; coulombic efficiency <= 1.
    c1 = df.filter(pl.col("cycle_count") == 1)
    assert c1["cycle_discharging_capacity_ah"].max() <= c1["cycle_charging_capacity_ah"].max()

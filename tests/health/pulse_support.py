"""Helpers of the pulse-SOH tests (the fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

TYPES = ["LFP_35Ah", "NMC_21Ah"]
METHOD = "ridge"
VOLTAGES = [f"U{i}" for i in range(1, 22)]


def write_pulse_csv(frame: pl.DataFrame, path: Path, *, extra: tuple[str, ...] = ()) -> Path:
    """The documented pulse-test CSV of some PulseBat rows: soc, U1..U21 and ``extra`` columns
    (chemistry, rated_ah ...)."""
    frame.select("soc", *extra, *VOLTAGES).write_csv(path)
    return path

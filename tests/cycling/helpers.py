"""Independent re-reads of tester files for the tests: plain csv-module / polars parsing of the
file's own columns, deliberately not sharing code with the readers under test."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl


def data_lines(path: Path, header_startswith: str, sep: str = ",",
               encoding: str = "utf-8") -> tuple[list[str], list[list[str]]]:
    """Header and data rows after the first line starting with ``header_startswith``."""
    text = path.read_text(encoding=encoding, errors="replace")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_startswith))
    rows = list(csv.reader(io.StringIO("\n".join(lines[start:])), delimiter=sep))
    rows = [r for r in rows if r]
    return rows[0], rows[1:]


def column(header: list[str], rows: list[list[str]], name: str) -> list[float]:
    i = header.index(name)
    return [float(r[i]) if r[i] not in ("", "N/A") else float("nan") for r in rows]


def per_cycle_max(df: pl.DataFrame, col: str) -> dict[int, float]:
    g = df.group_by("cycle_count").agg(pl.col(col).max()).sort("cycle_count")
    return dict(zip(g["cycle_count"].to_list(), g[col].to_list()))

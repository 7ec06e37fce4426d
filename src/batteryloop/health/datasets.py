"""Loaders for the public data sets the health models are trained and scored on.

Each loader reads files in place under the shared data folder (``BATTERYLOOP_SHARED``), validates
them and returns one normalised Polars frame.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# PulseBat (pulse tests of retired cells, measured SOH)
# ---------------------------------------------------------------------------------------------
import hashlib
import math
import os
import re
import tempfile
import tomllib
from functools import cache
from importlib.resources import files as _package_files
from pathlib import Path
from typing import Any

import polars as pl

from batteryloop.errors import NotFound, ValidationFailed

#: Where the PulseBat workbooks live under the shared folder.
PULSEBAT_DIR = Path("data") / "pulse" / "pulsebat"
#: Bump when the parsed frame changes shape or meaning: old cache files are then ignored.
PULSEBAT_LOADER_VERSION = 1
PULSEBAT_VOLTAGES = [f"U{i}" for i in range(1, 22)]
_PULSEBAT_HEADER = ["File_Name", "Mat", "No.", "ID", "Qn", "Q", "SOH", "Pt", "SOC",
                    *PULSEBAT_VOLTAGES]
# The column after SOC is "SOCR" (charged Ah / rated Ah) in three files and "SOE" in the NMC 2.1 Ah
# file, where it means SOC x SOH in sheet "SOC ALL" but SOC x Q in the per-SOC sheets. It is
# neither needed nor consistent, so it is dropped.
_PULSEBAT_DROPPED = ("SOCR", "SOE")
_PULSEBAT_FILE = re.compile(r"^(?P<chem>[A-Z]+)_(?P<cap>\d+(?:\.\d+)?)Ah_W_(?P<width>\d+)\.xlsx$")
_PULSEBAT_SOC_SHEET = re.compile(r"^SOC(\d+)$")
# NMC 2.1 Ah: ids "D3-100" .. "D3-600" are one physical cell (D3) at successive ageing stages
# (SOH falls monotonically with the suffix in every series).
_PULSEBAT_STAGED = re.compile(r"^(?P<cell>[A-Z]\d+)-(?P<stage>\d+)$")

PULSEBAT_SCHEMA: dict[str, Any] = {
    "cell_type": pl.String,      # chemistry + rated capacity, e.g. "NMC_21Ah"
    "chemistry": pl.String,
    "rated_ah": pl.Float64,
    "sample_id": pl.String,      # one tested sample, unique across types: "NMC_2.1Ah/D3-200"
    "cell_id": pl.String,        # the physical cell, unique across types: "NMC_2.1Ah/D3"
    "ageing_stage": pl.Int64,    # NMC 2.1 Ah only (the id's suffix); null elsewhere
    "number": pl.Int64,          # the file's "No."
    "soc": pl.Float64,           # state of charge at the pulse test, % of rated capacity
    "soh": pl.Float64,           # measured capacity / rated capacity
    "capacity_ah": pl.Float64,
    "pulse_width_s": pl.Float64,
    **{u: pl.Float64 for u in PULSEBAT_VOLTAGES},
    "source_file": pl.String,
    "source_row": pl.Int64,      # 1-based row in sheet "SOC ALL" (the header is row 1)
}


@cache
def _pulsebat_voltage_windows() -> dict[str, tuple[float, float]]:
    text = (_package_files("batteryloop.health") / "data" / "pulse_cells.toml").read_text()
    chem = tomllib.loads(text)["chemistry"]
    return {name: (float(v["window_v"][0]), float(v["window_v"][1])) for name, v in chem.items()}


def pulsebat_files(shared: Path) -> list[Path]:
    """The PulseBat workbooks under ``shared`` (sorted by name)."""
    folder = Path(shared) / PULSEBAT_DIR
    found = sorted(folder.glob("*.xlsx")) if folder.is_dir() else []
    if not found:
        raise NotFound(f"no PulseBat workbooks (*.xlsx) in {folder} (set BATTERYLOOP_SHARED)")
    return found


def _pulsebat_cache_dir() -> Path:
    root = os.environ.get("BATTERYLOOP_CACHE_DIR")
    base = Path(root) if root else Path(tempfile.gettempdir()) / "batteryloop-cache"
    return base / "pulsebat"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_pulsebat(shared: Path, *, cache: bool = True) -> pl.DataFrame:
    """Every PulseBat pulse test: one row per sample and state of charge, normalised and validated.

    Reads sheet ``SOC ALL`` of each workbook and checks that the per-SOC sheets (``SOC5`` ..
    ``SOC50``) hold exactly the same rows (they are a split of it, so reading both would double
    every test). Raises :class:`ValidationFailed` naming file, sheet and row on bad data. Parsed
    workbooks are cached as Parquet under ``$BATTERYLOOP_CACHE_DIR`` (default: the system temp
    folder), keyed by the workbook's SHA-256, so a changed file is parsed again.
    """
    frames = [_pulsebat_one(path, cache=cache) for path in pulsebat_files(shared)]
    frame = pl.concat(frames, how="vertical")
    dup = frame.group_by("sample_id", "soc").len().filter(pl.col("len") > 1)
    if dup.height:
        row = dup.row(0, named=True)
        raise ValidationFailed(f"sample {row['sample_id']} has {row['len']} rows at SOC "
                               f"{row['soc']:g} %", location="PulseBat")
    return frame.sort("cell_type", "number", "soc")


def _pulsebat_one(path: Path, *, cache: bool) -> pl.DataFrame:
    if not cache:
        return _pulsebat_parse(path)
    sha = _sha256(path)
    target = _pulsebat_cache_dir() / f"{sha}-v{PULSEBAT_LOADER_VERSION}.parquet"
    if target.is_file():
        try:
            frame = pl.read_parquet(target)
        except Exception:  # noqa: BLE001 - a damaged cache file is simply parsed again
            frame = None
        if frame is not None and dict(frame.schema) == PULSEBAT_SCHEMA:
            return frame
    frame = _pulsebat_parse(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    frame.write_parquet(staging)
    staging.replace(target)
    return frame


def _pulsebat_sheet_rows(ws: Any, where: str) -> tuple[list[str], list[tuple[int, tuple]]]:
    rows = ws.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        raise ValidationFailed("empty sheet", location=where)
    names = [str(h).strip() if h is not None else "" for h in header]
    while names and names[-1] == "":
        names.pop()
    body = []
    for number, values in enumerate(rows, start=2):
        if values is None or all(v is None for v in values):
            continue
        body.append((number, tuple(values[: len(names)])))
    return names, body


def _pulsebat_number(value: Any, where: str, column: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(f"column '{column}' is empty or not a number: {value!r}",
                               location=where)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationFailed(f"column '{column}' is not a number: {value!r}",
                               location=where) from None
    if not math.isfinite(number):
        raise ValidationFailed(f"column '{column}' is not finite: {value!r}", location=where)
    return number


def _pulsebat_parse(path: Path) -> pl.DataFrame:
    from openpyxl import load_workbook  # only needed on a cache miss

    name = path.name
    match = _PULSEBAT_FILE.match(name)
    if match is None:
        raise ValidationFailed("file name is not '<chemistry>_<rated>Ah_W_<pulse ms>.xlsx'",
                               location=name)
    chemistry, rated, width_s = match["chem"], float(match["cap"]), float(match["width"]) / 1000
    cell_type = f"{chemistry}_{match['cap']}Ah"
    low, high = _pulsebat_voltage_windows().get(chemistry, (None, None))
    if low is None:
        raise ValidationFailed(f"unknown chemistry '{chemistry}' (known: "
                               f"{', '.join(sorted(_pulsebat_voltage_windows()))})", location=name)

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        if "SOC ALL" not in workbook.sheetnames:
            raise ValidationFailed(f"no sheet 'SOC ALL' (sheets: {', '.join(workbook.sheetnames)})",
                                   location=name)
        sheets = {ws.title: _pulsebat_sheet_rows(ws, f"{name} sheet '{ws.title}'")
                  for ws in workbook.worksheets}
    finally:
        workbook.close()

    header, body = sheets["SOC ALL"]
    where_sheet = f"{name} sheet 'SOC ALL'"
    missing = [c for c in _PULSEBAT_HEADER if c not in header]
    if missing:
        raise ValidationFailed(f"missing column(s) {', '.join(missing)}", location=where_sheet)
    unknown = [c for c in header if c not in _PULSEBAT_HEADER and c not in _PULSEBAT_DROPPED]
    if unknown:
        raise ValidationFailed(f"unexpected column(s) {', '.join(unknown)}", location=where_sheet)
    if not body:
        raise ValidationFailed("no data rows", location=where_sheet)
    at = {c: header.index(c) for c in _PULSEBAT_HEADER}

    columns: dict[str, list[Any]] = {c: [] for c in PULSEBAT_SCHEMA}
    seen: dict[str, tuple[int, float]] = {}   # sample -> (number, capacity)
    keys: dict[tuple[str, float], tuple] = {}
    for number, values in body:
        where = f"{where_sheet} row {number}"
        mat = values[at["Mat"]]
        if str(mat).strip() != chemistry:
            raise ValidationFailed(f"Mat is {mat!r}, the file name says {chemistry}",
                                   location=where)
        ident = values[at["ID"]]
        if ident is None or str(ident).strip() == "":
            raise ValidationFailed("column 'ID' is empty", location=where)
        ident = str(ident).strip()
        qn = _pulsebat_number(values[at["Qn"]], where, "Qn")
        if abs(qn - rated) > 1e-9:
            raise ValidationFailed(f"Qn is {qn:g} Ah, the file name says {rated:g} Ah",
                                   location=where)
        q = _pulsebat_number(values[at["Q"]], where, "Q")
        soh = _pulsebat_number(values[at["SOH"]], where, "SOH")
        if not 0 < soh <= 1.2:
            raise ValidationFailed(f"SOH {soh:g} outside (0, 1.2]", location=where)
        if abs(soh - q / qn) > 1e-6:
            raise ValidationFailed(f"SOH {soh:.6f} is not Q/Qn = {q / qn:.6f}", location=where)
        pt = _pulsebat_number(values[at["Pt"]], where, "Pt")
        if abs(pt - width_s) > 1e-9:
            raise ValidationFailed(f"pulse width Pt {pt:g} s, the file name says {width_s:g} s",
                                   location=where)
        soc = _pulsebat_number(values[at["SOC"]], where, "SOC")
        if not 0 < soc <= 100:
            raise ValidationFailed(f"SOC {soc:g} % outside (0, 100]", location=where)
        volts = [_pulsebat_number(values[at[u]], where, u) for u in PULSEBAT_VOLTAGES]
        for u, v in zip(PULSEBAT_VOLTAGES, volts, strict=True):
            if not low <= v <= high:
                raise ValidationFailed(
                    f"{u} = {v:g} V outside the plausible {chemistry} window {low:g}-{high:g} V",
                    location=where)
        no = int(_pulsebat_number(values[at["No."]], where, "No."))
        sample = f"{cell_type}/{ident}"
        if sample in seen and seen[sample] != (no, q):
            raise ValidationFailed(
                f"sample {ident} appears with No./Q {seen[sample]} and ({no}, {q:g})",
                location=where)
        seen[sample] = (no, q)
        if (sample, soc) in keys:
            raise ValidationFailed(f"sample {ident} at SOC {soc:g} % appears twice",
                                   location=where)
        keys[(sample, soc)] = tuple(values[at[c]] for c in _PULSEBAT_HEADER)
        staged = _PULSEBAT_STAGED.match(ident) if cell_type == "NMC_2.1Ah" else None
        row = {
            "cell_type": cell_type, "chemistry": chemistry, "rated_ah": rated,
            "sample_id": sample,
            "cell_id": f"{cell_type}/{staged['cell']}" if staged else sample,
            "ageing_stage": int(staged["stage"]) if staged else None,
            "number": no, "soc": soc, "soh": soh, "capacity_ah": q, "pulse_width_s": pt,
            **dict(zip(PULSEBAT_VOLTAGES, volts, strict=True)),
            "source_file": name, "source_row": number,
        }
        for key, value in row.items():
            columns[key].append(value)

    _pulsebat_check_soc_sheets(name, sheets, keys)
    return pl.DataFrame(columns, schema=PULSEBAT_SCHEMA)


def _pulsebat_check_soc_sheets(name: str, sheets: dict[str, tuple[list[str], list]],
                               keys: dict[tuple[str, float], tuple]) -> None:
    """Each per-SOC sheet must repeat exactly the 'SOC ALL' rows at its SOC, and together cover
    all of them: the per-SOC sheets are a split of 'SOC ALL', never extra tests."""
    cell_type = name.split("_W_")[0]
    covered: set[tuple[str, float]] = set()
    for title, (header, body) in sheets.items():
        level = _PULSEBAT_SOC_SHEET.match(title.replace(" ", ""))
        if title == "SOC ALL" or level is None:
            continue
        soc_level = float(level.group(1))
        missing = [c for c in _PULSEBAT_HEADER if c not in header]
        if missing:
            raise ValidationFailed(f"missing column(s) {', '.join(missing)}",
                                   location=f"{name} sheet '{title}'")
        at = {c: header.index(c) for c in _PULSEBAT_HEADER}
        for number, values in body:
            where = f"{name} sheet '{title}' row {number}"
            soc = values[at["SOC"]]
            ident = str(values[at["ID"]]).strip()
            key = (f"{cell_type}/{ident}", float(soc) if soc is not None else math.nan)
            if key[1] != soc_level:
                raise ValidationFailed(f"SOC {soc!r} in the sheet for SOC {soc_level:g} %",
                                       location=where)
            if key not in keys:
                raise ValidationFailed(f"sample {ident} at SOC {soc_level:g} % is not in sheet "
                                       "'SOC ALL'", location=where)
            if key in covered:
                raise ValidationFailed(f"sample {ident} appears twice at SOC {soc_level:g} %",
                                       location=where)
            if tuple(values[at[c]] for c in _PULSEBAT_HEADER) != keys[key]:
                raise ValidationFailed(f"sample {ident} differs from its row in 'SOC ALL'",
                                       location=where)
            covered.add(key)
    if covered and covered != set(keys):
        sample, soc = min(set(keys) - covered)
        raise ValidationFailed(f"{len(set(keys) - covered)} 'SOC ALL' row(s) are in no per-SOC "
                               f"sheet (first: {sample} at {soc:g} %)", location=name)

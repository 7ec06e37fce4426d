"""A pulse-test file as users hand it in: a CSV (or a polars frame) of the 21 turning-point
voltages per test, validated into arrays, every error naming the file, row and column.

One pulse test per row; header names are case-insensitive; extra columns are ignored:

==============  ==========================================================  ===================
column          meaning and unit                                            required
==============  ==========================================================  ===================
``soc``         state of charge the cell arrived with, % of rated capacity  yes
``U1``..``U21`` turning-point voltages in V, in protocol order              yes
                (``data/pulse_cells.toml``: rest, then start / end / stop /
                rest of the five pulses)
``chemistry``   LFP, LMO, NMC, NCA, LCO, LTO                                unless the caller
                                                                            gives it (the
                                                                            battery's record)
``rated_ah``    rated capacity, Ah                                          likewise
``pulse_width_s`` pulse width, s (default 5)                                no
``cell_id``     the tested cell, free text                                  no
==============  ==========================================================  ===================

The PulseBat column names (``SOC``, ``Mat``, ``Qn``, ``Pt``, ``ID``) are accepted as aliases, so a
sheet of that data set saved as CSV reads as is. Columns in other units (``U1_mV``, ``rated_mAh``,
``soc_fraction``) are refused with the conversion to make, never silently rescaled. Rows are
counted as in a spreadsheet: the header is row 1, the first test row 2.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.health.pulse_features import (
    N_POINTS,
    N_PULSES,
    chemistries,
    check_directions,
    chemistry_family,
    config,
    default_currents,
)

VOLTAGES = [f"U{i}" for i in range(1, N_POINTS + 1)]
#: Accepted header names (lower case) of each column.
ALIASES: dict[str, tuple[str, ...]] = {
    "soc": ("soc", "soc_pct", "soc_percent"),
    "chemistry": ("chemistry", "mat"),
    "rated_ah": ("rated_ah", "rated_capacity_ah", "qn"),
    "pulse_width_s": ("pulse_width_s", "pt"),
    "cell_id": ("cell_id", "id"),
}
#: Header names that carry a unit we do not take, and the conversion to make.
_WRONG_UNITS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^u\d+[ _]*\(?mv\)?$"), "voltages must be in V (divide mV by 1000, name the "
                                         "columns U1..U21)"),
    (re.compile(r"^(rated_?)?(capacity_?)?m_?ah$|^rated_mah$|^qn_mah$"),
     "rated capacity must be in Ah (divide mAh by 1000, name the column rated_ah)"),
    (re.compile(r"^soc_?(fraction|frac)$"), "SOC must be in % (multiply the fraction by 100, "
                                            "name the column soc)"),
    (re.compile(r"^pulse_width_?ms$"), "pulse width must be in s (divide ms by 1000, name the "
                                       "column pulse_width_s)"),
)
_FIRST_ROW = 2  # the header is row 1, as in a spreadsheet


def limits() -> dict[str, int]:
    """Size limits of one file (``[input]`` of ``data/pulse_cells.toml``: a convention)."""
    spec = config()["input"]
    return {"max_file_bytes": int(spec["max_file_bytes"]), "max_rows": int(spec["max_rows"])}


@dataclass(frozen=True)
class PulseTable:
    """Validated pulse tests: arrays with one entry per test, and where they came from."""

    source: str               # file name (or "frame")
    sha256: str | None        # of the file's bytes; None for a frame
    rows: np.ndarray          # row of each test in the file (header = row 1)
    voltages: np.ndarray      # (n, 21), V
    soc: np.ndarray           # %
    chemistry: np.ndarray     # object
    rated_ah: np.ndarray      # Ah
    width_s: np.ndarray       # s
    currents: np.ndarray      # (n, 5), C-rate, + charge
    cell_id: list[str | None]
    given: frozenset[str]     # optional columns present in the input ("chemistry", "rated_ah"...)

    def __len__(self) -> int:
        return len(self.soc)


def read_pulse_file(source: str | Path | bytes | pl.DataFrame, *, chemistry: str | None = None,
                    rated_ah: float | None = None, name: str | None = None) -> PulseTable:
    """Read and validate pulse tests from a CSV file (a path, or its bytes as uploaded) or a
    polars frame of the documented columns.
    ``chemistry`` and ``rated_ah`` fill in what the input does not say (e.g. from the battery's
    record). Raises :class:`ValidationFailed` naming the file, row and column of the first
    problem; nothing is estimated from a file with any bad row."""
    lim = limits()
    if isinstance(source, pl.DataFrame):
        label = name or "frame"
        raw = source.select(pl.all().cast(pl.String))
        digest = None
    elif isinstance(source, bytes | bytearray):
        label = name or "upload"
        if len(source) > lim["max_file_bytes"]:
            raise ValidationFailed(f"file of {len(source):,} bytes is over the limit of "
                                   f"{lim['max_file_bytes']:,} bytes for a pulse-test file",
                                   location=label)
        digest = hashlib.sha256(source).hexdigest()
        raw = _parse_csv(bytes(source), label)
    else:
        path = Path(source)
        label = name or path.name
        if not path.is_file():
            raise ValidationFailed("no such file", location=str(path))
        size = path.stat().st_size
        if size > lim["max_file_bytes"]:
            raise ValidationFailed(f"file of {size:,} bytes is over the limit of "
                                   f"{lim['max_file_bytes']:,} bytes for a pulse-test file",
                                   location=label)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        raw = _parse_csv(data, label)
    return _validate(raw, label, digest, chemistry=chemistry, rated_ah=rated_ah,
                     max_rows=lim["max_rows"])


def _parse_csv(data: bytes, label: str) -> pl.DataFrame:
    if not data.strip():
        raise ValidationFailed("the file is empty", location=label)
    if b"\x00" in data[:4096]:
        raise ValidationFailed("not a text (CSV) file", location=label)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"not UTF-8 text (byte {exc.start})", location=label) from None
    sample = text.split("\n", 1)[0]
    sep = ";" if sample.count(";") > sample.count(",") else ("\t" if "\t" in sample else ",")
    try:
        return pl.read_csv(io.StringIO(text), separator=sep, infer_schema=False,
                           truncate_ragged_lines=False)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationFailed(f"not a readable CSV table: {first}", location=label) from None


def _columns(raw: pl.DataFrame, label: str) -> dict[str, str]:
    """Our column name -> the input's, after refusing columns in the wrong unit."""
    lower: dict[str, str] = {}
    for col in raw.columns:
        key = col.strip().lower()
        for pattern, why in _WRONG_UNITS:
            if pattern.match(key):
                raise ValidationFailed(f"column '{col}': {why}", location=label)
        lower.setdefault(key, col)
    found = {}
    for ours, names in ALIASES.items():
        hit = next((lower[n] for n in names if n in lower), None)
        if hit is not None:
            found[ours] = hit
    points = sorted(int(m.group(1)) for k in lower if (m := re.fullmatch(r"u(\d+)(?:_?v)?", k)))
    numbered = {int(m.group(1)): lower[k] for k in lower
                if (m := re.fullmatch(r"u(\d+)(?:_?v)?", k))}
    missing = [f"U{i}" for i in range(1, N_POINTS + 1) if i not in numbered]
    if missing:
        span = missing[0] if len(missing) == 1 else f"{missing[0]}..{missing[-1]}"
        few = " (too few points)" if len(points) < N_POINTS else ""
        raise ValidationFailed(
            f"missing column(s) {span}: a pulse test has {N_POINTS} turning-point voltages "
            f"(U1..U{N_POINTS}, in V){few}; the file has {len(points)}", location=label)
    extra = [i for i in points if i > N_POINTS]
    if extra:
        raise ValidationFailed(
            f"column U{extra[0]}: a pulse test has {N_POINTS} turning-point voltages "
            f"(U1..U{N_POINTS}); this file has {len(points)} (another protocol?)", location=label)
    if "soc" not in found:
        raise ValidationFailed("missing column 'soc' (state of charge at the test, % of rated "
                               "capacity)", location=label)
    found.update({f"U{i}": numbered[i] for i in range(1, N_POINTS + 1)})
    return found


def _numbers(raw: pl.DataFrame, col: str, ours: str, label: str, *, required: bool
             ) -> np.ndarray:
    text = raw[col].str.strip_chars()
    values = text.cast(pl.Float64, strict=False)
    bad = (values.is_null() & text.is_not_null() & (text != "")) | ~values.is_finite().fill_null(True)
    if required:
        bad = bad | values.is_null()
    if bad.any():
        i = int(bad.arg_max())
        shown = text[i]
        what = "is empty" if shown in (None, "") else f"is not a finite number ({shown!r})"
        raise ValidationFailed(f"column '{ours}' {what}", location=f"{label} row {i + _FIRST_ROW}")
    return values.to_numpy().astype(float)


def _validate(raw: pl.DataFrame, label: str, digest: str | None, *, chemistry: str | None,
              rated_ah: float | None, max_rows: int) -> PulseTable:
    cols = _columns(raw, label)
    n = raw.height
    if n == 0:
        raise ValidationFailed("no pulse tests: the file has a header only", location=label)
    if n > max_rows:
        raise ValidationFailed(f"{n:,} pulse tests, over the limit of {max_rows:,} per file",
                               location=label)
    rows = np.arange(n) + _FIRST_ROW
    u = np.column_stack([_numbers(raw, cols[v], v, label, required=True) for v in VOLTAGES])
    soc = _numbers(raw, cols["soc"], "soc", label, required=True)
    where = lambda i: f"{label} row {int(rows[i])}"  # noqa: E731 - local shorthand

    chem = _text_column(raw, cols.get("chemistry"), chemistry, "chemistry", label)
    chem = np.array([chemistry_family(c) if c else c for c in chem], dtype=object)
    windows = chemistries()
    unknown = np.array([c not in windows for c in chem])
    if unknown.any():
        i = int(np.argmax(unknown))
        raise ValidationFailed(f"unknown chemistry '{chem[i]}' (known: "
                               f"{', '.join(sorted(windows))})", location=f"{where(i)}, chemistry")
    rated = (_numbers(raw, cols["rated_ah"], "rated_ah", label, required=rated_ah is None)
             if "rated_ah" in cols else None)
    if rated is None:
        if rated_ah is None:
            raise ValidationFailed("no rated capacity: add a 'rated_ah' column (Ah) or give it",
                                   location=label)
        rated = np.full(n, float(rated_ah))
    else:
        rated = np.where(np.isnan(rated), float(rated_ah or np.nan), rated)
    width = (_numbers(raw, cols["pulse_width_s"], "pulse_width_s", label, required=False)
             if "pulse_width_s" in cols else np.full(n, np.nan))
    width = np.where(np.isnan(width), float(config()["pulse"]["width_s"]), width)

    for ok, column, message in (
        (soc <= 100, "soc", "SOC must be in % (0-100), got {}"),
        ((soc <= 0) | (soc >= 1), "soc", "SOC {} looks like a fraction: give % (5 for 5 %)"),
        (soc >= 0, "soc", "SOC must be in % (0-100), got {}"),
        (rated > 0, "rated_ah", "rated capacity must be positive, got {} Ah"),
        (rated <= 2000, "rated_ah", "rated capacity {} Ah is implausible for a cell (mAh given "
                                    "for Ah?)"),
        (width > 0, "pulse_width_s", "pulse width must be positive, got {} s"),
    ):
        if not ok.all():
            i = int(np.argmin(ok))
            value = {"soc": soc, "rated_ah": rated, "pulse_width_s": width}[column][i]
            raise ValidationFailed(message.format(f"{value:g}"), location=f"{where(i)}, {column}")

    low = np.array([windows[c][0] for c in chem])
    high = np.array([windows[c][1] for c in chem])
    milli = np.median(u, axis=1) > 100
    if milli.any():
        i = int(np.argmax(milli))
        raise ValidationFailed(f"voltages look like millivolts (median {np.median(u[i]):g}): "
                               "give volts (divide by 1000)", location=where(i))
    outside = (u < low[:, None]) | (u > high[:, None])
    if outside.any():
        i, j = (int(v) for v in np.argwhere(outside)[0])
        raise ValidationFailed(
            f"{u[i, j]:g} V is outside the plausible {chem[i]} window {low[i]:g}-{high[i]:g} V "
            "(wrong units or wrong chemistry?)", location=f"{where(i)}, U{j + 1}")

    currents = np.empty((n, N_PULSES))
    for key in {(c, r) for c, r in zip(chem, rated, strict=True)}:
        same = (chem == key[0]) & (rated == key[1])
        currents[same] = default_currents(key[0], key[1])
    check_directions(u, currents, location=label, row_offset=_FIRST_ROW)
    ids = (_text_column(raw, cols["cell_id"], None, "cell_id", label, required=False)
           if "cell_id" in cols else [None] * n)
    return PulseTable(source=label, sha256=digest, rows=rows, voltages=u, soc=soc,
                      chemistry=chem, rated_ah=rated, width_s=width, currents=currents,
                      cell_id=list(ids),
                      given=frozenset(k for k in ("chemistry", "rated_ah", "pulse_width_s",
                                                  "cell_id") if k in cols))


def _text_column(raw: pl.DataFrame, col: str | None, default: str | None, ours: str, label: str,
                 *, required: bool = True) -> list[str | None]:
    n = raw.height
    if col is None:
        if default is None and required:
            raise ValidationFailed(f"no {ours}: add a '{ours}' column or give it", location=label)
        return [default] * n
    values = raw[col].str.strip_chars().to_list()
    out = [v if v not in (None, "") else default for v in values]
    if required:
        missing = [i for i, v in enumerate(out) if v is None]
        if missing:
            raise ValidationFailed(f"column '{ours}' is empty",
                                   location=f"{label} row {missing[0] + _FIRST_ROW}")
    return out


__all__ = ["ALIASES", "VOLTAGES", "PulseTable", "limits", "read_pulse_file"]

"""What every reader does around parsing: load bytes once, hash them, build metadata, finish."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.normalize import finish
from batteryloop.cycling.readers._text import sha256, to_utf8
from batteryloop.cycling.schema import CyclerMetadata


def load(path: Path) -> bytes:
    """All bytes of the file; a missing or empty file is a clear error."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CyclerFileError(path, f"cannot open: {exc.strerror or exc}") from exc
    if not raw or raw.isspace():  # (not raw.strip(): that copies the file)
        raise CyclerFileError(path, "file is empty")
    return raw


def new_meta(path: Path, raw: bytes, tester: str, fmt: str, **kw: object) -> CyclerMetadata:
    return CyclerMetadata(source_path=str(path), sha256=sha256(raw), tester=tester,
                          file_format=fmt, **kw)  # type: ignore[arg-type]


def text_of(raw: bytes) -> bytes:
    return to_utf8(raw)


def done(df: pl.DataFrame, meta: CyclerMetadata) -> tuple[pl.DataFrame, CyclerMetadata]:
    """Normalise, refusing a table with no rows."""
    if df.height == 0:
        raise CyclerFileError(meta.source_path, "no data rows")
    return finish(df, meta), meta


def scaled(col: str, factor: float, target: str, meta: CyclerMetadata, label: str) -> pl.Expr:
    """Unit conversion expression that also records itself (e.g. 'mAh -> Ah')."""
    if factor != 1.0:
        meta.note(f"{label} ({col} -> {target})")
    return (pl.col(col).cast(pl.Float64, strict=False) * factor).alias(target)

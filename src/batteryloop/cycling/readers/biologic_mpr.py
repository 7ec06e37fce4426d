"""BioLogic EC-Lab binary ``.mpr``, read by our own code (the libraries that read it, galvani,
eclabfiles and yadg, are GPL-3.0, so none is used or copied).

Structure (as observed in the files and described publicly):

* the file starts ``BIO-LOGIC MODULAR FILE``; then modules, each ``MODULE`` + 10-byte short name
  + 25-byte long name + a header: old style ``u32 length, u32 version, 8-byte date`` or, when
  the first u32 is 0xFFFFFFFF, ``u32 0xFFFFFFFF, u32 length, u32 0, u32 version, 8-byte date``;
* the ``VMP data`` module holds ``u32 n_records``, the number of columns (u8 for version < 10,
  u16 after), one u16 column id per column, padding, then n_records fixed-size records at the
  END of the module. We locate the records from the end (module length - n x record size), so no
  version-specific header length is hard-coded, and check that the layout adds up exactly.

Column ids (name, byte size) are facts of the format: the names are EC-Lab's own, listed in the
order of their ids in EClab.exe (echemdata/galvani issues #80 and #85); ids 1, 2, 3, 21, 31, 65
are flag bits sharing one byte. Sizes were checked on the shared files by the exact-size rule
above. An id we do not know stops the read with an error naming it: guessing its size would
misalign every later column.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from batteryloop.cycling.errors import CyclerFileError
from batteryloop.cycling.readers._common import load, new_meta
from batteryloop.cycling.readers.registry import Reader, register
from batteryloop.cycling.schema import CyclerMetadata

if TYPE_CHECKING:
    import numpy as np

MAGIC = b"BIO-LOGIC MODULAR FILE"
_FLAG_IDS = {1, 2, 3, 21, 31, 65}
#: id -> (EC-Lab column name, numpy dtype)
COLUMN_IDS: dict[int, tuple[str, str]] = {
    4: ("time/s", "<f8"), 5: ("control/V/mA", "<f4"), 6: ("Ewe/V", "<f4"),
    7: ("dq/mA.h", "<f8"), 8: ("I/mA", "<f4"), 9: ("Ece/V", "<f4"), 11: ("<I>/mA", "<f8"),
    13: ("(Q-Qo)/mA.h", "<f8"), 16: ("Analog IN 1/V", "<f4"), 19: ("control/V", "<f4"),
    20: ("control/mA", "<f4"), 23: ("dQ/mA.h", "<f8"), 24: ("cycle number", "<f8"),
    32: ("freq/Hz", "<f4"), 33: ("|Ewe|/V", "<f4"), 34: ("|I|/A", "<f4"),
    35: ("Phase(Z)/deg", "<f4"), 36: ("|Z|/Ohm", "<f4"), 37: ("Re(Z)/Ohm", "<f4"),
    38: ("-Im(Z)/Ohm", "<f4"), 39: ("I Range", "<u2"), 70: ("P/W", "<f4"),
    74: ("|Energy|/W.h", "<f8"), 76: ("<I>/mA", "<f4"), 77: ("<Ewe>/V", "<f4"),
    96: ("|Ece|/V", "<f4"), 98: ("Phase(Zce)/deg", "<f4"), 99: ("|Zce|/Ohm", "<f4"),
    100: ("Re(Zce)/Ohm", "<f4"), 101: ("-Im(Zce)/Ohm", "<f4"),
    123: ("Energy charge/W.h", "<f8"), 124: ("Energy discharge/W.h", "<f8"),
    125: ("Capacitance charge/uF", "<f8"), 126: ("Capacitance discharge/uF", "<f8"),
    131: ("Ns", "<u2"), 430: ("id430", "<f4"), 431: ("id431", "<f4"), 432: ("id432", "<f4"),
    433: ("id433", "<f4"), 467: ("Q charge/discharge/mA.h", "<f8"), 468: ("half cycle", "<u4"),
    469: ("z cycle", "<u4"), 471: ("<Ece>/V", "<f4"),
}


def sniff(head: bytes, path: Path) -> float:
    return 0.95 if head.startswith(MAGIC) else 0.0


def _modules(path: Path, raw: bytes) -> dict[str, tuple[int, int, int]]:
    """short name -> (version, data start, declared length)."""
    out: dict[str, tuple[int, int, int]] = {}
    pos = raw.find(b"MODULE", len(MAGIC))
    while pos >= 0:
        name = raw[pos + 6: pos + 16].decode("latin-1").strip()
        h = pos + 41
        if raw[h:h + 4] == b"\xff\xff\xff\xff":
            length, _, version = struct.unpack_from("<III", raw, h + 4)
            start = h + 24
        else:
            if h + 8 > len(raw):
                raise CyclerFileError(path, f"module {name!r} header cut short")
            length, version = struct.unpack_from("<II", raw, h)
            start = h + 16
        out[name] = (version, start, length)
        pos = raw.find(b"MODULE", start + length) if start + length < len(raw) else -1
    return out


def _layout(path: Path, ids: tuple[int, ...]) -> np.dtype:
    import numpy as np  # only .mpr files need it: not imported with the other readers

    fields: list[tuple[str, str]] = []
    if any(i in _FLAG_IDS for i in ids):
        fields.append(("flags", "u1"))
    for cid in ids:
        if cid in _FLAG_IDS:
            continue
        if cid not in COLUMN_IDS:
            raise CyclerFileError(path, f"BioLogic column id {cid} is unknown to this reader; "
                                  "cannot lay out the records")
        name, dt = COLUMN_IDS[cid]
        if name in {f[0] for f in fields}:
            name = f"{name}#{cid}"
        fields.append((name, dt))
    return np.dtype(fields)


def parse(path: Path) -> tuple[pl.DataFrame, CyclerMetadata]:
    path = Path(path)
    raw = load(path)
    if not raw.startswith(MAGIC):
        raise CyclerFileError(path, "not a BioLogic .mpr (no 'BIO-LOGIC MODULAR FILE' header)")
    meta = new_meta(path, raw, "BioLogic", "biologic_mpr")
    mods = _modules(path, raw)
    if "VMP data" not in mods:
        raise CyclerFileError(path, "no 'VMP data' module")
    version, start, length = mods["VMP data"]
    n = struct.unpack_from("<I", raw, start)[0]
    wide = version >= 10
    nc = struct.unpack_from("<H" if wide else "<B", raw, start + 4)[0]
    id_at = start + (6 if wide else 5)
    ids = struct.unpack_from(f"<{nc}H", raw, id_at)
    dtype = _layout(path, ids)
    end = start + length
    first = end - n * dtype.itemsize
    if first < id_at + 2 * nc:
        raise CyclerFileError(path, f"record layout does not fit the data module ({n} records of "
                              f"{dtype.itemsize} bytes in {length} bytes)")
    available = max(0, (min(end, len(raw)) - first) // dtype.itemsize)
    if available < n:
        meta.truncated_at_row = available + 1
        n = available
    import numpy as np

    rec = np.frombuffer(raw, dtype=dtype, count=n, offset=first)
    cols = {name: rec[name] for name in dtype.names if name != "flags"}
    df = pl.DataFrame(cols)
    meta.extra["column_ids"] = list(ids)
    meta.extra["data_module_version"] = version
    return _canonical(df, meta), meta


def _canonical(df: pl.DataFrame, meta: CyclerMetadata) -> pl.DataFrame:
    exprs = [pl.col("time/s").alias("test_time_second")]
    volt = next((c for c in ("Ewe/V", "<Ewe>/V") if c in df.columns), None)
    if volt is None:
        raise CyclerFileError(meta.source_path, "no Ewe/V column in the .mpr")
    exprs.append(pl.col(volt).cast(pl.Float64).alias("voltage_volt"))
    curr = next((c for c in ("I/mA", "<I>/mA") if c in df.columns), None)
    if curr:
        exprs.append((pl.col(curr).cast(pl.Float64) / 1000).alias("current_ampere"))
        meta.note(f"mA -> A ({curr})")
    elif "dq/mA.h" in df.columns:
        dt = pl.col("time/s").diff()
        i = (pl.col("dq/mA.h") * 3.6 / dt).fill_nan(None).fill_null(strategy="backward")
        exprs.append(i.alias("current_ampere"))
        meta.note("no current column: current = dq / dt (mA.h -> A)")
    if "dq/mA.h" in df.columns:
        exprs.append((pl.col("dq/mA.h") / 1000).alias("_dq_ah"))
        meta.note("capacity from dq/mA.h increments (mA.h -> Ah)")
    if "Ns" in df.columns:
        exprs.append(pl.col("Ns").cast(pl.Int64).alias("step_id"))
    if "cycle number" in df.columns:
        exprs.append(pl.col("cycle number").cast(pl.Int64).alias("cycle_count"))
    elif "half cycle" in df.columns:
        exprs.append((pl.col("half cycle").cast(pl.Int64) // 2).alias("cycle_count"))
        meta.note("cycle_count = half cycle // 2")
    return df.select(exprs)


READER = register(Reader("biologic_mpr", "BioLogic", sniff, parse, (".mpr",)))

"""Tester-file ingest speed: batteryloop against BEEP, cellpy and a raw polars/pyarrow CSV read.

For every tester file in shared/data/cyclers/ (found through BATTERYLOOP_SHARED, default
``../shared`` from the repository root), in one invocation:

* raw: ``pl.read_csv`` (types inferred; again with every column's type given) and
  ``pyarrow.csv.read_csv`` of the file's table (text files only): the fastest is the limit;
* batteryloop: ``batteryloop.cycling.read`` (detect, parse, normalise, validate), then the per-cycle
  summary ``batteryloop.cycling.summary.cycles(df)`` when that module exists ("n/a" otherwise);
* BEEP: ``<Maker>Datapath.from_file`` (load) and ``.structure()`` (its per-cycle interpolation and
  summary; without a parameters file it structures the aging cycles only), in BEEP's own virtual
  environment, on the makes BEEP reads;
* cellpy: ``cellpy.get(..., instrument=..., auto_summary=False)`` (load), then ``make_step_table()``
  and ``make_summary()`` (its summarising), in cellpy's own virtual environment.

Each tool runs on each file in a fresh subprocess, so that its peak resident memory (``ru_maxrss``
over its baseline after imports and, for polars, a tiny warm-up) is its own. A subprocess does one warm-up pass (the memory figure),
then ``--repeat`` timed passes; the figures are the best pass (wall clock, with process CPU time in
the JSON). A tool that cannot read a file is skipped on it, and the output says so and why.

rows/s = rows of the canonical table / best load time (every tool on a file is divided by the same
row count; a tool that kept a different number of rows is marked). ms/cycle = best summarising
time / cycles of the file (the per-cycle summary's rows, else distinct ``cycle_count``).

    # competitors, once, outside the repository (separate venvs: their pins clash with ours)
    python3 -m venv ../bench-envs/beep   && ../bench-envs/beep/bin/pip install beep
    python3 -m venv ../bench-envs/cellpy && ../bench-envs/cellpy/bin/pip install cellpy
    .venv/bin/python benchmarks/ingest.py                       # every file, best of 3
    .venv/bin/python benchmarks/ingest.py --files maccor pec --repeat 5 --json /tmp/ingest.json

Venvs are looked for under BATTERYLOOP_BENCH_ENVS (default ``../bench-envs`` from the repository
root); ``--beep-python`` / ``--cellpy-python`` point at other interpreters. A missing venv skips
that competitor everywhere, and says so.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = "@@RESULT "
SIDE_FILES = ("_metadata.csv", ".mpl")  # sidecars read together with their data file

# --------------------------------------------------------------------------------------------
# Workers: small scripts run with ``python -c SCRIPT ARGS_JSON`` in a fresh process. Each prints
# one line ``@@RESULT {json}`` last, so that whatever a library prints on stdout does no harm.
# --------------------------------------------------------------------------------------------

PRELUDE = r'''
import gc, json, os, resource, sys, time
ARGS = json.loads(sys.argv[1])
PATH = ARGS["path"]
REPEAT = max(1, int(ARGS["repeat"]))
RES = {"ok": False}

def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

def timed(fn):
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0

def best(passes):
    """passes: list of (wall, cpu); the pass with the least wall time."""
    w, c = min(passes)
    return {"wall_s": w, "cpu_s": c, "passes_wall_s": [p[0] for p in passes]}

def err(e):
    return (type(e).__name__ + ": " + str(e)).replace("\n", " ")[:240]

def emit():
    sys.stdout.write("\n" + "@@RESULT " + json.dumps(RES) + "\n")
    sys.stdout.flush()
'''

# polars starts its thread pool and allocator arenas on first use: do that on a few bytes before
# the memory baseline, so that the peak over the baseline is what the file itself costs.
WARMUP = r'''
import io
import polars as pl
_w = pl.read_csv(io.BytesIO(b"a,b,c\n" + b"1,2.5,x\n" * 2000))
_w = _w.group_by("a").agg(pl.col("b").sum()).sort("a")
del _w
'''

RAW_WORKER = PRELUDE + WARMUP + r'''
import pyarrow as pa
import pyarrow.csv as pacsv
spec = ARGS["spec"]
RES["versions"] = {"polars": pl.__version__, "pyarrow": pa.__version__}
PL_KW = dict(separator=spec["sep"], skip_rows=spec["skip"], quote_char=spec["quote"],
             truncate_ragged_lines=True, ignore_errors=True)
ENC = ["utf8"]
SCHEMA = [None]

def pl_read():  # what a user types: types inferred from the first 10,000 rows
    try:
        df = pl.read_csv(PATH, encoding=ENC[0], infer_schema_length=10000, **PL_KW)
    except Exception:
        if ENC[0] != "utf8":
            raise
        ENC[0] = "utf8-lossy"  # a Windows (cp1252) export: decode lossily from now on
        RES["polars_encoding"] = ENC[0]
        df = pl.read_csv(PATH, encoding=ENC[0], infer_schema_length=10000, **PL_KW)
    SCHEMA[0] = df.schema
    return df

def pl_typed():  # the limit: every column parsed, its type known up front (no inference pass)
    return pl.read_csv(PATH, encoding=ENC[0], schema=SCHEMA[0], **PL_KW)

def pa_read():
    if spec["pa_names"]:
        ro = pacsv.ReadOptions(skip_rows=spec["skip"] + 1, column_names=spec["pa_names"],
                               block_size=1 << 22)
    else:
        ro = pacsv.ReadOptions(skip_rows=spec["skip"], block_size=1 << 22)
    po = pacsv.ParseOptions(delimiter=spec["sep"], quote_char=spec["quote"] or False,
                            invalid_row_handler=lambda row: "skip")
    co = pacsv.ConvertOptions(check_utf8=False)
    return pacsv.read_csv(PATH, read_options=ro, parse_options=po, convert_options=co)

for name, fn in (("polars", pl_read), ("polars_typed", pl_typed), ("pyarrow", pa_read)):
    try:
        base = maxrss()
        t, w, c = timed(fn)
        RES[name] = {"rows": t.num_rows if hasattr(t, "num_rows") else t.height,
                     "cols": t.num_columns if hasattr(t, "num_columns") else t.width}
        if name == "polars":  # ru_maxrss is a high-water mark: only the first read's is its own
            RES[name]["mem_peak_bytes"] = maxrss() - base
            RES[name]["table_bytes"] = t.estimated_size()
        del t
        passes = []
        for _ in range(REPEAT):
            t, w, c = timed(fn)
            del t
            passes.append((w, c))
        RES[name]["load"] = best(passes)
    except Exception as e:
        RES[name] = {"error": err(e)}
RES["ok"] = True
emit()
'''

BL_WORKER = PRELUDE + WARMUP + r'''
import batteryloop
import batteryloop.cycling as cy
import batteryloop.cycling.readers  # read() imports its readers lazily: keep them out of the memory
try:
    from batteryloop.cycling.summary import cycles as summarise
except ImportError as e:
    summarise, RES["summary_error"] = None, "batteryloop.cycling.summary.cycles not available: " + err(e)
RES["versions"] = {"polars": pl.__version__}
try:
    mods = set(sys.modules)
    base = maxrss()
    (df, meta), w, c = timed(lambda: cy.read(PATH))
    RES["mem_peak_read_bytes"] = maxrss() - base
    RES["read_imported"] = sorted({m.split(".")[0] for m in set(sys.modules) - mods
                                   if not m.startswith(("batteryloop", "_"))}
                                  - {m.split(".")[0] for m in mods})  # new packages only
    RES["table_bytes"] = df.estimated_size()
    RES["rows"] = df.height
    RES["cycles_distinct"] = df["cycle_count"].n_unique()
    RES["format"] = meta.file_format
    RES["tester"] = meta.tester
    if summarise is not None:
        try:
            s, w, c = timed(lambda: summarise(df))
            RES["mem_peak_read_summary_bytes"] = maxrss() - base
            RES["summary_cycles"] = s.height
            del s
        except Exception as e:
            summarise, RES["summary_error"] = None, "summary.cycles failed: " + err(e)
    del df, meta
    passes, spasses = [], []
    for _ in range(REPEAT):
        (df, meta), w, c = timed(lambda: cy.read(PATH))
        passes.append((w, c))
        if summarise is not None:
            s, w, c = timed(lambda: summarise(df))
            spasses.append((w, c))
            del s
        del df, meta
    RES["load"] = best(passes)
    if spasses:
        RES["summary"] = best(spasses)
    RES["ok"] = True
except Exception as e:
    RES["error"] = err(e)
emit()
'''

BEEP_WORKER = PRELUDE + r'''
os.environ["TQDM_DISABLE"] = "1"
import logging, warnings
warnings.filterwarnings("ignore")
from importlib.metadata import version
import importlib
mod_name, cls_name = ARGS["loader"].rsplit(".", 1)
Cls = getattr(importlib.import_module(mod_name), cls_name)
import pandas
logging.disable(logging.CRITICAL)
RES["versions"] = {"beep": version("beep"), "pandas": pandas.__version__}
RES["loader"] = ARGS["loader"]
try:
    base = maxrss()
    dp, w, c = timed(lambda: Cls.from_file(PATH))
    RES["mem_peak_load_bytes"] = maxrss() - base
    RES["rows"] = len(dp.raw_data)
    RES["cycles_distinct"] = int(dp.raw_data["cycle_index"].nunique())
except Exception as e:
    RES["error"] = "load failed: " + err(e)
    emit(); sys.exit(0)
try:
    dp.structure()
    RES["mem_peak_load_summary_bytes"] = maxrss() - base
    ss = getattr(dp, "structured_summary", None)
    RES["summary_cycles"] = None if ss is None else len(ss)
    structure_ok = True
except Exception as e:
    RES["summary_error"] = "structure() failed: " + err(e)
    structure_ok = False
del dp
passes, spasses = [], []
for _ in range(REPEAT):
    dp, w, c = timed(lambda: Cls.from_file(PATH))
    passes.append((w, c))
    if structure_ok:
        _, w, c = timed(dp.structure)
        spasses.append((w, c))
    del dp
RES["load"] = best(passes)
if spasses:
    RES["summary"] = best(spasses)
    tot = [(a[0] + b[0], a[1] + b[1]) for a, b in zip(passes, spasses)]
    RES["load_summary"] = best(tot)
RES["ok"] = True
emit()
'''

CELLPY_WORKER = PRELUDE + r'''
import logging, warnings
warnings.filterwarnings("ignore")
from importlib.metadata import version
import cellpy
import pandas
RES["versions"] = {"cellpy": version("cellpy"), "pandas": pandas.__version__}
INST, KW = ARGS["instrument"], ARGS.get("kwargs") or {}
RES["loader"] = INST + ("" if not KW else " " + json.dumps(KW))

def load():
    c = cellpy.get(PATH, instrument=INST, auto_summary=False, logging_mode="CRITICAL", **KW)
    if c is None or c.data.raw is None or len(c.data.raw) == 0:
        raise RuntimeError("cellpy.get returned no data")
    return c

def summarise(c):
    c.make_step_table()
    c.make_summary()

try:
    base = maxrss()
    c, w, cp = timed(load)
    RES["mem_peak_load_bytes"] = maxrss() - base
    RES["rows"] = len(c.data.raw)
    RES["cycles_distinct"] = int(c.data.raw["cycle_index"].nunique())
except Exception as e:
    RES["error"] = "load failed: " + err(e)
    emit(); sys.exit(0)
try:
    summarise(c)
    RES["mem_peak_load_summary_bytes"] = maxrss() - base
    RES["summary_cycles"] = len(c.data.summary)
    summary_ok = True
except Exception as e:
    RES["summary_error"] = "make_step_table/make_summary failed: " + err(e)
    summary_ok = False
del c
passes, spasses = [], []
for _ in range(REPEAT):
    c, w, cp = timed(load)
    passes.append((w, cp))
    if summary_ok:
        _, w, cp = timed(lambda: summarise(c))
        spasses.append((w, cp))
    del c
RES["load"] = best(passes)
if spasses:
    RES["summary"] = best(spasses)
    tot = [(a[0] + b[0], a[1] + b[1]) for a, b in zip(passes, spasses)]
    RES["load_summary"] = best(tot)
RES["ok"] = True
emit()
'''

# --------------------------------------------------------------------------------------------
# Which competitor loader goes with which file. The folder is the tester make (shared/README.md).
# --------------------------------------------------------------------------------------------

BEEP_LOADERS = {  # make -> (Datapath class, the file suffixes it is tried on)
    "arbin": ("beep.structure.arbin.ArbinDatapath", (".csv",)),
    "maccor": ("beep.structure.maccor.MaccorDatapath", None),  # raw exports: any suffix
    "neware": ("beep.structure.neware.NewareDatapath", (".csv",)),
    "biologic": ("beep.structure.biologic.BiologicDatapath", (".csv", ".txt")),
    "novonix": ("beep.structure.novonix.NovonixDatapath", (".csv",)),
}


def beep_loader(path: Path) -> tuple[str | None, str]:
    make = path.parent.name.lower()
    entry = BEEP_LOADERS.get(make)
    if entry is None:
        return None, f"BEEP has no reader for {make} files"
    cls, suffixes = entry
    if suffixes is not None and path.suffix.lower() not in suffixes:
        return None, f"BEEP reads {make} {'/'.join(suffixes)} files only, not {path.suffix}"
    return cls, ""


def cellpy_loader(path: Path) -> tuple[tuple[str, dict] | None, str]:
    make, suf, name = path.parent.name.lower(), path.suffix.lower(), path.name.lower()
    if make == "arbin":
        if suf == ".res":
            return ("arbin_res", {}), ""
        return ("arbin_sql_csv", {}), ""  # cellpy's only Arbin CSV reader (Arbin SQL exports)
    if make == "maccor":
        # model "one": tab-separated export with 3 comment rows; "zero": cellpy's default model
        return ("maccor_txt", {"model": "one" if suf == ".txt" else "zero"}), ""
    if make == "neware":
        if suf in (".nda", ".ndax"):
            return ("neware_nda", {}), ""
        return ("neware_txt", {"model": "one"}), ""
    if make == "biologic":
        if suf == ".mpr":
            return ("biologics_mpr", {}), ""
        return None, "cellpy has no reader for BioLogic text exports"
    if make == "pec":
        return ("pec_csv", {}), ""
    if make == "bdf":
        if name.endswith(".bdf.csv") or "bdf" in name:
            return ("batmo_bdf", {}), ""
        return None, "cellpy has no reader for Landt CSV exports"
    return None, f"cellpy has no reader for {make} files"


# --------------------------------------------------------------------------------------------
# The raw read: where the table starts, which separator, in a text export.
# --------------------------------------------------------------------------------------------


def raw_spec(path: Path) -> tuple[dict | None, str]:
    """Header line, separator and quoting of a text export's table, found from the file itself.

    The header is the first line (in the first 64 KiB) that has at least three fields, half of them
    non-empty, and is followed by three lines of one equal field count within one of its own.
    """
    head = path.read_bytes()[: 64 * 1024]
    if b"\x00" in head[:4096]:
        return None, "binary file: no CSV read to compare with"
    text = head.decode("utf-8", errors="replace").splitlines()[:-1]  # last may be cut short
    found: list[tuple[int, int, str]] = []
    for sep in (",", "\t", ";"):
        counts = [len(line.split(sep)) for line in text]
        for i in range(len(text) - 3):
            c, d = counts[i], counts[i + 1]
            fields = text[i].split(sep)
            if (c >= 3 and d >= 3 and counts[i + 2] == d and counts[i + 3] == d and abs(c - d) <= 1
                    and sum(1 for f in fields if f.strip()) * 2 >= c
                    and any(ch.isalpha() for ch in text[i])):
                found.append((d, -i, sep))
                break
    if not found:
        return None, "no CSV table found in the first 64 KiB"
    width, neg_i, sep = max(found)
    header = text[-neg_i]
    quote = None if header.startswith('"') and header.count('"') == 2 else '"'  # whole-line quotes
    names = header.split(sep)
    # data rows one field longer than the header (a trailing separator): pyarrow cannot truncate
    # ragged rows as polars does, so it is given the column names and skips the header line
    names = (names + [f"_extra{i}" for i in range(width - len(names))])[:width] \
        if width != len(names) else None
    return {"skip": -neg_i, "sep": sep, "quote": quote, "pa_names": names}, ""


# --------------------------------------------------------------------------------------------
# Running the workers
# --------------------------------------------------------------------------------------------


def run_worker(python: str, script: str, args: dict, timeout: float, workdir: Path) -> dict:
    env = dict(os.environ)
    env["TMPDIR"] = str(workdir)  # cellpy copies raw files to the temp dir: keep them in ours
    env["TQDM_DISABLE"] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore")
    try:
        proc = subprocess.run([python, "-c", script, json.dumps(args)], capture_output=True,
                              text=True, timeout=timeout, cwd=workdir, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
    return {"ok": False, "error": f"worker exited {proc.returncode}: {tail[0][:240]}"}


def list_files(shared: Path, selectors: list[str] | None) -> list[Path]:
    root = shared / "data" / "cyclers"
    files = sorted(p for p in root.glob("*/*") if p.is_file()
                   and not p.name.lower().endswith(SIDE_FILES))
    if not selectors:
        return files
    out = []
    for p in files:
        rel = f"{p.parent.name}/{p.name}"
        if any(s in rel or fnmatch.fnmatch(p.name, s) or fnmatch.fnmatch(rel, s)
               for s in selectors):
            out.append(p)
    return out


def bench_file(path: Path, args, pythons: dict, workdir: Path, log) -> dict:
    rec: dict = {"file": f"{path.parent.name}/{path.name}", "bytes": path.stat().st_size,
                 "skipped": {}}
    base = {"path": str(path), "repeat": args.repeat}

    spec, why = raw_spec(path)
    if spec is None:
        rec["skipped"]["raw"] = why
    else:
        rec["raw_spec"] = spec
        rec["raw"] = run_worker(sys.executable, RAW_WORKER, {**base, "spec": spec},
                                args.timeout, workdir)

    rec["batteryloop"] = run_worker(sys.executable, BL_WORKER, base, args.timeout, workdir)

    for tool, pick, script in (("beep", beep_loader, BEEP_WORKER),
                               ("cellpy", cellpy_loader, CELLPY_WORKER)):
        if args.no_competitors:
            rec["skipped"][tool] = "--no-competitors"
            continue
        if pythons.get(tool) is None:
            rec["skipped"][tool] = f"{tool} venv not found (see --{tool}-python)"
            continue
        loader, why = pick(path)
        if loader is None:
            rec["skipped"][tool] = why
            continue
        extra = ({"loader": loader} if tool == "beep"
                 else {"instrument": loader[0], "kwargs": loader[1]})
        res = run_worker(pythons[tool], script, {**base, **extra}, args.timeout, workdir)
        rec[tool] = res
        if not res.get("ok"):
            rec["skipped"][tool] = f"{extra.get('loader') or extra['instrument']}: " \
                                   f"{res.get('error', 'failed')}"
    log(f"  {rec['file']}: done")
    return rec


# --------------------------------------------------------------------------------------------
# Figures and the printed table
# --------------------------------------------------------------------------------------------


def _wall(res: dict | None, key: str, clock: str = "wall_s") -> float | None:
    if not res or not res.get("ok"):
        return None
    part = res.get(key)
    return part.get(clock) if isinstance(part, dict) else None


def _cpu_ratios(rec: dict, raw_ok: list[str]) -> dict:
    """The same ratios from process CPU time (less skewed than wall time by other load)."""
    bl = rec.get("batteryloop")
    bl_load, bl_sum = _wall(bl, "load", "cpu_s"), _wall(bl, "summary", "cpu_s")
    bl_total = bl_load + bl_sum if bl_load is not None and bl_sum is not None else None
    beep = _wall(rec.get("beep"), "load_summary", "cpu_s")
    cp = _wall(rec.get("cellpy"), "load_summary", "cpu_s")
    raws = [((rec.get("raw") or {}).get(k) or {}).get("load", {}).get("cpu_s") for k in raw_ok]
    raws = [v for v in raws if v]
    return {"x_beep": beep / bl_total if beep and bl_total else None,
            "x_cellpy": cp / bl_total if cp and bl_total else None,
            "vs_raw": bl_load / min(raws) if raws and bl_load else None}


def derive(rec: dict) -> dict:
    """Per-file figures: rows/s per tool, ms/cycle per tool, ratios, memory ratio."""
    bl = rec.get("batteryloop") or {}
    rows = bl.get("rows")
    cycles = bl.get("summary_cycles") or bl.get("cycles_distinct")
    f: dict = {"rows": rows, "cycles": cycles, "table_mb": None, "marks": []}
    if not bl.get("ok"):
        f["error"] = bl.get("error", "batteryloop failed")
        return f
    f["table_mb"] = bl["table_bytes"] / 1e6
    raw = rec.get("raw") or {}
    t = {
        "raw_polars": (raw.get("polars") or {}).get("load", {}).get("wall_s"),
        "raw_polars_typed": (raw.get("polars_typed") or {}).get("load", {}).get("wall_s"),
        "raw_pyarrow": (raw.get("pyarrow") or {}).get("load", {}).get("wall_s"),
        "batteryloop": _wall(bl, "load"),
        "beep": _wall(rec.get("beep"), "load"),
        "cellpy": _wall(rec.get("cellpy"), "load"),
    }
    f["rows_per_s"] = {k: (rows / v if v and rows else None) for k, v in t.items()}
    for tool in ("beep", "cellpy"):
        r = rec.get(tool) or {}
        if r.get("ok") and rows and r.get("rows") is not None \
                and abs(r["rows"] - rows) > max(1, 0.01 * rows):
            f["marks"].append(f"{tool} kept {r['rows']:,} rows (batteryloop {rows:,})")
    for k in ("polars", "polars_typed", "pyarrow"):
        r = raw.get(k) or {}
        if "error" in r:
            f["marks"].append(f"raw {k} read failed: {r['error']}")
    s = {"batteryloop": _wall(bl, "summary"), "beep": _wall(rec.get("beep"), "summary"),
         "cellpy": _wall(rec.get("cellpy"), "summary")}
    f["ms_per_cycle"] = {k: (1000 * v / cycles if v is not None and cycles else None)
                         for k, v in s.items()}
    beep_sum = (rec.get("beep") or {}).get("summary")
    f["beep_cpu_ms_per_cycle"] = (1000 * beep_sum["cpu_s"] / cycles
                                  if beep_sum and cycles else None)
    bl_total = (t["batteryloop"] + s["batteryloop"]) if s["batteryloop"] is not None else None
    beep_total = _wall(rec.get("beep"), "load_summary")
    cp_total = _wall(rec.get("cellpy"), "load_summary")
    f["x_beep"] = beep_total / bl_total if beep_total and bl_total else None
    f["x_cellpy"] = cp_total / bl_total if cp_total and bl_total else None
    f["x_beep_load"] = t["beep"] / t["batteryloop"] if t["beep"] else None
    f["x_cellpy_load"] = t["cellpy"] / t["batteryloop"] if t["cellpy"] else None
    raws, raw_ok = [], []
    for key in ("polars", "polars_typed", "pyarrow"):
        got = (raw.get(key) or {}).get("rows")
        if t[f"raw_{key}"] and rows and got is not None and abs(got - rows) > max(1, 0.01 * rows):
            f["marks"].append(f"raw {key} read kept {got:,} rows (batteryloop {rows:,}): "
                              "not used as the limit")
            f["rows_per_s"][f"raw_{key}"] = None
        elif t[f"raw_{key}"]:
            raws.append(t[f"raw_{key}"])
            raw_ok.append(key)
    f["vs_raw"] = t["batteryloop"] / min(raws) if raws else None
    f["cpu"] = _cpu_ratios(rec, raw_ok)
    f["mem_ratio"] = bl["mem_peak_read_bytes"] / bl["table_bytes"] if bl["table_bytes"] else None
    f["bl_peak_mb"] = bl["mem_peak_read_bytes"] / 1e6
    f["raw_peak_mb"] = ((raw.get("polars") or {}).get("mem_peak_bytes") or 0) / 1e6 or None
    return f


def _rate(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _gmean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


HEAVY_MODULES = {"pandas", "pyarrow", "numpy", "NewareNDA", "scipy", "galvani", "mdbtools"}
MEM_MIN_MB = 1.0  # below this the RSS high-water mark (allocator arenas, page granularity) is noise


def report(records: list[dict], summary_available: bool, repeat: int) -> str:
    out: list[str] = []
    w = out.append
    rows_ = [(r, derive(r)) for r in records]
    name_w = max([len(r["file"]) for r in records] + [4])

    w(f"\nReading: rows/s (canonical rows / best of {repeat} load times; '-' = not run, see skips)")
    hdr = (f"{'file':<{name_w}} {'rows':>7} {'cyc':>4} {'tbl MB':>6} | {'pl.csv':>7} "
           f"{'pl.typd':>7} {'pa.csv':>7} {'bl':>7} {'BEEP':>7} {'cellpy':>7} | {'bl/raw':>6} {'xBEEPld':>7} "
           f"{'xcpy ld':>7} {'mem x':>6} {'blMB':>5} {'plMB':>5}")
    w(hdr)
    w("-" * len(hdr))
    for r, f in rows_:
        if "error" in f:
            w(f"{r['file']:<{name_w}} batteryloop failed: {f['error']}")
            continue
        rp = f["rows_per_s"]
        w(f"{r['file']:<{name_w}} {f['rows'] or 0:>7} {f['cycles'] or 0:>4} "
          f"{f['table_mb']:>6.2f} | {_rate(rp['raw_polars']):>7} {_rate(rp['raw_polars_typed']):>7} "
          f"{_rate(rp['raw_pyarrow']):>7} "
          f"{_rate(rp['batteryloop']):>7} {_rate(rp['beep']):>7} {_rate(rp['cellpy']):>7} | "
          f"{_num(f['vs_raw']):>6} {_num(f['x_beep_load'], '{:.1f}'):>7} "
          f"{_num(f['x_cellpy_load'], '{:.1f}'):>7} {_num(f['mem_ratio'], '{:.1f}'):>6} "
          f"{_num(f['bl_peak_mb'], '{:.0f}'):>5} {_num(f['raw_peak_mb'], '{:.0f}'):>5}")

    w(f"\nSummarising: ms/cycle (best of {repeat}); x = competitor load+summarise time / "
      "batteryloop read+summary time")
    hdr2 = (f"{'file':<{name_w}} {'cyc':>4} | {'bl':>8} {'BEEP':>8} {'BEEPcpu':>8} {'cellpy':>8} | "
            f"{'xBEEP':>7} {'xcellpy':>7}")
    w(hdr2)
    w("-" * len(hdr2))
    for r, f in rows_:
        if "error" in f:
            continue
        m = f["ms_per_cycle"]
        bl_s = _num(m["batteryloop"], "{:.3f}") if summary_available else "n/a"
        w(f"{r['file']:<{name_w}} {f['cycles'] or 0:>4} | {bl_s:>8} {_num(m['beep']):>8} "
          f"{_num(f['beep_cpu_ms_per_cycle']):>8} {_num(m['cellpy']):>8} | "
          f"{_num(f['x_beep'], '{:.1f}'):>7} {_num(f['x_cellpy'], '{:.1f}'):>7}")

    w("\nColumns: raw reads of the file's table (the limit): pl.csv = pl.read_csv with types "
      "inferred (10,000 rows),\n  pl.typd = pl.read_csv with every column's type given (no "
      "inference), pa.csv = pyarrow.csv.read_csv; bl = batteryloop.cycling.read;\n"
      "  bl/raw = bl read time / the fastest raw read; xBEEPld, xcpy ld = competitor load time / "
      "bl read time;\n  mem x = bl peak RSS during read over its baseline (after imports and a "
      "tiny polars warm-up) / df.estimated_size();\n  blMB, plMB = that peak in MB for bl read and "
      "for the pl.csv read; BEEPcpu = BEEP structure() CPU ms/cycle.")

    notes = []
    for r, f in rows_:
        for tool, why in r.get("skipped", {}).items():
            notes.append(f"  {r['file']}: {tool} skipped: {why}")
        for tool in ("beep", "cellpy", "batteryloop"):
            e = (r.get(tool) or {}).get("summary_error")
            if e and (tool != "batteryloop" or summary_available):
                notes.append(f"  {r['file']}: {tool} summarising not measured: {e}")
        for m in f.get("marks", []):
            notes.append(f"  {r['file']}: {m}")
        heavy = [m for m in (r.get("batteryloop") or {}).get("read_imported", [])
                 if m in HEAVY_MODULES]
        if heavy:
            notes.append(f"  {r['file']}: batteryloop's first read imported {', '.join(heavy)} "
                         "lazily; its peak memory (blMB) includes those imports")
    if not summary_available:
        notes.append("  batteryloop summarising: n/a (batteryloop.cycling.summary does not exist "
                     "yet), so xBEEP / xcellpy (load+summarise) cannot be computed")
    if notes:
        w("\nSkips and notes:")
        out.extend(notes)

    # ---- aims ----
    w("\nAims:")
    ok = [f for _, f in rows_ if "error" not in f]

    def verdict(name: str, vals: list[tuple[str, float]], passes, aim_txt: str) -> None:
        if not vals:
            w(f"  {name}: not measured: no file with both figures (aim {aim_txt})")
            return
        good = [v for v in vals if passes(v[1])]
        worst = min(vals, key=lambda v: v[1]) if aim_txt.startswith(">=") else \
            max(vals, key=lambda v: v[1])
        status = "MET" if len(good) == len(vals) else "NOT MET"
        w(f"  {name}: {status} on {len(good)}/{len(vals)} files (aim {aim_txt}); "
          f"geometric mean {_gmean([v for _, v in vals]):.2f}, worst {worst[1]:.2f} ({worst[0]})")

    names = [r["file"] for r, f in rows_ if "error" not in f]
    if summary_available:
        verdict("20x BEEP load+structure", [(n, f["x_beep"]) for n, f in zip(names, ok)
                                           if f["x_beep"]], lambda x: x >= 20, ">= 20x")
        verdict("  by CPU time", [(n, f["cpu"]["x_beep"]) for n, f in zip(names, ok)
                                  if f["cpu"]["x_beep"]], lambda x: x >= 20, ">= 20x")
        verdict("5x cellpy load+summary", [(n, f["x_cellpy"]) for n, f in zip(names, ok)
                                          if f["x_cellpy"]], lambda x: x >= 5, ">= 5x")
        verdict("  by CPU time", [(n, f["cpu"]["x_cellpy"]) for n, f in zip(names, ok)
                                  if f["cpu"]["x_cellpy"]], lambda x: x >= 5, ">= 5x")
    else:
        w("  20x BEEP load+structure: n/a (no batteryloop per-cycle summary yet); "
          "read alone vs BEEP load alone below")
        w("  5x cellpy load+summary: n/a (no batteryloop per-cycle summary yet); "
          "read alone vs cellpy load alone below")
    verdict("  (read vs BEEP load only)", [(n, f["x_beep_load"]) for n, f in zip(names, ok)
                                          if f["x_beep_load"]], lambda x: x >= 20, ">= 20x")
    verdict("  (read vs cellpy load only)", [(n, f["x_cellpy_load"]) for n, f in zip(names, ok)
                                            if f["x_cellpy_load"]], lambda x: x >= 5, ">= 5x")
    verdict("within 2x of raw CSV read", [(n, f["vs_raw"]) for n, f in zip(names, ok)
                                         if f["vs_raw"]], lambda x: x <= 2, "<= 2x")
    verdict("  by CPU time", [(n, f["cpu"]["vs_raw"]) for n, f in zip(names, ok)
                              if f["cpu"]["vs_raw"]], lambda x: x <= 2, "<= 2x")
    big = [(n, f["mem_ratio"]) for n, f in zip(names, ok)
           if f["mem_ratio"] is not None and f["table_mb"] >= MEM_MIN_MB]
    verdict(f"memory <= 3x table (tables >= {MEM_MIN_MB:g} MB)", big, lambda x: x <= 3, "<= 3x")
    small = [(n, f["mem_ratio"]) for n, f in zip(names, ok)
             if f["mem_ratio"] is not None and f["table_mb"] < MEM_MIN_MB]
    if small:
        w(f"  (memory on tables < {MEM_MIN_MB:g} MB, where RSS resolution dominates: "
          + ", ".join(f"{n.split('/')[-1]} {v:.1f}x" for n, v in small) + ")")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", nargs="*", help="subset: substrings or globs of 'make/name'")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per measurement (best of)")
    ap.add_argument("--json", type=Path, help="write every measurement here")
    envs = Path(os.environ.get("BATTERYLOOP_BENCH_ENVS", REPO.parent / "bench-envs"))
    ap.add_argument("--beep-python", default=str(envs / "beep" / "bin" / "python"))
    ap.add_argument("--cellpy-python", default=str(envs / "cellpy" / "bin" / "python"))
    ap.add_argument("--no-competitors", action="store_true", help="raw and batteryloop only")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per tool and file")
    args = ap.parse_args()

    shared = Path(os.environ.get("BATTERYLOOP_SHARED", REPO.parent / "shared"))
    if not (shared / "data" / "cyclers").is_dir():
        sys.exit(f"no tester files: {shared / 'data' / 'cyclers'} is missing "
                 "(set BATTERYLOOP_SHARED)")
    files = list_files(shared, args.files)
    if not files:
        sys.exit(f"no file matches --files {args.files}")
    pythons = {"beep": args.beep_python if Path(args.beep_python).exists() else None,
               "cellpy": args.cellpy_python if Path(args.cellpy_python).exists() else None}
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"ingest benchmark: {len(files)} files, best of {args.repeat}; "
        f"BEEP: {pythons['beep'] or 'not found'}; cellpy: {pythons['cellpy'] or 'not found'}")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory(prefix="bl-ingest-bench-") as tmp:
        for p in files:
            records.append(bench_file(p, args, pythons, Path(tmp), log))
    elapsed = time.perf_counter() - t0
    # decided from what the workers found (the module may appear while the benchmark runs)
    summary_available = any((r.get("batteryloop") or {}).get("summary") for r in records)

    versions: dict = {"python": platform.python_version(), "cpus": os.cpu_count(),
                      "machine": platform.machine()}
    try:
        versions["batteryloop_commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, timeout=10, check=False).stdout.strip()
    except OSError:
        versions["batteryloop_commit"] = "unknown"
    for r in records:
        for tool in ("raw", "batteryloop", "beep", "cellpy"):
            versions.update({(k if tool in ("raw", "batteryloop") else f"{tool}:{k}"): v
                             for k, v in ((r.get(tool) or {}).get("versions") or {}).items()})

    print(f"ingest benchmark on {len(files)} files from {shared / 'data' / 'cyclers'} "
          f"(sources: see shared/README.md), {versions.get('cpus')} CPUs, best of {args.repeat}, "
          f"{elapsed:.0f} s; 1-min load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (other work on the machine skews timings)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()
                                     if k not in ("cpus", "machine")))
    print(report(records, summary_available, args.repeat))
    if args.json:
        payload = {"versions": versions, "repeat": args.repeat, "elapsed_s": elapsed,
                   "loadavg_before_after": [load_before, os.getloadavg()[0]],
                   "summary_available": summary_available,
                   "files": [{**r, "derived": derive(r)} for r in records]}
        args.json.write_text(json.dumps(payload, indent=1, default=str))
        print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()

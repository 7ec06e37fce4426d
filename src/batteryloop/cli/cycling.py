"""Tester-data commands: ingest files and folders, per-cycle tables, export of stored tests.

polars and the readers are imported inside the commands, so other commands start as fast as before.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from batteryloop.cli.common import console, database, emit, err, fail, guarded, unit_of_work

if TYPE_CHECKING:
    import polars as pl

    from batteryloop.cycling.ingest import FileResult, IngestReport

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]

app = typer.Typer(help="Tester data: ingest, per-cycle tables, export.")

_STYLE = {"stored": "green", "linked": "green", "already imported": "cyan", "rejected": "red",
          "skipped": "dim"}


def _first_line(text: str | None, width: int = 160) -> str:
    line = (text or "").splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _render_report(report: IngestReport) -> None:
    table = Table("file", "status", "tester", "format", "rows", "cycles", "sha256", "message")
    for r in report.results:
        style = _STYLE.get(r.status, "")
        table.add_row(
            Path(r.path).name, f"[{style}]{r.status}[/{style}]" if style else r.status,
            r.tester or "", r.format or "", "" if r.rows is None else f"{r.rows:,}",
            "" if r.cycles is None else str(r.cycles), (r.sha256 or "")[:12],
            _first_line(r.message) if r.status != "stored" else "; ".join(r.warnings)[:160],
        )
    console.print(table)
    c = report.counts()
    read = c["stored"] + c["linked"] + c["already imported"]
    console.print(
        f"{read} read ({c['stored']} stored, {c['linked']} linked, {c['already imported']} already "
        f"imported), [{'red' if c['rejected'] else 'green'}]{c['rejected']} rejected[/], "
        f"{c['skipped']} skipped in {report.seconds:.1f} s ({report.engine})", highlight=False)
    for r in report.rejected:
        err.print(f"[red]rejected:[/red] {r.message}", highlight=False, soft_wrap=True)


@app.command("ingest")
@guarded
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="tester files and/or folders (recursive)")],
    battery: Annotated[Optional[str], typer.Option(
        "--battery", help="link the tests to this battery (passport id, code or identifier)")] = None,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="parsing processes (default: one per core)")] = None,
    engine: Annotated[str, typer.Option(help="local (process pool) or dask")] = "local",
    scheduler: Annotated[Optional[str], typer.Option(
        help="Dask scheduler address (default $BATTERYLOOP_DASK_SCHEDULER, else a local cluster)"
    )] = None,
    strict: Annotated[bool, typer.Option(
        "--strict/--lenient", help="--lenient also stores files whose last line was cut short"
    )] = True,
    actor: Annotated[Optional[str], typer.Option(
        "--actor", help="acting organisation for the 'tested' events")] = None,
    as_json: JSON = False,
) -> None:
    """Read tester files into stored tests; exit 1 if any file was rejected."""
    if engine not in ("local", "dask"):
        fail(f"--engine must be local or dask, not '{engine}'", 2)
    db = database()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=True, disable=as_json)
    task = progress.add_task("ingesting", total=None)

    def on_start(n: int) -> None:
        progress.update(task, total=n)

    def on_file(result: FileResult) -> None:
        progress.update(task, advance=1, description=f"{result.status}: {Path(result.path).name}")

    kw: dict[str, Any] = {"battery": battery, "db": db, "actor": actor, "strict": strict,
                          "on_start": on_start, "on_file": on_file}
    with progress:
        if engine == "dask":
            from batteryloop.cycling.engine_dask import ingest_dask

            report = ingest_dask(paths, workers=workers, address=scheduler, **kw)
        else:
            from batteryloop.cycling.ingest import ingest_paths

            report = ingest_paths(paths, workers=workers, **kw)
    emit(report.as_dict(), as_json, lambda _: _render_report(report))
    if not report.ok:
        raise typer.Exit(1)


def _load(source: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """A tester file read now, or a stored test by its sha256 (or 8+ leading hex digits)."""
    from batteryloop.cycling import storage

    path = Path(source)
    if path.is_file():
        from batteryloop.cycling import read

        df, meta = read(path)
        return df, storage.metadata_dict(meta, rows=df.height, cycles=storage.count_cycles(df))
    if path.suffix or "/" in source or "\\" in source:
        fail(f"{source}: no such file")
    with unit_of_work() as s:
        return storage.load(s, source)


def _summary(df: pl.DataFrame) -> pl.DataFrame:
    from batteryloop.cycling import storage

    summary = storage.summarise(df)
    if summary is None:
        fail("per-cycle summary is not available in this build (batteryloop.cycling.summary "
             "is missing)")
    return summary  # type: ignore[return-value]


def _json_rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    import polars as pl

    floats = [c for c, t in df.schema.items() if t.is_float()]
    return df.with_columns(pl.col(floats).fill_nan(None)).to_dicts() if floats else df.to_dicts()


#: What the table view shows (with short headers); --json, csv and parquet carry every column.
_TABLE = {
    "cycle_count": "cycle", "charge_capacity_ah": "Qch Ah", "discharge_capacity_ah": "Qdis Ah",
    "charge_energy_wh": "Ech Wh", "discharge_energy_wh": "Edis Wh",
    "coulombic_efficiency": "CE", "energy_efficiency": "EE",
    "charge_mean_voltage_volt": "Vch mean", "discharge_mean_voltage_volt": "Vdis mean",
    "duration_second": "duration s", "dcir_ohm": "DCIR ohm",
}


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _render_cycles(summary: pl.DataFrame) -> None:
    shown = [c for c in _TABLE if c in summary.columns] or summary.columns
    table = Table(*(_TABLE.get(c, c) for c in shown))
    for row in summary.select(shown).iter_rows():
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    if len(shown) < summary.width:
        console.print(f"{summary.height} cycles; {summary.width} columns with --json or "
                      "--format csv|parquet", style="dim", highlight=False)


@app.command("cycles")
@guarded
def cycles(
    source: Annotated[str, typer.Argument(help="a tester file, or a stored test's sha256")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or parquet")] = "table",
    out: Annotated[Optional[Path], typer.Option(help="file to write (needed for parquet)")] = None,
    as_json: JSON = False,
) -> None:
    """Per-cycle table: capacities, energies, efficiencies, voltages."""
    if fmt not in ("table", "csv", "parquet"):
        fail(f"--format must be table, csv or parquet, not '{fmt}'", 2)
    if fmt == "parquet" and out is None:
        fail("--format parquet needs --out FILE", 2)
    df, _ = _load(source)
    summary = _summary(df)
    if as_json:
        emit(_json_rows(summary), True)
        return
    if fmt == "parquet":
        summary.write_parquet(out, compression="zstd")  # type: ignore[arg-type]
        console.print(f"{summary.height} cycles -> {out}")
    elif fmt == "csv":
        if out:
            summary.write_csv(out)
            console.print(f"{summary.height} cycles -> {out}")
        else:
            sys.stdout.write(summary.write_csv())
    elif out:
        fail("--out needs --format csv or parquet", 2)
    else:
        _render_cycles(summary)


@app.command("export-test")
@guarded
def export_test(
    source: Annotated[str, typer.Argument(help="a tester file, or a stored test's sha256")],
    fmt: Annotated[str, typer.Option("--format", help="bdf-csv or parquet")],
    out: Annotated[Path, typer.Option(help="file to write")],
    as_json: JSON = False,
) -> None:
    """Export a test's canonical table as BDF CSV (preferred-label headers) or Parquet."""
    if fmt not in ("bdf-csv", "parquet"):
        fail(f"--format must be bdf-csv or parquet, not '{fmt}'", 2)
    from batteryloop.cycling import storage

    df, meta = _load(source)
    if fmt == "parquet":
        storage.write_parquet_atomic(df, out, meta)
    else:
        storage.write_bdf_csv(df, out)
    emit({"source": source, "sha256": meta.get("sha256"), "format": fmt, "rows": df.height,
          "out": str(out)}, as_json,
         lambda d: console.print(f"{d['rows']:,} rows -> {d['out']} ({fmt})", highlight=False))

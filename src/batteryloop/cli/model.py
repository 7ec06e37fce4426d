"""Model commands: train a health model into a versioned artefact, evaluate it into a report,
predict with it, list and show artefacts (``<data_dir>/models/<name>/<version>/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from batteryloop.cli.common import console, emit, fail, guarded, unit_of_work, working

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ROOT = Annotated[Optional[Path], typer.Option(
    "--root", help="models folder (default: <data_dir>/models)")]
DATA = Annotated[Optional[Path], typer.Option(
    "--data", help="shared data folder (default: BATTERYLOOP_SHARED)")]
VERSION = Annotated[Optional[str], typer.Option("--version", help="artefact version (default: newest)")]

app = typer.Typer(help="Health models as versioned artefacts: train, evaluate, predict, list, show.")


def _score_text(scores: dict[str, Any]) -> str:
    parts = []
    for key, value in scores.items():
        if isinstance(value, dict):
            parts.append(f"{key}: " + ", ".join(f"{k} {v:.2f}" for k, v in value.items()
                                                  if isinstance(v, int | float)))
        elif isinstance(value, float):
            parts.append(f"{key} {value:.3g}")
        elif value is not None:
            parts.append(f"{key} {value}")
    return "; ".join(parts)


def _render_trained(d: dict[str, Any]) -> None:
    console.print(f"[green]saved[/green] {d['name']} {d['version']} in {d.get('train_seconds', 0):.1f} s "
                  f"-> {d.get('folder', '')}", highlight=False, soft_wrap=True)
    console.print(_score_text(d.get("scores", {})), highlight=False, soft_wrap=True)
    for kind, path in d.get("report", {}).items():
        console.print(f"report ({kind}): {path}", highlight=False, soft_wrap=True)


@app.command("train")
@guarded
def train(
    kind: Annotated[str, typer.Argument(help="pulse-soh | cycle-life | rul")],
    data: DATA = None,
    root: ROOT = None,
    method: Annotated[str, typer.Option(help="pulse-soh: learner (ensemble, ridge, hgb_pooled...)")] = "ensemble",
    types: Annotated[Optional[list[str]], typer.Option(
        "--type", help="pulse-soh: train on this cell type only (repeatable; e.g. NMC_21Ah)")] = None,
    features: Annotated[str, typer.Option(
        help="cycle-life: hybrid | charge | capacity | paper:variance | paper:discharge | "
             "paper:full | paper:all")] = "hybrid",
    route: Annotated[str, typer.Option(help="rul: capacity | charge")] = "capacity",
    model: Annotated[Optional[str], typer.Option(
        help="cycle-life / rul: candidate (default: chosen by CV on the training cells)")] = None,
    repeats: Annotated[int, typer.Option(help="cycle-life: CV repeats for model selection")] = 3,
    alpha: Annotated[float, typer.Option(help="rul: 1 - nominal interval coverage")] = 0.1,
    report: Annotated[bool, typer.Option("--report/--no-report", help="write the evaluation report")] = True,
    as_json: JSON = False,
) -> None:
    """Train on the shared data, score on held-out cells, save the artefact with its card."""
    from batteryloop.health import model_store

    with working(f"training {kind} on held-out splits", quiet=as_json):
        result = model_store.train(kind, data=data, root=root, method=method, types=types,
                                   features=features, route=route, model=model, repeats=repeats,
                                   alpha=alpha, write_report=report)
    emit(result, as_json, _render_trained)


@app.command("evaluate")
@guarded
def evaluate(
    name: Annotated[str, typer.Argument(help="artefact name (pulse-soh, cycle-life-charge, ...) or kind")],
    version: VERSION = None,
    data: DATA = None,
    root: ROOT = None,
    out: Annotated[Optional[Path], typer.Option(help="report folder (default: the artefact's evaluation/)")] = None,
    as_json: JSON = False,
) -> None:
    """Score an artefact on held-out data (the paper's split, or CV over whole cells) and write
    its report (markdown + self-contained HTML)."""
    from batteryloop.health import model_store

    with working(f"evaluating {name} on held-out cells", quiet=as_json):
        result = model_store.evaluate(name, version, data=data, root=root, out=out)
    emit(result, as_json, _render_trained)


def _render_pulse(d: dict[str, Any]) -> None:
    c = d["estimate"]
    flag = "in domain" if c["in_domain"] else "[yellow]OUT OF DOMAIN[/yellow]"
    console.print(f"SOH {100 * c['value']:.1f} % ({100 * c['lower']:.1f} .. {100 * c['upper']:.1f} "
                  f"at {100 * d['coverage']:.0f} %), {c['tests']} test(s), {flag}; model "
                  f"{d['model']['name']} {d['model']['version']}", highlight=False, soft_wrap=True)
    for reason in c["reasons"]:
        console.print(f"  - {reason}", highlight=False, soft_wrap=True)
    table = Table("row", "SOC %", "SOH %", "interval", "type", "in domain")
    for t in d["tests"]:
        table.add_row(str(t["row"]), f"{t['soc']:g}", f"{100 * t['value']:.1f}",
                      f"{100 * t['lower']:.1f} .. {100 * t['upper']:.1f}", t["cell_type"] or "-",
                      "yes" if t["in_domain"] else "no")
    console.print(table)


@app.command("predict")
@guarded
def predict(
    kind: Annotated[str, typer.Argument(help="pulse-soh | cycle-life | rul")],
    file: Annotated[Optional[Path], typer.Argument(
        help="pulse-soh: pulse-test CSV (soc, U1..U21 in V; see batteryloop.health.pulse_input); "
             "cycle-life / rul: per-cycle CSV (cycle, capacity_ah), or one row of features for a "
             "paper:* model")] = None,
    version: VERSION = None,
    root: ROOT = None,
    name: Annotated[Optional[str], typer.Option(help="artefact name (default: newest of the kind)")] = None,
    chemistry: Annotated[Optional[str], typer.Option(help="when the file has no chemistry column")] = None,
    rated_ah: Annotated[Optional[float], typer.Option(help="rated capacity (Ah), when not in the file")] = None,
    test: Annotated[Optional[str], typer.Option(help="cycle-life: a stored test (SHA-256) instead of a file")] = None,
    at_cycle: Annotated[Optional[int], typer.Option(help="rul: predict after this cycle (default: the last)")] = None,
    as_json: JSON = False,
) -> None:
    """Predict with a saved artefact; nothing is recorded (to record a battery's SOH from a pulse
    test, use `batteryloop health assess-pulse`)."""
    from batteryloop.health import model_store

    if kind == "pulse-soh":
        if file is None:
            fail("pulse-soh needs a pulse-test CSV file")
        table, est, combined, card = model_store.predict_pulse(
            file, artefact=version, root=root, chemistry=chemistry, rated_ah=rated_ah)
        result = {"file": str(file), "sha256": table.sha256, "estimate": combined,
                  "coverage": card.params.get("coverage"), "model": model_store.model_ref(card),
                  "tests": est.to_dicts()}
        emit(result, as_json, _render_pulse)
        return
    if kind not in ("cycle-life", "rul"):
        fail(f"unknown kind '{kind}' (pulse-soh, cycle-life, rul)")
    frame = _per_cycle(file, test, rated_ah)
    if kind == "cycle-life":
        result = model_store.predict_cycle_life(frame["frame"], name=name or "cycle-life",
                                                version=version, root=root,
                                                rated_ah=frame["rated_ah"], chemistry=chemistry)
        result["source"] = frame["source"]
        emit(result, as_json, lambda d: console.print(
            f"cycle life {d['cycle_life']:.0f} {d['unit']}"
            + ("" if d["in_domain"] else " [yellow](out of domain: "
               + "; ".join(d["reasons"]) + ")[/yellow]")
            + f"; model {d['model']['name']} {d['model']['version']}", highlight=False,
            soft_wrap=True))
        return
    from batteryloop.health import rul

    fitted, card, _ = model_store.load(name or "rul", version, root=root)
    from batteryloop.errors import ValidationFailed
    from batteryloop.health.trajectory import CYCLE_COLUMNS

    per_cycle = frame["frame"]
    col = next((c for c in per_cycle.columns if c.lower() in CYCLE_COLUMNS), None)
    if col is None:
        raise ValidationFailed(f"no cycle column (one of {', '.join(CYCLE_COLUMNS)})",
                               location=frame["source"])
    k = at_cycle or int(per_cycle[col].max())
    value, lower, upper = rul.predict_rul(fitted, per_cycle, k)
    result = {"after_cycle": k, "rul": value, "lower": lower, "upper": upper,
              "coverage": 1 - fitted.alpha, "model": model_store.model_ref(card, fitted.name),
              "source": frame["source"]}
    emit(result, as_json, lambda d: console.print(
        f"RUL after cycle {d['after_cycle']}: {d['rul']:.0f} cycles ({d['lower']:.0f} .. "
        f"{d['upper']:.0f} at {100 * d['coverage']:.0f} %)", highlight=False))


def _per_cycle(file: Path | None, test: str | None, rated_ah: float | None) -> dict[str, Any]:
    """A per-cycle frame from a CSV file or a stored test (its per-cycle summary)."""
    import polars as pl

    from batteryloop.errors import ValidationFailed

    if (file is None) == (test is None):
        raise ValidationFailed("give either a per-cycle CSV file or --test (a stored test)",
                               location="file")
    if file is not None:
        if not file.is_file():
            raise FileNotFoundError(2, "no such file", str(file))
        try:
            frame = pl.read_csv(file)
        except pl.exceptions.PolarsError as exc:
            raise ValidationFailed(f"not a readable CSV table: {str(exc).splitlines()[0]}",
                                   location=file.name) from None
        return {"frame": frame, "rated_ah": rated_ah, "source": str(file)}
    from batteryloop.cycling import storage
    from batteryloop.cycling.summary import cycles
    from batteryloop.store.models import Battery

    with unit_of_work() as s:
        row = storage.find(s, test)
        df, _ = storage.load(s, row.sha256)
        if rated_ah is None and row.battery_id is not None:
            battery = s.get(Battery, row.battery_id)
            rated_ah = battery.rated_capacity_ah if battery else None
        sha = row.sha256
    summary = cycles(df).select("cycle_count", "discharge_capacity_ah").filter(
        pl.col("discharge_capacity_ah") > 0)
    if rated_ah is None:
        raise ValidationFailed("the test's battery has no rated capacity: give --rated-ah",
                               location="rated_ah")
    return {"frame": summary, "rated_ah": rated_ah, "source": f"test {sha}"}


def _short(scores: dict[str, Any]) -> str:
    """A model's headline in a few characters: pulse MAPE and coverage, cycle-life RMSE, RUL
    coverage (primary / secondary test)."""
    def num(v: Any, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, int | float) else "-"

    if "pooled_mape_pct" in scores:
        return (f"MAPE {num(scores['pooled_mape_pct'], '.2f')} %, coverage "
                f"{num(scores.get('coverage'), '.3f')}")
    if "primary_test_cells" in scores:
        return (f"RMSE {num(scores.get('primary_test_rmse_cycles'), '.0f')} / "
                f"{num(scores.get('secondary_test_rmse_cycles'), '.0f')} cycles "
                f"(n={scores.get('primary_test_cells')}/{scores.get('secondary_test_cells')})")
    return (f"coverage {num(scores.get('primary_test_coverage'), '.2f')} / "
            f"{num(scores.get('secondary_test_coverage'), '.2f')}")


def _render_list(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no trained models (train one: batteryloop model train pulse-soh)")
        return
    table = Table("name", "version", "held-out scores", "train s", "data sha256")
    for r in rows:
        table.add_row(r["name"], r["version"], _short(r["scores"]),
                      f"{r['train_seconds']:.1f}" if r.get("train_seconds") else "-",
                      r["training_data_sha256"][:12])
    console.print(table)


@app.command("list")
@guarded
def list_(
    kind: Annotated[Optional[str], typer.Option(help="pulse-soh | cycle-life | rul")] = None,
    root: ROOT = None,
    as_json: JSON = False,
) -> None:
    """The saved artefacts, newest first within each name."""
    from batteryloop.health import model_store

    emit(model_store.catalogue(root, kind), as_json, _render_list)


@app.command("show")
@guarded
def show(
    name: Annotated[str, typer.Argument(help="artefact name or kind")],
    version: VERSION = None,
    root: ROOT = None,
    as_json: JSON = False,
) -> None:
    """One artefact's card: training data hash, features, held-out scores, parameters."""
    from batteryloop.health import model_store

    card = model_store.card(name, version, root=root)

    def render(c: dict[str, Any]) -> None:
        console.print(f"[bold]{c['name']}[/bold] {c['version']} ({c['created_at']})", highlight=False)
        for key in ("kind", "target", "training_data_sha256", "model_sha256", "folder"):
            console.print(f"{key}: {c[key]}", highlight=False, soft_wrap=True)
        console.print(f"features ({len(c['features'])}): {', '.join(c['features'])}",
                      highlight=False, soft_wrap=True)
        console.print("scores: " + _score_text(model_store.summary(c)["scores"]), highlight=False,
                      soft_wrap=True)
        for path in c["reports"]:
            console.print(f"report: {path}", highlight=False, soft_wrap=True)

    emit(card, as_json, render)

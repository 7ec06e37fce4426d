"""Health commands: assess a battery from its stored tests; show its latest assessment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from batteryloop.cli.common import console, emit, guarded, unit_of_work
from batteryloop.health.assess import assess_from_test, assess_pulse, latest_assessment

app = typer.Typer(help="Battery health: SOH parameters with intervals, cycle life, pulse-test SOH.")


def _render(result: dict[str, Any]) -> None:
    table = Table("parameter", "value", "interval", "unit", "method")
    for v in result["values"]:
        table.add_row(v["parameter"], f"{v['value']:.4g}", f"{v['lower']:.4g} .. {v['upper']:.4g}",
                      v["unit"], v["method"])
    console.print(table)


@app.command("assess")
@guarded
def assess(
    ref: str,
    test: Annotated[Optional[str], typer.Option(help="stored test sha256 (default: the latest)")] = None,
    initial_r_ohm: Annotated[Optional[float], typer.Option(help="beginning-of-life DCIR")] = None,
    actor: Annotated[Optional[str], typer.Option(help="acting organisation")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure SOH parameters from a stored test and record a `health-assessed` event."""
    with unit_of_work() as s:
        result = assess_from_test(s, ref, test=test, actor=actor, initial_r_ohm=initial_r_ohm)
    emit(result, as_json, _render)


@app.command("show")
@guarded
def show(ref: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The battery's latest recorded health assessment."""
    with unit_of_work() as s:
        result = latest_assessment(s, ref)
    if result is None:
        emit({"battery": ref, "assessment": None}, as_json,
             lambda _: console.print(f"{ref}: no health assessment recorded yet"))
        return
    emit(result, as_json, _render)


def _render_pulse(result: dict[str, Any]) -> None:
    _render(result)
    model = result["model"]
    console.print(f"model {model['name']} {model['version']} ({model['method']}), "
                  f"{result['test']['tests']} test(s) from {result['test']['file']}; event "
                  f"{result['seq']}", highlight=False, soft_wrap=True)
    if not result["in_domain"]:
        console.print("[yellow]out of the model's domain[/yellow] (interval widened):",
                      highlight=False)
        for reason in result["ood_reasons"]:
            console.print(f"  - {reason}", highlight=False, soft_wrap=True)


@app.command("assess-pulse")
@guarded
def assess_pulse_(
    ref: str,
    file: Annotated[Path, typer.Argument(
        help="pulse-test CSV: soc (%), U1..U21 (V); optional chemistry, rated_ah, pulse_width_s")],
    version: Annotated[Optional[str], typer.Option(
        "--model-version", help="pulse-soh artefact version (default: the newest)")] = None,
    actor: Annotated[Optional[str], typer.Option(help="acting organisation")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """SOH from a pulse test with the trained pulse-SOH model; records a `health-assessed` event
    (train the model first: `batteryloop model train pulse-soh`)."""
    if not file.is_file():
        raise FileNotFoundError(2, "no such file", str(file))
    with unit_of_work() as s:
        result = assess_pulse(s, ref, file, artefact=version, actor=actor)
    emit(result, as_json, _render_pulse)

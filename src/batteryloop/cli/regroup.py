"""Regrouping commands under `batteryloop grade`: regroup (plan or build packs) and cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import ValidationError as PydanticError
from rich.table import Table

from batteryloop.cli.common import console, emit, fail, guarded, unit_of_work
from batteryloop.errors import ValidationFailed

JSON = Annotated[bool, typer.Option("--json", help="machine-readable output")]
REFS = Annotated[Optional[list[str]], typer.Argument(help="batteries (passport id, code or identifier)")]
REFS_FILE = Annotated[Optional[Path], typer.Option(
    "--refs-file", help="a file of battery references, one a line ('#' starts a comment)")]
FEATURE = Annotated[Optional[list[str]], typer.Option(
    "--feature", help="clustering feature (capacity, dcir, ocv, self_discharge); repeatable; "
                      "default: those every battery has")]
SEED = Annotated[int, typer.Option(help="seed of the random starts and the clustering")]


def _refs(refs: list[str] | None, path: Path | None) -> list[str]:
    out = list(refs or [])
    if path is not None:
        lines = path.read_text("utf-8").splitlines()
        out += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    if not out:
        raise ValidationFailed("name the batteries (arguments or --refs-file)", location="batteries")
    return out


def _render_plan(d: dict[str, Any]) -> None:
    plan = d.get("plan", d)
    built = {b["index"]: b for b in d.get("built", [])}
    s = plan["summary"]
    head = "built" if built else "plan (nothing written)"
    console.print(f"[bold]{plan['layout']}[/bold] {head}: {s['packs']} pack(s) from "
                  f"{plan['batteries']} {plan['kind']}s, {s['leftover']} left over; features "
                  f"{', '.join(plan['features']['used'])}; plan {plan['sha256'][:16]}",
                  highlight=False, soft_wrap=True)
    table = Table("pack", "usable Ah", "at lower bounds Ah", "bound Ah", "gap %", "R spread %",
                  "cluster", "battery")
    for p in plan["packs"]:
        b = built.get(p["index"])
        spread = p["resistance_spread_pct"]
        table.add_row(str(p["index"]), f"{p['usable_capacity_ah']:.3f}",
                      f"{p['usable_capacity_lower_ah']:.3f}", f"{p['upper_bound_ah']:.3f}",
                      f"{p['gap_pct']:.3f}", "-" if spread is None else f"{spread:.1f}",
                      "-" if p["cluster"] is None else str(p["cluster"]), b["uid"] if b else "")
    console.print(table)
    for name, why in plan["features"]["dropped"].items():
        console.print(f"  {name} not used: {why}", highlight=False)


def regroup(
    refs: REFS = None,
    refs_file: REFS_FILE = None,
    layout: Annotated[str, typer.Option(help="series x parallel, e.g. 14S4P")] = "14S4P",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the plan; write nothing")] = False,
    cluster: Annotated[Optional[str], typer.Option(
        "--cluster", help="assemble within consistency groups: kmeans, gmm or binning")] = None,
    groups: Annotated[Optional[int], typer.Option("--groups", help="with --cluster: how many")] = None,
    target_range: Annotated[Optional[float], typer.Option(
        "--target-range", help="with --cluster: largest capacity range in a group, Ah")] = None,
    feature: FEATURE = None,
    packing: Annotated[str, typer.Option(help="window (homogeneous packs) or stratified")] = "window",
    leftover: Annotated[str, typer.Option(help="cells left out: weakest or outliers")] = "weakest",
    basis: Annotated[str, typer.Option(help="balance on the capacity value or its lower bound")] = "value",
    relation: Annotated[str, typer.Option(help="repurposed or remanufactured")] = "repurposed",
    kind: Annotated[str, typer.Option(help="what the new batteries are: pack or module")] = "pack",
    id_prefix: Annotated[Optional[str], typer.Option(
        "--id-prefix", help="second-life identifier of pack k: PREFIX-k")] = None,
    plan_sha: Annotated[Optional[str], typer.Option(
        "--plan", help="the sha256 of the plan reviewed (from --dry-run): build only that")] = None,
    seed: SEED = 0,
    actor: Annotated[Optional[str], typer.Option("--actor", help="acting organisation")] = None,
    as_json: JSON = False,
) -> None:
    """Regroup graded cells (or modules) into sSpP packs from their ledgers' health; each pack
    becomes a new battery linked to its sources, with `regrouped` events on all of them."""
    from batteryloop.grading.regroup import service

    names = _refs(refs, refs_file)
    clustering = None
    if cluster or groups is not None or target_range is not None or feature:
        try:
            clustering = service.Clustering(method=cluster or "kmeans", n_groups=groups,  # type: ignore[arg-type]
                                            target_range=target_range, features=feature)
        except PydanticError as exc:
            e = exc.errors()[0]
            option = {"method": "--cluster", "n_groups": "--groups", "target_range": "--target-range",
                      "features": "--feature"}.get(str(e["loc"][0]), str(e["loc"][0]))
            fail(f"{option}: {e['msg']}")
    options: dict[str, Any] = {"clustering": clustering, "packing": packing, "leftover": leftover,
                               "capacity_basis": basis, "relation": relation, "seed": seed}
    with unit_of_work() as s:
        if dry_run:
            out = service.plan(s, names, layout, **options)
        else:
            out = service.commit(s, names, layout, kind=kind, identifier_prefix=id_prefix,  # type: ignore[arg-type]
                                 plan_sha256=plan_sha, actor=actor, **options)
    emit(out, as_json, _render_plan)


def _render_clusters(d: dict[str, Any]) -> None:
    sc = d["score"]
    console.print(f"{d['method']}: {len(d['groups'])} group(s) of {d['batteries']} batteries, "
                  f"{len(d['unassigned'])} unassigned; features {', '.join(d['features']['used'])}; "
                  f"largest capacity range {sc['capacity_range_max']} Ah, Davies-Bouldin "
                  f"{sc['davies_bouldin']}", highlight=False, soft_wrap=True)
    table = Table("group", "size", "mean Ah", "range Ah")
    for g in d["groups"]:
        table.add_row(str(g["group"]), str(g["size"]), f"{g['capacity_mean_ah']:.3f}",
                      f"{g['capacity_range_ah']:.3f}")
    console.print(table)


def cluster(
    refs: REFS = None,
    refs_file: REFS_FILE = None,
    method: Annotated[str, typer.Option(help="kmeans, gmm or binning")] = "kmeans",
    groups: Annotated[Optional[int], typer.Option("--groups", help="how many groups")] = None,
    target_range: Annotated[Optional[float], typer.Option(
        "--target-range", help="largest capacity range in a group, Ah")] = None,
    min_size: Annotated[Optional[int], typer.Option(
        "--min-size", help="smallest group (e.g. the cells of one pack)")] = None,
    feature: FEATURE = None,
    seed: SEED = 0,
    as_json: JSON = False,
) -> None:
    """Consistency groups of batteries from their ledgers' health; writes nothing."""
    from batteryloop.grading.regroup.service import cluster as run

    names = _refs(refs, refs_file)
    with unit_of_work() as s:
        out = run(s, names, method=method, n_groups=groups, target_range=target_range,  # type: ignore[arg-type]
                  min_size=min_size, features=feature, seed=seed)
    emit(out, as_json, _render_clusters)


def register(app: typer.Typer) -> None:
    app.command("regroup")(guarded(regroup))
    app.command("cluster")(guarded(cluster))

"""Trained health models as versioned artefacts under the data directory: training each kind from
the shared data, evaluating an artefact into a report, loading one for a request, the catalogue.

Layout: ``<data_dir>/models/<name>/<version>/`` holds ``card.json`` (training data SHA-256,
features, held-out scores, parameters, timings), ``model.joblib`` and ``evaluation/`` (the
report). Names: ``pulse-soh``; ``cycle-life-<features>`` (``cycle-life-charge``,
``cycle-life-capacity``, ``cycle-life-hybrid``...); ``rul-<route>``. A request never trains:
a missing artefact is a :class:`NotFound` that names the command to train it.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path
from threading import Lock
from typing import Any

import numpy as np
import polars as pl

from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.health import artifacts, report, severson
from batteryloop.health import cycle_life as cl
from batteryloop.health import pulse_model as pm
from batteryloop.health import rul as rul_mod
from batteryloop.health.datasets import load_pulsebat, pulsebat_files
from batteryloop.health.pulse_input import PulseTable, read_pulse_file

KINDS: tuple[str, ...] = ("pulse-soh", "cycle-life", "rul")
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
_VERSION = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{8}$")


# ------------------------------------------------------------------------------ places


def models_root(root: Path | None = None) -> Path:
    """``<data_dir>/models`` (settings), unless ``root`` is given."""
    if root is not None:
        return Path(root)
    from batteryloop.settings import get_settings

    return get_settings().data_dir / "models"


def shared_data(data: Path | None = None) -> Path:
    """The shared data folder: ``data``, else the ``shared`` setting (``BATTERYLOOP_SHARED``)."""
    if data is None:
        from batteryloop.settings import get_settings

        data = get_settings().shared
    if data is None:
        raise NotFound("no shared data folder: set BATTERYLOOP_SHARED or pass --data")
    path = Path(data)
    if not path.is_dir():
        raise NotFound(f"shared data folder {path} does not exist")
    return path


def artefact_name(kind: str, *, features: str = "hybrid", route: str = "capacity") -> str:
    """The artefact name of a kind: ``pulse-soh``, ``cycle-life-<features>``, ``rul-<route>``."""
    if kind == "pulse-soh":
        return pm.NAME
    if kind == "cycle-life":
        if features not in cl.FEATURE_ROUTES:
            raise ValidationFailed(f"features must be one of {', '.join(cl.FEATURE_ROUTES)}, "
                                   f"got {features!r}", location="features")
        return f"cycle-life-{features.replace(':', '-')}"
    if kind == "rul":
        if route not in rul_mod.ROUTES:
            raise ValidationFailed(f"route must be one of {', '.join(rul_mod.ROUTES)}, got "
                                   f"{route!r}", location="route")
        return f"rul-{route}"
    raise ValidationFailed(f"unknown model kind '{kind}' (have: {', '.join(KINDS)})",
                           location="kind")


def kind_of(name: str) -> str:
    for kind in KINDS:
        if name == kind or name.startswith(kind + "-"):
            return kind
    raise ValidationFailed(f"'{name}' is not a model of a known kind ({', '.join(KINDS)})",
                           location="name")


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise NotFound(f"no model named '{name}'")
    return name


def resolve(name: str, version: str | None = None, *, root: Path | None = None) -> Path:
    """The folder of an artefact: ``name`` is an artefact name or a kind (then the newest
    artefact of that kind); ``version`` defaults to the newest. NotFound names the command that
    trains it."""
    base = models_root(root)
    _check_name(name)
    if version is not None and not _VERSION.match(version):
        raise NotFound(f"model '{name}' has no version '{version}'")
    names = [name] if (base / name).is_dir() else []
    if not names and name in KINDS:
        names = [p.name for p in base.glob(f"{name}-*") if p.is_dir()] if base.is_dir() else []
    found = [(base / n / v) for n in names for v in artifacts.versions(base, n)]
    if version is not None:
        found = [f for f in found if f.name == version]
    if not found:
        kind = name if name in KINDS else next((k for k in KINDS if name.startswith(k)), None)
        how = f"batteryloop model train {kind}" if kind else "batteryloop model train <kind>"
        what = f"version '{version}' of " if version else ""
        raise NotFound(f"no trained model {what}'{name}' under {base}: train it first "
                       f"(`{how}`)")
    return max(found, key=lambda f: f.name.split("-")[0] + f.name)  # the version starts with
    # its creation time (YYYYmmddTHHMMSS): the newest across the names of a kind


def _card_json(folder: Path) -> dict[str, Any]:
    try:
        card_ = json.loads((folder / artifacts.CARD).read_text())
    except (OSError, ValueError) as exc:
        raise ValidationFailed(f"unreadable model card: {exc}", location=str(folder)) from None
    if not isinstance(card_, dict) or "name" not in card_ or "version" not in card_:
        raise ValidationFailed("not a model card", location=str(folder))
    return card_


# ------------------------------------------------------------------------------ catalogue


def _headline(card: dict[str, Any]) -> dict[str, Any]:
    """The few scores that say how good a model is, by kind."""
    s = card.get("scores", {})
    try:
        kind = kind_of(card["name"])
    except ValidationFailed:
        return {}
    if kind == "pulse-soh":
        pooled = s.get("pooled", {})
        return {"pooled_mape_pct": pooled.get("mape_pct"), "coverage": pooled.get("coverage"),
                "per_type_mape_pct": {t: v.get("mape_pct")
                                      for t, v in s.get("per_type", {}).items()}}
    if kind == "cycle-life":
        return {f"{k}_rmse_cycles": s.get(k, {}).get("rmse_cycles")
                for k in ("primary_test", "secondary_test")} | {
            f"{k}_cells": s.get(k, {}).get("n") for k in ("primary_test", "secondary_test")}
    return {f"{k}_coverage": s.get(k, {}).get("coverage")
            for k in ("primary_test", "secondary_test")} | {
        f"{k}_rmse_cycles": s.get(k, {}).get("rmse") for k in ("primary_test", "secondary_test")}


def summary(card: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
    out = {k: card.get(k) for k in ("name", "version", "created_at", "kind", "target",
                                    "training_data_sha256", "model_sha256")}
    out["scores"] = _headline(card)
    out["train_seconds"] = card.get("params", {}).get("train_seconds")
    if folder is not None:
        reports = sorted((folder / "evaluation").glob("*.html"))
        out["report"] = str(reports[-1]) if reports else None
    return out


def catalogue(root: Path | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Every saved artefact (newest first within a name), summarised."""
    base = models_root(root)
    if not base.is_dir():
        return []
    out = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and _NAME.match(p.name)):
        if kind and kind_of(folder.name) != kind:
            continue
        for version in reversed(artifacts.versions(base, folder.name)):
            try:
                out.append(summary(_card_json(folder / version), folder / version))
            except ValidationFailed:
                continue  # a damaged card is not a model to offer; `show` names the problem
    return out


def card(name: str, version: str | None = None, *, root: Path | None = None) -> dict[str, Any]:
    """The full card of an artefact, with its folder and report paths."""
    folder = resolve(name, version, root=root)
    out = _card_json(folder)
    out["folder"] = str(folder)
    out["reports"] = [str(p) for p in sorted((folder / "evaluation").glob("*.*"))]
    return out


# ------------------------------------------------------------------------------ loading

_cache: dict[Path, tuple[tuple[int, int], Any, artifacts.ModelCard]] = {}
_cache_lock = Lock()


def load(name: str, version: str | None = None, *, root: Path | None = None
         ) -> tuple[Any, artifacts.ModelCard, Path]:
    """The model, its card and folder; the file is checked against its card's SHA-256 on first
    load and again whenever its size or modification time changes (kept in memory between
    requests, so a request does not unpickle the model each time)."""
    folder = resolve(name, version, root=root)
    return _load_folder(folder)


def _load_folder(folder: Path) -> tuple[Any, artifacts.ModelCard, Path]:
    stat = (folder / artifacts.MODEL).stat()
    key = (stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        hit = _cache.get(folder)
        if hit and hit[0] == key:
            return hit[1], hit[2], folder
    model, card_ = artifacts.load(folder.parent.parent, folder.parent.name, folder.name)
    if hasattr(model, "version"):
        model.version = card_.version
    with _cache_lock:
        _cache[folder] = (key, model, card_)
    return model, card_, folder


def load_pulse(artefact: Any = None, *, root: Path | None = None
               ) -> tuple[pm.PulseSohModel, artifacts.ModelCard]:
    """A pulse-SOH model for a request: ``artefact`` None (the newest under ``root`` or the data
    directory), a version string, a path (an artefact folder, or a models root), or an already
    loaded ``(model, card)`` pair."""
    if isinstance(artefact, tuple) and len(artefact) == 2:
        model, card_ = artefact
    elif isinstance(artefact, Path) and (artefact / artifacts.CARD).is_file():
        model, card_, _ = _load_folder(artefact)
    elif isinstance(artefact, Path):
        model, card_, _ = load(pm.NAME, root=artefact)
    else:
        model, card_, _ = load(pm.NAME, artefact, root=root)
    if not isinstance(model, pm.PulseSohModel):
        raise ValidationFailed(f"{card_.name} {card_.version} is not a pulse-SOH model",
                               location="artefact")
    return model, card_


# ------------------------------------------------------------------------------ training


def train(kind: str, *, data: Path | None = None, root: Path | None = None,
          method: str = pm.DEFAULT_METHOD, types: list[str] | None = None,
          features: str = "hybrid", route: str = "capacity", model: str | None = None,
          repeats: int = 3, window: int = 100, alpha: float = 0.1,
          write_report: bool = True) -> dict[str, Any]:
    """Train a model of ``kind`` on the shared data, score it on held-out cells, save it with its
    card under the models root, and (``write_report``) write its evaluation report."""
    shared = shared_data(data)
    base = models_root(root)
    started = time.perf_counter()
    if kind == "pulse-soh":
        frame = load_pulsebat(shared)
        if types:
            unknown = sorted(set(types) - set(frame["cell_type"].unique()))
            if unknown:
                raise ValidationFailed(f"unknown cell type(s) {', '.join(unknown)} (have: "
                                       f"{', '.join(sorted(frame['cell_type'].unique()))})",
                                       location="types")
            frame = frame.filter(pl.col("cell_type").is_in(types))
        scores, rows = pm.evaluate_rows(frame, method)
        fitted, card_ = pm.train(shared, method=method, scores=scores, types=types)
        extra = {"rows": rows, "scores": scores, "frame": frame}
    elif kind == "cycle-life":
        artefact_name("cycle-life", features=features)
        fitted, card_ = cl.train_cycle_life(shared, features=features, model=model,
                                            window=window, repeats=repeats)
        extra = {}
    elif kind == "rul":
        artefact_name("rul", route=route)
        fitted, card_ = rul_mod.train_rul(shared, route=route, model=model, alpha=alpha)
        extra = {}
    else:
        artefact_name(kind)
        raise AssertionError  # artefact_name raised
    card_.params["train_seconds"] = round(time.perf_counter() - started, 3)
    folder = artifacts.save(fitted, card_, base)
    if hasattr(fitted, "version"):
        fitted.version = card_.version
    out = {"name": card_.name, "version": card_.version, "folder": str(folder),
           "train_seconds": card_.params["train_seconds"], "scores": _headline(_card_json(folder))}
    if write_report:
        out["report"] = {k: str(v) for k, v in _report(
            kind, fitted, _card_json(folder), folder / "evaluation", shared, **extra).items()}
    return out


def evaluate(name: str, version: str | None = None, *, data: Path | None = None,
             root: Path | None = None, out: Path | None = None) -> dict[str, Any]:
    """Score an artefact on held-out data and write its report (default: the artefact's
    ``evaluation/`` folder). Cycle-life and RUL artefacts are applied to the test cells of the
    paper's split (they never saw them); a pulse-SOH artefact saw every PulseBat cell, so its
    configuration (method, cell types) is scored by cross-validation over whole cells on the
    same data, whose SHA-256 is checked against the card."""
    shared = shared_data(data)
    fitted, card_, folder = load(name, version, root=root)
    card_dict = _card_json(folder)
    kind = kind_of(card_.name)
    extra: dict[str, Any] = {}
    if kind == "pulse-soh":
        wanted = set(card_.training_files)
        paths = [p for p in pulsebat_files(shared) if p.name in wanted]
        frame = load_pulsebat(shared).filter(
            pl.col("source_file").is_in([p.name for p in paths]))
        same = artifacts.data_sha256(paths) == card_.training_data_sha256
        if not same:
            raise ValidationFailed(
                f"the PulseBat files under {shared} are not those {card_.name} {card_.version} "
                "was trained on (SHA-256 differs): evaluate it on its own data, or train anew",
                location="data")
        scores, rows = pm.evaluate_rows(frame, card_.params.get("method", pm.DEFAULT_METHOD),
                                        coverage=float(card_.params.get("coverage", 0.9)))
        extra = {"rows": rows, "scores": scores, "frame": frame}
    paths = _report(kind, fitted, card_dict, Path(out) if out else folder / "evaluation",
                    shared, **extra)
    result = {"name": card_.name, "version": card_.version,
              "report": {k: str(v) for k, v in paths.items()}}
    result["scores"] = (_headline({"name": card_.name, "scores": extra["scores"]})
                        if kind == "pulse-soh" else _headline(card_dict))
    return result


def _timed(fn: Any, repeats: int = 7) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _report(kind: str, fitted: Any, card_: dict[str, Any], out: Path, shared: Path,
            **extra: Any) -> dict[str, Path]:
    stem = f"{card_['name']}-{card_['version']}"
    timings: dict[str, float] = {"training (with held-out scoring)":
                                 card_.get("params", {}).get("train_seconds")}
    if kind == "pulse-soh":
        frame: pl.DataFrame = extra["frame"]
        rows = extra["rows"].with_columns(frame["sample_id"], frame["ageing_stage"])
        data = pm.PulseData.from_frame(frame)
        one = data.take(np.array([0]))

        def single() -> None:
            pm.predict_tests(fitted, voltages=one.voltages, soc=one.soc,
                             chemistry=one.chemistry, rated_ah=one.rated_ah,
                             width_s=one.width_s, currents=one.currents)

        def batch() -> None:
            pm.predict_tests(fitted, voltages=data.voltages, soc=data.soc,
                             chemistry=data.chemistry, rated_ah=data.rated_ah,
                             width_s=data.width_s, currents=data.currents)

        timings["final fit (with interval calibration)"] = card_["params"].get("fit_seconds")
        timings["prediction, one test"] = _timed(single)
        timings[f"prediction, per test in a batch of {len(data)}"] = _timed(batch, 3) / len(data)
        sections = report.pulse_sections(extra["scores"], rows)
        intro = [f"SOH from one pulse test; {extra['scores'].get('description', '')}.",
                 "Data: PulseBat (Tao et al., Nature Communications 15, 10154, 2024)."]
        title = f"Pulse-test SOH: {card_['name']} {card_['version']}"
    elif kind == "cycle-life":
        ev = cl.evaluate_cycle_life(fitted, shared)
        cells = ev.predictions["cell"].to_list()
        try:
            traj = severson.load_cells(shared, cells).select("cell", "cycle", "capacity_ah")
        except NotFound:  # paper-feature cells without a per-cycle file
            traj = None
        if fitted.route.startswith("paper:"):
            sample = ev.predictions.head(1)
            frame, _ = cl.design(shared, fitted.route, window=fitted.window)
            one = frame.filter(pl.col("cell") == sample["cell"][0])
        else:
            one = severson.load_cells(shared, [cells[0]])
        timings["prediction, one cell (features + model)"] = _timed(
            lambda: cl.predict_cycle_life(fitted, one), 5)
        sections = report.cycle_life_sections(
            ev.scores, ev.predictions, traj, eol_ah=cl.severson.NOMINAL_AH * 0.8,
            cv_rmse=fitted.cv_rmse)
        intro = [card_["kind"][:1].upper() + card_["kind"][1:] + ".",
                 "Data: the LFP/graphite fast-charging cells of Severson et al. (Nature Energy 4, "
                 "383, 2019); labels from severson_eol.csv; rows numbered by rank of the kept "
                 "cycle (see batteryloop.health.severson)."]
        title = f"Cycle life: {card_['name']} {card_['version']}"
    else:
        ev = rul_mod.evaluate_rul(fitted, shared)
        cell = ev["rows"]["cell"][0]
        frame = severson.load_cells(shared, [cell])
        k = int(min(300, frame["cycle"].max()))
        timings["prediction, one call"] = _timed(lambda: rul_mod.predict_rul(fitted, frame, k), 5)
        sections = report.rul_sections(ev["summary"], ev["rows"], ev["by_k"])
        intro = [f"Remaining useful life: {card_['kind']}.",
                 "Data: the Severson et al. cells; held-out = the paper's primary and secondary "
                 "test cells."]
        title = f"RUL: {card_['name']} {card_['version']}"
    sections.insert(0, report.card_section(card_, timings))
    return report.write_report(out, stem, title, intro, sections)


# ------------------------------------------------------------------------------ prediction


def combine(estimates: pl.DataFrame) -> dict[str, Any]:
    """One SOH for one battery from several of its pulse tests (e.g. at several SOCs): the mean
    estimate, and the mean of the bounds. The errors of tests of one cell are strongly
    correlated (the same cell), so the interval is not narrowed as for independent tests: the
    mean of the bounds is the interval of the mean when the errors move together."""
    reasons = sorted({r for rs in estimates["reasons"].to_list() for r in rs})
    return {"value": float(estimates["value"].mean()), "lower": float(estimates["lower"].mean()),
            "upper": float(estimates["upper"].mean()),
            "in_domain": bool(estimates["in_domain"].all()), "reasons": reasons,
            "tests": estimates.height}


def predict_pulse(source: str | Path | pl.DataFrame, *, artefact: Any = None,
                  root: Path | None = None, chemistry: str | None = None,
                  rated_ah: float | None = None, name: str | None = None
                  ) -> tuple[PulseTable, pl.DataFrame, dict[str, Any], artifacts.ModelCard]:
    """Validated tests, per-test estimates, the combined estimate and the model card."""
    model, card_ = load_pulse(artefact, root=root)
    table = read_pulse_file(source, chemistry=chemistry, rated_ah=rated_ah, name=name)
    est = pm.predict_tests(model, voltages=table.voltages, soc=table.soc,
                           chemistry=table.chemistry, rated_ah=table.rated_ah,
                           width_s=table.width_s, currents=table.currents)
    est = est.with_columns(pl.Series("row", table.rows), pl.Series("soc", table.soc))
    return table, est, combine(est), card_


def model_ref(card_: artifacts.ModelCard, method: str | None = None) -> dict[str, Any]:
    """How an estimate names the model it came from."""
    return {"name": card_.name, "version": card_.version, "model_sha256": card_.model_sha256,
            "training_data_sha256": card_.training_data_sha256,
            "method": method or card_.params.get("method") or card_.params.get("model")}


def predict_cycle_life(frame: pl.DataFrame, *, name: str = "cycle-life", version: str | None = None,
                       root: Path | None = None, rated_ah: float | None = None,
                       chemistry: str | None = None) -> dict[str, Any]:
    """Cycle life (cycles to 80 % of rated) of one cell from its per-cycle rows. The models are
    trained on the 1.1 Ah LFP/graphite cells of Severson et al.; with ``rated_ah`` the capacity is
    rescaled to that rating (capacity features are then relative), and a cell of another rating
    or chemistry is flagged out of domain."""
    fitted, card_, _ = load(name, version, root=root)
    if not isinstance(fitted, cl.CycleLifeModel):
        raise ValidationFailed(f"{card_.name} is not a cycle-life model", location="name")
    reasons = []
    data = frame
    if rated_ah is not None:
        if not np.isfinite(rated_ah) or rated_ah <= 0:
            raise ValidationFailed(f"rated capacity must be positive, got {rated_ah!r}",
                                   location="rated_ah")
        lower = {c.lower(): c for c in frame.columns}
        col = next((lower[c] for c in ("capacity_ah", "discharge_capacity_ah", "capacity",
                                       "discharge_capacity", "qd") if c in lower), None)
        if col is None:
            raise ValidationFailed("no capacity column (capacity_ah or discharge_capacity_ah)",
                                   location="capacity_ah")
        data = frame.with_columns(pl.col(col) * (fitted.nominal_ah / rated_ah))
        if abs(rated_ah - fitted.nominal_ah) > 0.1 * fitted.nominal_ah:
            reasons.append(f"rated capacity {rated_ah:g} Ah differs from the training cells' "
                           f"{fitted.nominal_ah:g} Ah: capacity rescaled, an extrapolation")
    if chemistry is not None and chemistry.strip().upper() != "LFP":
        reasons.append(f"chemistry {chemistry.upper()}: the model knows LFP/graphite only")
    value = cl.predict_cycle_life(fitted, data)
    return {"cycle_life": value, "unit": "cycles to 80 % of rated capacity",
            "in_domain": not reasons, "reasons": reasons, "model": model_ref(card_, fitted.name)}


__all__ = ["KINDS", "artefact_name", "card", "catalogue", "combine", "evaluate", "kind_of",
           "load", "load_pulse", "model_ref", "models_root", "predict_cycle_life",
           "predict_pulse", "resolve", "shared_data", "summary", "train"]

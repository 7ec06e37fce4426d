"""`batteryloop model train|evaluate|predict|list|show`: artefacts under <data_dir>/models with
their cards (training data hash, features, held-out scores), reports, predictions, bad input.

Held-out bounds sit a little above what the same configurations measured: pulse-SOH per-type
ridge on LFP 35 Ah + NMC 21 Ah, 5-fold CV over whole cells: MAPE 2.99 / 0.66 %, coverage of the
90 % intervals 0.90; cycle life, capacity features + Gaussian process, on the paper's test cells
(39 primary, 21 secondary scored): RMSE 368 / 456 cycles; RUL (capacity route): coverage of the
90 % intervals 0.92 / 0.86 on the primary / secondary test cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from batteryloop.health import artifacts, severson
from batteryloop.health import cycle_life as cl
from batteryloop.health.datasets import pulsebat_files
from pulse_support import TYPES, write_pulse_csv


@pytest.fixture
def cli(sqlite_db, data_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`batteryloop ...` on one SQLite database: these commands train models, and the models
    do not depend on the database backend (the shared `cli` fixture would train them twice)."""
    from typer.testing import CliRunner

    from batteryloop.cli import common
    from batteryloop.cli.main import app
    from batteryloop.settings import get_settings

    monkeypatch.setenv("BATTERYLOOP_DATABASE_URL",
                       sqlite_db.engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    monkeypatch.setattr(common, "_db", sqlite_db)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


def _json(result: tuple[int, str, str]) -> dict | list:
    code, out, err = result
    assert code == 0, err
    return json.loads(out)


@pytest.mark.shared
def test_pulse_soh_train_list_show_predict_evaluate(cli, data_dir: Path, shared_dir: Path,  # type: ignore[no-untyped-def]
                                                    pulse_frame: pl.DataFrame,
                                                    tmp_path: Path) -> None:
    types = sum((["--type", t] for t in TYPES), [])
    trained = _json(cli("model", "train", "pulse-soh", "--method", "ridge", *types, "--data",
                        str(shared_dir), "--json"))
    folder = Path(trained["folder"])
    assert folder.parent == data_dir / "models" / "pulse-soh"
    card = json.loads((folder / artifacts.CARD).read_text())
    files = [p for p in pulsebat_files(shared_dir) if p.name.startswith(tuple(TYPES))]
    assert card["training_data_sha256"] == artifacts.data_sha256(files)
    assert card["params"]["train_seconds"] > 0 and card["params"]["method"] == "ridge"
    per_type = card["scores"]["per_type"]
    assert per_type["LFP_35Ah"]["mape_pct"] < 3.3 and per_type["NMC_21Ah"]["mape_pct"] < 0.8
    assert 0.85 <= card["scores"]["pooled"]["coverage"] <= 0.95
    assert card["scores"]["group_by"] == "cell_id"  # whole cells held out
    report = Path(trained["report"]["html"])
    assert report.is_file() and Path(trained["report"]["markdown"]).is_file()

    listed = _json(cli("model", "list", "--json"))
    assert [(m["name"], m["version"]) for m in listed] == [("pulse-soh", card["version"])]
    assert listed[0]["scores"]["pooled_mape_pct"] == pytest.approx(
        card["scores"]["pooled"]["mape_pct"])
    shown = _json(cli("model", "show", "pulse-soh", "--json"))
    assert shown["features"] == card["features"] and str(report) in shown["reports"]

    rows = pulse_frame.filter(pl.col("cell_id") == pulse_frame["cell_id"][0])
    path = write_pulse_csv(rows, tmp_path / "p.csv")
    pred = _json(cli("model", "predict", "pulse-soh", str(path), "--chemistry", "LFP",
                     "--rated-ah", "35", "--json"))
    assert pred["estimate"]["tests"] == rows.height and pred["estimate"]["in_domain"]
    assert pred["model"]["version"] == card["version"]
    values = [t["value"] for t in pred["tests"]]
    assert pred["estimate"]["value"] == pytest.approx(sum(values) / len(values))

    # evaluation scores the same configuration on the same data: the card's figures again
    evaluated = _json(cli("model", "evaluate", "pulse-soh", "--data", str(shared_dir),
                          "--out", str(tmp_path / "eval"), "--json"))
    assert evaluated["scores"]["pooled_mape_pct"] == pytest.approx(
        card["scores"]["pooled"]["mape_pct"], rel=1e-9)
    text = Path(evaluated["report"]["markdown"]).read_text()
    assert f"| LFP_35Ah | 56 | 560 | {per_type['LFP_35Ah']['mape_pct']:.2f} |" in text

    # an altered model file is refused, naming the card
    (folder / artifacts.MODEL).write_bytes((folder / artifacts.MODEL).read_bytes() + b"\0")
    code, _, err = cli("model", "predict", "pulse-soh", str(path), "--chemistry", "LFP",
                       "--rated-ah", "35")
    assert code == 1 and "does not match its card's SHA-256" in err


def _per_cycle_csv(shared_dir: Path, cell: str, path: Path, rows: int | None = None) -> Path:
    frame = severson.load_cells(shared_dir, [cell]).select("cycle", "capacity_ah")
    (frame.head(rows) if rows else frame).write_csv(path)
    return path


@pytest.mark.shared
def test_cycle_life_and_rul_train_predict_and_bad_input(cli, data_dir: Path, shared_dir: Path,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path, sqlite_db) -> None:
    db = sqlite_db
    data = ("--data", str(shared_dir))
    trained = _json(cli("model", "train", "cycle-life", "--features", "capacity", "--model",
                        "gaussian-process", "--repeats", "1", *data, "--json"))
    assert trained["name"] == "cycle-life-capacity"
    card = json.loads((Path(trained["folder"]) / artifacts.CARD).read_text())
    primary, secondary = card["scores"]["primary_test"], card["scores"]["secondary_test"]
    assert primary["n"] == 39 and secondary["n"] == 21
    assert primary["rmse_cycles"] < 400 and secondary["rmse_cycles"] < 500
    split = severson.split()
    train_cells = set(split.filter(pl.col("set") == "train")["cell"])
    assert not train_cells & set(primary["cells"]) and set(card["params"]["training_cells"]) <= train_cells
    md = Path(trained["report"]["markdown"]).read_text()
    assert "Severson et al. 2019, discharge model" in md and "91 (13) n=43" in md
    assert f"| this model: primary test | 39 | {primary['rmse_cycles']:.2f} |" in md

    # predict from a per-cycle file of a test cell: the artefact's estimate, in domain
    path = _per_cycle_csv(shared_dir, "b1c0", tmp_path / "b1c0.csv")
    pred = _json(cli("model", "predict", "cycle-life", str(path), "--json"))
    model, _ = artifacts.load(data_dir / "models", "cycle-life-capacity")
    assert pred["cycle_life"] == pytest.approx(cl.predict_cycle_life(model, pl.read_csv(path)))
    assert pred["in_domain"] and pred["model"]["version"] == card["version"]

    # ... and from a stored test of a registered battery: another cell, flagged out of domain
    from batteryloop.cycling import read, storage
    from batteryloop.registry.schemas import BatteryIn
    from batteryloop.registry.service import Registry

    with db.session() as s:
        Registry(s).register(BatteryIn(kind="cell", rated_capacity_ah=0.2,
                                       identifiers={"serial": "BATMO"}))
    df, meta = read(shared_dir / "data/cyclers/bdf/batmo_bdf.csv")
    storage.store(db, df, meta, battery="BATMO")
    stored = _json(cli("model", "predict", "cycle-life", "--test", meta.sha256, "--json"))
    assert stored["source"] == f"test {meta.sha256}" and not stored["in_domain"]
    assert "rated capacity 0.2 Ah" in stored["reasons"][0] and stored["cycle_life"] > 0

    rul = _json(cli("model", "train", "rul", *data, "--json"))
    assert rul["name"] == "rul-capacity"
    assert 0.85 <= rul["scores"]["primary_test_coverage"] <= 0.97
    assert 0.78 <= rul["scores"]["secondary_test_coverage"] <= 0.95
    left = _json(cli("model", "predict", "rul", str(path), "--at-cycle", "300", "--json"))
    assert left["after_cycle"] == 300 and left["lower"] < left["rul"] < left["upper"]
    assert _json(cli("model", "list", "--kind", "rul", "--json"))[0]["name"] == "rul-capacity"

    # bad input: a clear one-line error, exit code 1
    short = _per_cycle_csv(shared_dir, "b1c0", tmp_path / "short.csv", rows=60)
    for args, message in [
        (("model", "predict", "cycle-life", str(short)), "needs the first 100 cycles"),
        (("model", "predict", "cycle-life", str(tmp_path / "none.csv")), "no such file"),
        (("model", "predict", "cycle-life"), "give either a per-cycle CSV file or --test"),
        (("model", "predict", "pulse-soh"), "needs a pulse-test CSV file"),
        (("model", "train", "nope", *data), "unknown model kind 'nope'"),
        (("model", "train", "pulse-soh", "--type", "XYZ_1Ah", *data), "unknown cell type(s) XYZ_1Ah"),
        (("model", "train", "cycle-life", "--features", "voltage", *data), "features must be one of"),
        (("model", "show", "cycle-life-paper-full"), "batteryloop model train cycle-life"),
        (("model", "show", "../../etc"), "no model named"),
        (("model", "evaluate", "pulse-soh", *data), "batteryloop model train pulse-soh"),
    ]:
        code, _, err = cli(*args)
        assert code == 1 and message in err, (args, err)
    mah = tmp_path / "mah.csv"
    pl.read_csv(short).rename({"capacity_ah": "capacity_mah"}).write_csv(mah)
    code, _, err = cli("model", "predict", "cycle-life", str(mah))
    assert code == 1 and "convert it to Ah" in err


def test_training_without_shared_data_says_where_to_point(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from batteryloop.settings import get_settings

    monkeypatch.delenv("BATTERYLOOP_SHARED", raising=False)
    get_settings.cache_clear()
    code, _, err = cli("model", "train", "pulse-soh")
    assert code == 1 and "set BATTERYLOOP_SHARED or pass --data" in err

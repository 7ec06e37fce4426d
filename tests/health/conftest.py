"""Small pulse-SOH artefacts trained once per test session (a few seconds each).

* ``pulse_models``: a models root holding ``pulse-soh`` trained by the service on two cell types
  (LFP 35 Ah, NMC 21 Ah) with the fast per-type ridge: what ``batteryloop model train`` writes.
* ``held_out_models``: the same configuration trained *without* the cells of fold 0 (the
  cell-grouped folds of :func:`batteryloop.health.pulse_model.cell_folds`), so tests can score
  estimates on cells the model never saw.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from batteryloop.health import artifacts
from batteryloop.health import model_store as ms
from batteryloop.health import pulse_model as pm
from batteryloop.health.datasets import load_pulsebat, pulsebat_files

from pulse_support import METHOD, TYPES


@pytest.fixture(scope="session")
def pulse_frame(shared_dir: Path) -> pl.DataFrame:
    return load_pulsebat(shared_dir).filter(pl.col("cell_type").is_in(TYPES))


@pytest.fixture(scope="session")
def pulse_models(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    ms.train("pulse-soh", data=shared_dir, root=root, method=METHOD, types=TYPES,
             write_report=False)
    return root


@pytest.fixture(scope="session")
def held_out_cells(pulse_frame: pl.DataFrame) -> list[str]:
    folds = pm.cell_folds(pulse_frame["cell_id"].to_list(), pulse_frame["cell_type"].to_list())
    return sorted(set(pulse_frame.filter(pl.Series(folds == 0))["cell_id"]))


@pytest.fixture(scope="session")
def held_out_models(shared_dir: Path, pulse_frame: pl.DataFrame, held_out_cells: list[str],
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = pulse_frame.filter(~pl.col("cell_id").is_in(held_out_cells))
    model = pm.fit(pm.PulseData.from_frame(train), METHOD)
    files = [p for p in pulsebat_files(shared_dir) if p.name.startswith(tuple(TYPES))]
    card = artifacts.ModelCard(
        name=pm.NAME, kind=f"test artefact: {METHOD} on {', '.join(TYPES)} without fold 0",
        features=[*pm.FEATURES, "soc", "cell_type"], target="soh",
        training_data_sha256=artifacts.data_sha256(files),
        training_files=[p.name for p in files],
        params={"method": METHOD, "coverage": pm.NOMINAL_COVERAGE,
                "held_out_cells": held_out_cells})
    root = tmp_path_factory.mktemp("held-out-models")
    artifacts.save(model, card, root)
    return root

"""Models as versioned artefacts: the fitted object, and a card saying what it was trained on.

A card carries the SHA-256 of the training data, the features, the target, the measured scores
(on held-out data, never the training set) and the model file's own SHA-256, so `load` refuses a
model file that no longer matches its card and a grading decision can name the exact model used.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from batteryloop.errors import NotFound, ValidationFailed

CARD = "card.json"
MODEL = "model.joblib"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_sha256(paths: Iterable[Path]) -> str:
    """One hash over several training files: their names and contents, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(f"{path.name} {file_sha256(path)}\n".encode())
    return digest.hexdigest()


@dataclass
class ModelCard:
    name: str  # e.g. "pulse-soh", "cycle-life"
    kind: str  # what it predicts and how, in a few words
    features: list[str]
    target: str
    training_data_sha256: str
    training_files: list[str]
    scores: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    created_at: str = ""
    model_sha256: str = ""
    python: str = field(default_factory=platform.python_version)
    libraries: dict[str, str] = field(default_factory=dict)


def _libraries() -> dict[str, str]:
    out = {}
    for name in ("sklearn", "numpy", "scipy", "polars"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            continue
    return out


def save(model: Any, card: ModelCard, root: Path) -> Path:
    """Write model and card under root/name/version/; returns that folder. The folder appears
    whole or not at all (written under a staging name, then renamed). Saving the very same model
    file twice within one second (same version) returns the folder already there."""
    created = datetime.now(UTC)
    (root / card.name).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root / card.name))
    staging.chmod(0o755)  # mkdtemp makes it private; an artefact is for every reader
    try:
        joblib.dump(model, staging / MODEL, compress=3)
        card.model_sha256 = file_sha256(staging / MODEL)
        card.created_at = created.isoformat(timespec="seconds")
        card.version = f"{created:%Y%m%dT%H%M%S}-{card.model_sha256[:8]}"
        card.libraries = _libraries()
        (staging / CARD).write_text(json.dumps(asdict(card), indent=2, sort_keys=True))
        target = root / card.name / card.version
        if (target / CARD).is_file():
            shutil.rmtree(staging)
            return target
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def versions(root: Path, name: str) -> list[str]:
    folder = root / name
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if not p.name.startswith(".") and (p / CARD).is_file())


def load(root: Path, name: str, version: str | None = None) -> tuple[Any, ModelCard]:
    """The model and its card (newest version by default), after checking the file's hash."""
    available = versions(root, name)
    if not available:
        raise NotFound(f"no trained model '{name}' under {root} (train it first)")
    version = version or available[-1]
    if version not in available:
        raise NotFound(f"model '{name}' has no version '{version}' (have: {', '.join(available)})")
    folder = root / name / version
    card = ModelCard(**json.loads((folder / CARD).read_text()))
    if file_sha256(folder / MODEL) != card.model_sha256:
        raise ValidationFailed(
            f"{folder / MODEL} does not match its card's SHA-256: the model file was altered",
            location=str(folder),
        )
    return joblib.load(folder / MODEL), card

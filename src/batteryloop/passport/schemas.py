"""The Battery Pass v1.2 JSON schemas, read in place, and validation of passport documents.

The schemas live in ``<shared>/schemas/batterypass-1.2/`` (``BATTERYLOOP_SHARED``, default the
``shared`` folder beside the project); they are never copied into the project. Their quirks and
what we do about each are listed in ``data/batterypass.toml``; this module applies exactly the
overrides listed there and nothing else.
"""

from __future__ import annotations

import codecs
import copy
import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

from batteryloop.errors import NotFound
from batteryloop.passport.attributes import batterypass, categories, table
from batteryloop.settings import get_settings

SUBDIR = Path("schemas") / "batterypass-1.2"


def schemas_dir() -> Path:
    shared = get_settings().shared or Path(__file__).resolve().parents[3].parent / "shared"
    return Path(shared) / SUBDIR


def available() -> bool:
    return _available(schemas_dir())


@lru_cache(maxsize=8)
def _available(folder: Path) -> bool:
    """Asked once per attribute check: the file system is looked at once per folder."""
    return all((folder / c["schema"]).is_file() for c in categories().values())


def decode(raw: bytes) -> str:
    """JSON text of a schema file: UTF-16 (LE or BE) or UTF-8, told apart by the byte-order mark."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8")
    if len(raw) >= 2 and raw[1] == 0:  # UTF-16LE without a BOM: '{' then NUL
        return raw.decode("utf-16-le")
    return raw.decode("utf-8")


@dataclass(frozen=True)
class Loaded:
    schema: dict[str, Any]
    validator: Draft4Validator
    overrides: tuple[str, ...]  # what was changed in memory, for the validation report


@cache
def load(category: str) -> Loaded:
    """The schema of one category, with the listed overrides applied in memory."""
    name = categories()[category]["schema"]
    path = schemas_dir() / name
    if not path.is_file():
        raise NotFound(
            f"Battery Pass schema {name} not found in {path.parent} (set BATTERYLOOP_SHARED)"
        )
    schema = json.loads(decode(path.read_bytes()))
    applied = []
    for override in batterypass().get("overrides", []):
        if override["schema"] != name:
            continue
        component = schema["components"]["schemas"][override["component"]]
        component = schema["components"]["schemas"][override["component"]] = copy.deepcopy(component)
        component["pattern"] = override["pattern"]
        applied.append(f"{override['component']}.pattern: {override['reason']}")
    # No check_schema: Circularity's RecycledMaterial enum repeats its values, which the draft-04
    # metaschema forbids; instance validation is unaffected.
    validator = Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
    return Loaded(schema, validator, tuple(applied))


def _excused(category: str, expected: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """Attribute paths outside ``expected``, and containers holding only such paths: their
    absence is not an error."""
    absent = {a.path for a in table().values() if a.category == category and a.path} - expected
    containers: dict[tuple[str, ...], bool] = {}
    for a in table().values():
        if a.category != category or len(a.path) < 2:
            continue
        for i in range(1, len(a.path)):
            prefix = a.path[:i]
            containers[prefix] = containers.get(prefix, True) and a.path in absent
    return absent | {p for p, all_absent in containers.items() if all_absent}


def validate(category: str, document: dict[str, Any], *,
             expected: set[tuple[str, ...]] | None = None) -> list[dict[str, str]]:
    """Schema errors of one category's document, as {path, message}.

    ``expected``: the attribute paths that must be there (default: every attribute of the
    category, i.e. the schema's own ``required``). A ``required`` error for a path outside it is
    not reported: that is how a tier-filtered export, or one value, is checked.
    """
    loaded = load(category)
    excused = set() if expected is None else _excused(category, expected)
    errors = []
    for error in sorted(loaded.validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = tuple(str(p) for p in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [
                name for name in error.validator_value
                if name not in error.instance and (*where, name) not in excused
            ]
            if not missing:
                continue
            errors.extend({"path": "/".join((*where, name)), "message": f"'{name}' is required"}
                          for name in missing)
            continue
        errors.append({"path": "/".join(where), "message": error.message})
    # one missing name can be reported by several allOf branches
    unique = {(e["path"], e["message"]): e for e in errors}
    return list(unique.values())


def overrides() -> list[str]:
    return [o for c in categories() for o in load(c).overrides]

"""Grading policies as data: one TOML file per application, shipped defaults and user files.

A policy is an ordered list of rules. Each rule routes a battery to one lifecycle state (reused,
repurposed, remanufactured, waste) when all its conditions hold, and says where its thresholds come
from: a ``source`` (a standard, a regulation, a publication) or a ``convention`` note (a value this
policy chose). Safety rules come first in the file and can only route to waste: any safety finding
decides the route whatever the SOH. The first rule that holds decides; the engine still evaluates
every rule so a grade shows all values against all thresholds.

Shipped policies live in ``grading/data/policies``; a user's policies in
``$BATTERYLOOP_DATA_DIR/grading/policies`` are found by name too (and shadow a shipped one of the
same name), and any file can be loaded by path. A grade records the policy's SHA-256, so the exact
file that decided can always be named.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.grading.metrics import HEALTH_PARAMETERS, METRICS, ROUTES, VISUAL_FINDINGS

OPERATORS = {"at_least": ">=", "at_most": "<=", "below": "<", "above": ">"}
KINDS = ("safety", "limit", "route")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
_TOP_KEYS = {
    "name", "title", "version", "application", "description", "soh_parameters", "default_route",
    "default_grade", "ignore_bms_codes", "rules",
}
_RULE_KEYS = {
    "id", "kind", "route", "grade", "description", "application", "source", "convention", "when",
}
_CONDITION_KEYS = {"metric", "finding", "if_missing", *OPERATORS}


@dataclass(frozen=True)
class Condition:
    metric: str | None = None  # a METRICS name, or None for a finding
    finding: str | None = None  # a VISUAL_FINDINGS name
    op: str | None = None  # at_least | at_most | below | above
    threshold: float | None = None
    if_missing: str = "not-met"  # what an unmeasured value counts as: "not-met" or "met"

    def as_dict(self) -> dict[str, Any]:
        if self.finding:
            return {"finding": self.finding}
        return {"metric": self.metric, self.op: self.threshold, "if_missing": self.if_missing}  # type: ignore[dict-item]


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    route: str
    when: tuple[Condition, ...]
    grade: str | None = None
    description: str | None = None
    application: str | None = None
    source: str | None = None
    convention: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "route": self.route, "grade": self.grade,
            "description": self.description, "application": self.application,
            "source": self.source, "convention": self.convention,
            "when": [c.as_dict() for c in self.when],
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Policy:
    name: str
    title: str
    version: str
    application: str
    rules: tuple[Rule, ...]
    soh_parameters: tuple[str, ...] = ("capacity_soh",)
    default_route: str = "waste"
    default_grade: str | None = None
    description: str | None = None
    ignore_bms_codes: tuple[str, ...] = ()
    sha256: str = ""
    origin: str = "inline"  # shipped | user | file | inline
    path: str | None = None
    text: str = field(default="", repr=False)

    def ref(self) -> dict[str, Any]:
        """How a grade names the policy it used."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256,
                "origin": self.origin, "application": self.application}

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.ref(), "title": self.title, "description": self.description,
            "soh_parameters": list(self.soh_parameters), "default_route": self.default_route,
            "default_grade": self.default_grade, "ignore_bms_codes": list(self.ignore_bms_codes),
            "path": self.path, "rules": [r.as_dict() for r in self.rules],
        }


# --- where the line is -------------------------------------------------------------------------
class _Lines:
    """Finds the line of a key or value in the source text, so errors can name it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.rule_starts = [
            i + 1 for i, line in enumerate(self.lines) if re.match(r"^\s*\[\[\s*rules\s*\]\]", line)
        ]

    def _block(self, rule_index: int | None) -> tuple[int, int]:
        if rule_index is None:  # the top level: up to the first table header
            end = next((i for i, line in enumerate(self.lines) if line.lstrip().startswith("[")),
                       len(self.lines))
            return 1, end
        if rule_index < len(self.rule_starts):
            start = self.rule_starts[rule_index]
            later = [s for s in self.rule_starts if s > start]
            return start, (later[0] - 1 if later else len(self.lines))
        return 1, len(self.lines)  # `rules = [...]` written inline: search everywhere

    def find(self, rule_index: int | None, *needles: str) -> int | None:
        start, end = self._block(rule_index)
        for needle in needles:
            pattern = re.compile(rf"(^|[\s{{,]){re.escape(needle)}\s*=") if needle.isidentifier() \
                else re.compile(re.escape(needle))
            for number in range(start, end + 1):
                if number - 1 < len(self.lines) and pattern.search(self.lines[number - 1]):
                    return number
        if rule_index is not None and rule_index < len(self.rule_starts):
            return self.rule_starts[rule_index]
        return None


class _Checker:
    def __init__(self, text: str, label: str) -> None:
        self.where = _Lines(text)
        self.label = label

    def fail(self, message: str, rule_index: int | None = None, *needles: str) -> ValidationFailed:
        line = self.where.find(rule_index, *needles) if needles or rule_index is not None else None
        location = f"{self.label}:{line}" if line else self.label
        return ValidationFailed(message, location=location)


def _toml_error(exc: tomllib.TOMLDecodeError, text: str, label: str) -> ValidationFailed:
    message = str(exc)
    found = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if found:
        message = message.replace(found.group(0), "").strip()
        return ValidationFailed(f"column {found.group(2)}: {message}",
                                location=f"{label}:{found.group(1)}")
    if "(at end of document)" in message:  # an unclosed array or string runs to the end
        message = message.replace("(at end of document)", "").strip()
        return ValidationFailed(f"{message} at the end of the file",
                                location=f"{label}:{max(1, len(text.splitlines()))}")
    return ValidationFailed(message or "malformed TOML", location=label)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse(text: str, *, label: str = "<policy>", origin: str = "inline",
          path: str | None = None) -> Policy:
    """A validated policy from TOML text; an error names the file and line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, label) from None
    check = _Checker(text, label)
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise check.fail(f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(_TOP_KEYS))})",
                         None, unknown[0])
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise check.fail("'name' is required: lower-case letters, digits and '-'", None, "name")
    for key in ("title", "version", "application", "description", "default_grade"):
        if key in raw and not isinstance(raw[key], str):
            raise check.fail(f"'{key}' must be a string", None, key)
    soh_parameters = raw.get("soh_parameters", ["capacity_soh"])
    if (not isinstance(soh_parameters, list) or not soh_parameters
            or not all(isinstance(p, str) for p in soh_parameters)):
        raise check.fail("'soh_parameters' must be a non-empty list of health parameters", None,
                         "soh_parameters")
    for p in soh_parameters:
        if p not in HEALTH_PARAMETERS:
            raise check.fail(f"unknown health parameter '{p}' in soh_parameters "
                             f"(known: {', '.join(HEALTH_PARAMETERS)})", None, "soh_parameters")
    default_route = raw.get("default_route", "waste")
    if default_route not in ROUTES:
        raise check.fail(f"default_route '{default_route}' is not a route ({', '.join(ROUTES)})",
                         None, "default_route")
    ignore = raw.get("ignore_bms_codes", [])
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise check.fail("'ignore_bms_codes' must be a list of strings", None, "ignore_bms_codes")
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise check.fail("a policy needs at least one [[rules]] table", None, "rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    past_safety = False
    for index, spec in enumerate(rules_raw):
        rule = _rule(spec, index, check)
        if rule.id in seen:
            raise check.fail(f"rule id '{rule.id}' is used twice", index, "id")
        seen.add(rule.id)
        if rule.kind == "safety" and past_safety:
            raise check.fail(
                f"safety rule '{rule.id}' comes after other rules: safety rules go first "
                "(the engine evaluates in file order, safety first)", index, "kind")
        past_safety = past_safety or rule.kind != "safety"
        rules.append(rule)
    return Policy(
        name=name, title=raw.get("title", name), version=str(raw.get("version", "1")),
        application=raw.get("application", "unspecified"), rules=tuple(rules),
        soh_parameters=tuple(soh_parameters), default_route=default_route,
        default_grade=raw.get("default_grade"), description=raw.get("description"),
        ignore_bms_codes=tuple(ignore), sha256=hashlib.sha256(text.encode()).hexdigest(),
        origin=origin, path=path, text=text,
    )


def _rule(spec: Any, index: int, check: _Checker) -> Rule:
    if not isinstance(spec, dict):
        raise check.fail("each entry of 'rules' must be a table", index)
    label = f"rule {index + 1}"
    rid = spec.get("id")
    if not isinstance(rid, str) or not _RULE_ID.match(rid):
        raise check.fail(f"{label}: 'id' is required (lower-case letters, digits, '.', '-', '_')",
                         index, "id")
    label = f"rule '{rid}'"
    unknown = sorted(set(spec) - _RULE_KEYS)
    if unknown:
        raise check.fail(f"{label}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(_RULE_KEYS))})",
                         index, unknown[0])
    kind = spec.get("kind", "route")
    if kind not in KINDS:
        raise check.fail(f"{label}: kind '{kind}' must be one of {', '.join(KINDS)}", index, "kind")
    route = spec.get("route")
    if route not in ROUTES:
        raise check.fail(f"{label}: route {route!r} must be one of {', '.join(ROUTES)}", index, "route")
    if kind == "safety" and route != "waste":
        raise check.fail(f"{label}: a safety rule can only route to 'waste', not '{route}'", index, "route")
    for key in ("grade", "description", "application", "source", "convention"):
        if key in spec and not isinstance(spec[key], str):
            raise check.fail(f"{label}: '{key}' must be a string", index, key)
    if not spec.get("source") and not spec.get("convention"):
        raise check.fail(
            f"{label}: needs a 'source' (standard, regulation, publication) or a 'convention' note "
            "saying the threshold is this policy's choice", index, "id")
    when = spec.get("when")
    if not isinstance(when, list) or not when:
        raise check.fail(f"{label}: 'when' must be a non-empty list of conditions", index, "when")
    conditions = tuple(_condition(c, index, label, check) for c in when)
    return Rule(
        id=rid, kind=kind, route=route, when=conditions, grade=spec.get("grade"),
        description=spec.get("description"), application=spec.get("application"),
        source=spec.get("source"), convention=spec.get("convention"),
        line=check.where.find(index, "id"),
    )


def _condition(spec: Any, index: int, label: str, check: _Checker) -> Condition:
    if not isinstance(spec, dict):
        raise check.fail(f"{label}: each condition must be a table like "
                         "{ metric = \"soh\", at_least = 80 }", index, "when")
    unknown = sorted(set(spec) - _CONDITION_KEYS)
    if unknown:
        raise check.fail(f"{label}: unknown condition key '{unknown[0]}' "
                         f"(allowed: {', '.join(sorted(_CONDITION_KEYS))})", index, unknown[0])
    if_missing = spec.get("if_missing", "not-met")
    if if_missing not in ("not-met", "met"):
        raise check.fail(f"{label}: if_missing must be 'not-met' or 'met'", index, "if_missing")
    if "finding" in spec:
        finding = spec["finding"]
        if set(spec) - {"finding", "if_missing"}:
            raise check.fail(f"{label}: a finding condition takes no metric or threshold",
                             index, f'"{finding}"')
        if finding not in VISUAL_FINDINGS:
            raise check.fail(f"{label}: unknown finding {finding!r} "
                             f"(known: {', '.join(VISUAL_FINDINGS)})", index, f'"{finding}"', "finding")
        return Condition(finding=finding, if_missing=if_missing)
    metric = spec.get("metric")
    if metric not in METRICS:
        needle = f'"{metric}"' if isinstance(metric, str) else "metric"
        raise check.fail(f"{label}: unknown metric {metric!r} (known: {', '.join(METRICS)})",
                         index, needle, "metric")
    ops = [op for op in OPERATORS if op in spec]
    if len(ops) != 1:
        raise check.fail(f"{label}: condition on '{metric}' needs exactly one of "
                         f"{', '.join(OPERATORS)}", index, f'"{metric}"')
    threshold = spec[ops[0]]
    if not _number(threshold):
        raise check.fail(f"{label}: threshold of '{metric}' must be a number, got {threshold!r}",
                         index, ops[0])
    return Condition(metric=metric, op=ops[0], threshold=float(threshold), if_missing=if_missing)


# --- finding policies --------------------------------------------------------------------------
def shipped_dir() -> Path:
    return Path(str(files("batteryloop.grading") / "data" / "policies"))


def user_dir() -> Path:
    from batteryloop.settings import get_settings

    return get_settings().data_dir / "grading" / "policies"


def _candidates() -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    for folder, origin in ((shipped_dir(), "shipped"), (user_dir(), "user")):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found[path.stem] = (path, origin)  # a user file shadows a shipped one
    return found


def load_file(path: Path, origin: str = "file") -> Policy:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no policy file {path}")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed("not UTF-8 text", location=str(path)) from None
    return parse(text, label=str(path) if origin == "file" else path.name, origin=origin,
                 path=str(path))


def load(ref: str | Path) -> Policy:
    """A policy by name (user folder, then shipped) or by path to a TOML file."""
    text = str(ref)
    candidates = _candidates()
    if isinstance(ref, Path) or text.endswith(".toml") or "/" in text or "\\" in text:
        return load_file(Path(text))
    if text in candidates:
        path, origin = candidates[text]
        return load_file(path, origin)
    raise NotFound(f"no grading policy '{text}' (known: {', '.join(sorted(candidates))}; "
                   "or give a path to a .toml file)")


def available() -> list[dict[str, Any]]:
    """Every policy found by name, with where it comes from; a broken user file is listed with its error."""
    out = []
    for name, (path, origin) in sorted(_candidates().items()):
        try:
            p = load_file(path, origin)
            out.append({"name": name, "title": p.title, "version": p.version,
                        "application": p.application, "origin": origin, "sha256": p.sha256,
                        "rules": len(p.rules), "path": str(path)})
        except ValidationFailed as exc:
            out.append({"name": name, "origin": origin, "path": str(path), "error": exc.message})
    return out

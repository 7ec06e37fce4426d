"""The rule engine: facts about one battery in, a route with its reasons out.

Facts are measures (values with intervals), visual findings and BMS codes. Every rule of the policy
is evaluated in file order (safety rules first); the first rule whose conditions all hold decides
the route. A condition on a measured value uses the bound that is worse for the battery (the lower
bound of SOH), so a point SOH of 81 % with a lower bound of 78 % does not pass an 80 % threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batteryloop.errors import ValidationFailed
from batteryloop.grading.metrics import METRICS, VISUAL_FINDINGS, Measure
from batteryloop.grading.policy import OPERATORS, Condition, Policy, Rule

MET, NOT_MET, UNKNOWN = "met", "not met", "not measured"


@dataclass
class Facts:
    """What is known of one battery when it is graded.

    ``measures`` maps metric or health-parameter names (``capacity_soh``, ``soce``,
    ``resistance_increase``, ``calendar_age``, ``insulation_resistance``...) to measures;
    ``findings`` maps visual findings to seen (True) or checked and not seen (False); a finding
    absent from the map was not checked.
    """

    measures: dict[str, Measure] = field(default_factory=dict)
    findings: dict[str, bool] = field(default_factory=dict)
    bms_codes: list[str] | None = None  # None: not read out; []: read out, none
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, *, health: Iterable[Any] = (), findings: Mapping[str, bool] | None = None,
        bms_codes: Sequence[str] | None = None, **exact: float | Measure | None,
    ) -> Facts:
        """Facts from health values (HealthValue or dicts) and exact values by metric name.

        ``Facts.of(health=[hv], findings={"swelling": False}, cell_soh_spread=2.1, calendar_age=6)``
        """
        measures = {}
        for item in health:
            m = Measure.from_health(item)
            measures[m.parameter or ""] = m
        for name, value in exact.items():
            if value is None:
                continue
            if name not in METRICS:
                raise ValidationFailed(f"unknown metric '{name}' (known: {', '.join(METRICS)})",
                                       location=name)
            measures[name] = value if isinstance(value, Measure) else Measure.exact(
                float(value), METRICS[name].unit)
        for key in findings or {}:
            if key not in VISUAL_FINDINGS:
                raise ValidationFailed(f"unknown finding '{key}' (known: {', '.join(VISUAL_FINDINGS)})",
                                       location="findings")
        return cls(measures=measures, findings=dict(findings or {}),
                   bms_codes=list(bms_codes) if bms_codes is not None else None)

    def soh(self, policy: Policy) -> Measure | None:
        for parameter in policy.soh_parameters:
            if parameter in self.measures:
                m = self.measures[parameter]
                return m if m.parameter else Measure(m.value, m.lower, m.upper, m.unit, m.method,
                                                      m.source, parameter)
        return None

    def measure(self, metric: str, policy: Policy) -> Measure | None:
        if metric == "soh":
            return self.soh(policy)
        if metric == "bms_faults":
            if self.bms_codes is None:
                return None
            counted = [c for c in self.bms_codes if c not in policy.ignore_bms_codes]
            return Measure.exact(len(counted), "codes", method="BMS read-out",
                                 source=", ".join(counted) or None)
        return self.measures.get(metric)


@dataclass
class Decision:
    policy: dict[str, Any]
    route: str
    grade: str | None
    application: str | None
    decided_by: dict[str, Any]
    rules: list[dict[str, Any]]
    reasons: list[str]
    soh: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "route": self.route, "grade": self.grade,
            "application": self.application, "decided_by": self.decided_by,
            "reasons": self.reasons, "soh": self.soh, "rules": self.rules,
        }


def _compare(value: float, op: str, threshold: float) -> bool:
    return {
        "at_least": value >= threshold, "at_most": value <= threshold,
        "below": value < threshold, "above": value > threshold,
    }[op]


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.3g}"


def _condition(cond: Condition, facts: Facts, policy: Policy) -> dict[str, Any]:
    if cond.finding:
        seen = facts.findings.get(cond.finding)
        if seen is None:
            result = MET if cond.if_missing == "met" else UNKNOWN
            text = f"{cond.finding}: not checked"
        else:
            result = MET if seen else NOT_MET
            text = f"{cond.finding}: {'seen' if seen else 'not seen'}"
        return {"finding": cond.finding, "observed": seen, "result": result, "text": text}
    metric = METRICS[cond.metric]  # type: ignore[index]
    m = facts.measure(metric.name, policy)
    out: dict[str, Any] = {"metric": metric.name, "op": cond.op, "threshold": cond.threshold,
                           "unit": metric.unit}
    name = metric.name if metric.name != "soh" or m is None else f"soh ({m.parameter})"
    symbol = OPERATORS[cond.op]  # type: ignore[index]
    if m is None:
        out["result"] = MET if cond.if_missing == "met" else UNKNOWN
        out["text"] = f"{name}: not measured (needs {symbol} {_fmt(cond.threshold)} {metric.unit})"  # type: ignore[arg-type]
        return out
    used, bound = m.bound(metric.better)
    ok = _compare(used, cond.op, cond.threshold)  # type: ignore[arg-type]
    out.update({
        "value": used, "bound": bound, "point": m.value, "interval": [m.lower, m.upper],
        "result": MET if ok else NOT_MET,
    })
    if m.parameter and metric.name == "soh":
        out["parameter"] = m.parameter
    if m.method:
        out["method"] = m.method
    if m.source:
        out["source"] = m.source
    which = "" if bound == "exact" else f" {bound} bound"
    verdict = symbol if ok else {">=": "<", "<=": ">", "<": ">=", ">": "<="}[symbol]
    out["text"] = (f"{name}{which} {_fmt(used)} {metric.unit} {verdict} "
                   f"{_fmt(cond.threshold)} {metric.unit}")  # type: ignore[arg-type]
    return out


def _rule(rule: Rule, facts: Facts, policy: Policy) -> dict[str, Any]:
    conditions = [_condition(c, facts, policy) for c in rule.when]
    results = {c["result"] for c in conditions}
    result = NOT_MET if NOT_MET in results else UNKNOWN if UNKNOWN in results else MET
    out = rule.as_dict()
    out.pop("when")
    return {**out, "result": result, "decided": False, "conditions": conditions}


def _summary(record: dict[str, Any]) -> str:
    return "; ".join(c["text"] for c in record["conditions"])


def evaluate(policy: Policy, facts: Facts) -> Decision:
    """Evaluate every rule in order; the first that holds decides. Needs an SOH unless a safety
    rule decides (a swollen battery goes to recycling untested)."""
    records = [_rule(rule, facts, policy) for rule in policy.rules]
    decided = next((r for r in records if r["result"] == MET), None)
    soh = facts.soh(policy)
    if soh is None and (decided is None or decided["kind"] != "safety"):
        raise ValidationFailed(
            f"no health assessment: the policy '{policy.name}' grades on "
            f"{' or '.join(policy.soh_parameters)} and none is recorded; assess the battery's "
            "health first (or pass health values)", location="health")
    if decided is not None:
        decided["decided"] = True
        route, grade = decided["route"], decided.get("grade")
        application = decided.get("application") or policy.application
        decided_by = {k: v for k, v in decided.items() if k not in ("decided", "result")}
        reasons = [f"rule '{decided['id']}' ({decided['kind']}) routes to {route}: {_summary(decided)}"]
    else:
        route, grade, application = policy.default_route, policy.default_grade, policy.application
        decided_by = {"id": "default", "kind": "default", "route": route,
                      "description": "no rule held: the policy's default route", "conditions": []}
        reasons = [f"no rule held: default route {route}"]
    for record in records:
        if record is decided:
            break
        if record["kind"] != "route":  # safety and limit rules explain only when they decide
            continue
        failing = [c["text"] for c in record["conditions"] if c["result"] != MET]
        reasons.append(f"rule '{record['id']}' ({record['route']}) {record['result']}: "
                       + "; ".join(failing))
    safety = [r for r in records if r["kind"] == "safety"]
    if safety and (decided is None or decided["kind"] != "safety"):
        unchecked = [r["id"] for r in safety if r["result"] == UNKNOWN]
        reasons.append("no safety finding" + (f" (not checked: {', '.join(unchecked)})" if unchecked else ""))
    return Decision(
        policy=policy.ref(), route=route, grade=grade, application=application,
        decided_by=decided_by, rules=records, reasons=reasons,
        soh=soh.as_dict() if soh else None,
    )

"""Policies as data and the rule engine: one hand-computed case per rule, the EU remanufacturing
rule, the safety override, decisions on the lower bound of SOH, and malformed files named by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from batteryloop import grading
from batteryloop.errors import NotFound, ValidationFailed
from batteryloop.grading import Facts, Measure
from batteryloop.grading.policy import load, parse
from batteryloop.health.soh import HealthValue
from batteryloop.settings import get_settings


def hv(parameter: str, value: float, lower: float, upper: float, unit: str = "%") -> HealthValue:
    return HealthValue(parameter, value, lower, upper, unit, "test", "2025-01-01")


def healthy(**over) -> Facts:  # type: ignore[no-untyped-def]
    """A battery that passes every check of ev-reuse except what ``over`` changes."""
    health = {p.parameter: p for p in (
        hv("soce", 92.0, 91.0, 93.0), hv("capacity_soh", 92.0, 91.0, 93.0),
        hv("resistance_increase", 20.0, 18.0, 22.0), hv("self_discharge", 1.0, 0.5, 1.5, "%/month"))}
    for name in [k for k in over if k in health]:
        value = over.pop(name)
        if value is None:
            del health[name]
        else:
            health[name] = value
    base = {
        "findings": {f: False for f in grading.VISUAL_FINDINGS}, "bms_codes": [],
        "insulation_resistance": 500.0, "min_cell_voltage": 3.6, "calendar_age": 5.0,
        "months_to_expiry": 60.0, "cell_soh_spread": 5.0,
    }
    base.update(over)
    return Facts.of(health=list(health.values()), **base)


EV = load("ev-reuse")


def decide(facts: Facts, policy=EV):  # type: ignore[no-untyped-def]
    return grading.evaluate(policy, facts)


def test_shipped_policies_load_and_every_rule_says_where_it_comes_from() -> None:
    names = {p["name"] for p in grading.list_policies()}
    assert {"ev-reuse", "stationary-storage", "low-speed-vehicle"} <= names
    for name in ("ev-reuse", "stationary-storage", "low-speed-vehicle"):
        policy = load(name)
        assert policy.origin == "shipped" and len(policy.sha256) == 64
        for rule in policy.rules:
            assert rule.source or rule.convention, rule.id
        kinds = [r.kind for r in policy.rules]
        assert kinds.index("safety") == 0 and "safety" not in kinds[kinds.count("safety"):]
    eu = next(r for r in EV.rules if r.id == "eu-remanufacturing")
    assert "2023/1542" in (eu.source or "") and eu.convention is None  # law, not convention
    assert [(c.metric, c.op, c.threshold) for c in eu.when] == [
        ("capacity_soh", "at_least", 90.0), ("cell_soh_spread", "at_most", 3.0)]


def test_the_default_case_stays_in_a_vehicle() -> None:
    d = decide(healthy())
    # capacity 91 >= 90 but spread 5 > 3: not remanufacturing; SOCE 91 >= 80: reuse
    assert (d.route, d.grade, d.decided_by["id"]) == ("reused", "A", "vehicle-reuse")
    assert sum(r["decided"] for r in d.rules) == 1 and len(d.rules) == len(EV.rules)


def test_lower_bound_of_soh_decides_not_the_point_value() -> None:
    """Point SOH 81 %, lower bound 78 %: does not stay in a vehicle under the 80 % convention."""
    d = decide(healthy(soce=hv("soce", 81.0, 78.0, 84.0), capacity_soh=hv("capacity_soh", 81, 78, 84)))
    assert d.route == "repurposed" and d.decided_by["id"] == "second-life"
    reuse = next(r for r in d.rules if r["id"] == "vehicle-reuse")
    soh = reuse["conditions"][0]
    assert soh["value"] == 78.0 and soh["bound"] == "lower" and soh["point"] == 81.0
    assert soh["parameter"] == "soce" and soh["result"] == "not met"
    assert any("lower bound 78 % < 80 %" in r for r in d.reasons)
    # the same battery measured tighter (80.5 .. 81.5) stays
    assert decide(healthy(soce=hv("soce", 81.0, 80.5, 81.5))).route == "reused"


@pytest.mark.parametrize("finding", ["swelling", "leakage", "damage", "thermal_marks"])
def test_any_safety_finding_recycles_whatever_the_soh(finding: str) -> None:
    findings = {f: f == finding for f in grading.VISUAL_FINDINGS}
    d = decide(healthy(findings=findings, soce=hv("soce", 99, 98, 100)))
    assert d.route == "waste" and d.decided_by["kind"] == "safety"
    assert d.decided_by["id"] == f"safety.{finding.replace('_', '-')}"


def test_a_safety_finding_needs_no_health_but_anything_else_does() -> None:
    swollen = Facts.of(findings={"swelling": True})
    assert decide(swollen).route == "waste"
    with pytest.raises(ValidationFailed, match="no health assessment"):
        decide(Facts.of(findings={"swelling": False}))


def test_insulation_resistance_per_volt() -> None:
    # 100 ohm/V (UN R100, GB 18384): 85.7 ohm/V fails, 114.3 passes (30 and 40 kOhm at 350 V)
    assert decide(healthy(insulation_resistance=30_000 / 350)).decided_by["id"] == "safety.insulation"
    assert decide(healthy(insulation_resistance=40_000 / 350)).route == "reused"
    assert decide(healthy(insulation_resistance=100.0)).route == "reused"  # "below 100" is strict


def test_bms_fault_codes_and_the_ignore_list(tmp_path: Path) -> None:
    assert decide(healthy(bms_codes=["P0A7F"])).decided_by["id"] == "safety.bms-faults"
    lenient = EV_TEXT.replace("ignore_bms_codes = []", 'ignore_bms_codes = ["U0100"]')
    policy = parse(lenient, label="lenient.toml")
    assert decide(healthy(bms_codes=["U0100"]), policy).route == "reused"
    assert decide(healthy(bms_codes=["U0100", "P0A7F"]), policy).route == "waste"
    # not read out: the rule cannot fire, and the reasons say it was not checked
    d = decide(healthy(bms_codes=None))
    assert d.route == "reused" and any("safety.bms-faults" in r for r in d.reasons)


def test_deep_discharge_expiry_resistance_and_self_discharge_limits() -> None:
    assert decide(healthy(min_cell_voltage=1.9)).decided_by["id"] == "safety.deep-discharge"
    assert decide(healthy(min_cell_voltage=2.0)).route == "reused"
    assert decide(healthy(months_to_expiry=-0.5)).decided_by["id"] == "limit.expired"
    # resistance uses its UPPER bound: point 95 % but up to 101 %: over the 100 % limit
    d = decide(healthy(resistance_increase=hv("resistance_increase", 95, 89, 101)))
    assert d.decided_by["id"] == "limit.resistance"
    assert d.decided_by["conditions"][0]["bound"] == "upper"
    assert decide(healthy(self_discharge=hv("self_discharge", 5.5, 5.2, 5.8, "%/month"))).route == "waste"


def test_vehicle_reuse_limits_age_expiry_and_resistance() -> None:
    assert decide(healthy(calendar_age=10.5)).decided_by["id"] == "second-life"
    assert decide(healthy(months_to_expiry=12)).decided_by["id"] == "second-life"
    assert decide(healthy(resistance_increase=hv("resistance_increase", 55, 52, 58))).route == "repurposed"
    # resistance not measured: reuse cannot be shown, so second life
    assert decide(healthy(resistance_increase=None)).route == "repurposed"


def test_eu_remanufacturing_rule_90_percent_and_3_percent() -> None:
    ok = decide(healthy(capacity_soh=hv("capacity_soh", 91, 90.0, 92), cell_soh_spread=3.0))
    assert (ok.route, ok.decided_by["id"]) == ("remanufactured", "eu-remanufacturing")
    wide = decide(healthy(capacity_soh=hv("capacity_soh", 91, 90.0, 92), cell_soh_spread=3.01))
    assert wide.route == "reused"
    low = decide(healthy(capacity_soh=hv("capacity_soh", 91, 89.9, 92.1), cell_soh_spread=1.0))
    assert low.route == "reused"  # point 91 % but lower bound 89.9 %
    unknown = decide(healthy(capacity_soh=hv("capacity_soh", 95, 94, 96), cell_soh_spread=None))
    assert unknown.route == "reused"
    rule = next(r for r in unknown.rules if r["id"] == "eu-remanufacturing")
    assert rule["result"] == "not measured"


def test_second_life_and_recycling_bands() -> None:
    sixty = decide(healthy(soce=hv("soce", 62, 60.0, 64)))
    assert (sixty.route, sixty.decided_by["id"]) == ("repurposed", "second-life")
    assert sixty.application == "stationary"
    below = decide(healthy(soce=hv("soce", 61, 59.9, 62.1)))
    assert (below.route, below.decided_by["id"]) == ("waste", "recycle")


def test_stationary_bands_and_default_route() -> None:
    policy = load("stationary-storage")
    cases = {85: ("repurposed", "A"), 75: ("repurposed", "B"), 65: ("repurposed", "C"),
             55: ("waste", "R")}
    for soh, expected in cases.items():
        d = decide(healthy(capacity_soh=hv("capacity_soh", soh + 1, soh, soh + 2)), policy)
        assert (d.route, d.grade) == expected, soh
    d = decide(healthy(capacity_soh=hv("capacity_soh", 56, 55, 57)), policy)
    assert d.decided_by["id"] == "default"
    assert decide(healthy(calendar_age=16), policy).decided_by["id"] == "limit.age"
    assert decide(healthy(capacity_soh=hv("capacity_soh", 90, 85, 95), cell_soh_spread=6.0),
                  policy).grade == "B"


def test_low_speed_vehicle_policy() -> None:
    policy = load("low-speed-vehicle")
    assert decide(healthy(capacity_soh=hv("capacity_soh", 72, 70, 74)), policy).route == "repurposed"
    d = decide(healthy(resistance_increase=hv("resistance_increase", 58, 56, 61)), policy)
    assert d.decided_by["id"] == "limit.resistance"


def test_soh_parameter_preference() -> None:
    # ev-reuse grades on SOCE first; without it, on capacity SOH
    d = decide(healthy(soce=None, capacity_soh=hv("capacity_soh", 70, 68, 72)))
    assert d.soh["parameter"] == "capacity_soh" and d.route == "repurposed"


# --- files -------------------------------------------------------------------------------------
EV_TEXT = (Path(grading.policy.shipped_dir()) / "ev-reuse.toml").read_text()
MINIMAL = """name = "mine"
application = "stationary"

[[rules]]
id = "ok"
route = "repurposed"
convention = "mine"
when = [{ metric = "soh", at_least = 50 }]
"""


def test_user_policy_by_path_and_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          request: pytest.FixtureRequest) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL)
    policy = load(str(path))
    assert policy.origin == "file" and policy.name == "mine"
    assert decide(Facts.of(health=[hv("capacity_soh", 55, 51, 59)]), policy).route == "repurposed"
    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)  # before monkeypatch restores the environment
    user = tmp_path / "data" / "grading" / "policies"
    user.mkdir(parents=True)
    (user / "ev-reuse.toml").write_text(MINIMAL.replace('"mine"', '"ev-reuse"', 1))
    assert load("ev-reuse").origin == "user"  # the user's file shadows the shipped one
    listed = {p["name"]: p for p in grading.list_policies()}
    assert listed["ev-reuse"]["origin"] == "user"
    (user / "broken.toml").write_text("name = \n")
    listed = {p["name"]: p for p in grading.list_policies()}
    assert "error" in listed["broken"] and listed["broken"]["origin"] == "user"
    with pytest.raises(NotFound, match="no grading policy 'nope'.*ev-reuse"):
        load("nope")


@pytest.mark.parametrize(("text", "line", "message"), [
    (MINIMAL.replace('route = "repurposed"', 'route = "repurposed'), 6, "column"),
    (MINIMAL.replace('metric = "soh"', 'metric = "sohx"'), 8, "unknown metric 'sohx'"),
    (MINIMAL.replace('convention = "mine"\n', ""), 5, "needs a 'source'"),
    (MINIMAL.replace("at_least = 50", "at_least = \"fifty\""), 8, "must be a number"),
    (MINIMAL.replace('id = "ok"', 'id = "ok"\nkind = "safety"'), 7, "can only route to 'waste'"),
    (MINIMAL.replace('application = "stationary"', 'aplication = "x"'), 2, "unknown key 'aplication'"),
    (MINIMAL + '\n[[rules]]\nid = "late"\nkind = "safety"\nroute = "waste"\nconvention = "x"\n'
     'when = [{ finding = "swelling" }]\n', 12, "safety rules go first"),
    (MINIMAL.replace('{ metric = "soh", at_least = 50 }', '{ finding = "swollen" }'), 8,
     "unknown finding"),
])
def test_malformed_policy_names_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValidationFailed, match=message) as caught:
        load(str(path))
    assert caught.value.location == f"{path}:{line}"
    assert caught.value.message.startswith(f"{path}:{line}: ")


def test_facts_validate_intervals() -> None:
    with pytest.raises(ValidationFailed, match="does not contain"):
        Facts.of(health=[{"parameter": "soce", "value": 80, "lower": 81, "upper": 82}])
    with pytest.raises(ValidationFailed, match="unknown metric"):
        Facts.of(health=[], cell_spread=2)
    assert Measure.exact(3, "V").bound("higher") == (3.0, "exact")

"""Batteries with every passport attribute filled, for the access matrix and the schema tests.

Restricted attributes carry sentinel strings ("SENT-...") that appear nowhere else, so a test can
search a whole response body (JSON, HTML, export) for them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from batteryloop.health import soh
from batteryloop.passport import service
from batteryloop.recycling import composition, dismantling
from batteryloop.recycling import service as recycling
from batteryloop.registry.schemas import BatteryIn, OrganisationIn, SuccessorIn
from batteryloop.registry.service import Registry

ORGS = {
    "Maker": ["manufacturer"], "Carco": ["vehicle_maker"], "Reuse": ["repurposer"],
    "Reman": ["remanufacturer"], "Waste Co": ["collection_outlet"], "Recycler": ["recycler"],
}
CHEMISTRY = {  # CAS numbers of a cathode material of each chemistry
    "LFP": ("lithium iron phosphate", "15365-14-7"),
    "NMC": ("lithium nickel manganese cobalt oxide", "346417-97-8"),
    "LMO": ("lithium manganese oxide", "12057-17-9"),
}
TO_GRADED = ["retired", "collected", "tested", "graded"]
WHEN = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)


def add_orgs(session: Session) -> None:
    reg = Registry(session)
    for name, roles in ORGS.items():
        org = reg.add_organisation(OrganisationIn(name=name, roles=roles, country="DE"))
        service.set_contact(session, org.uid, {
            "streetAddress": f"{name} street 1", "postalCode": "10115", "addressCountry": "DE",
            "emailAddress": "contact@example.org", "webAddress": "https://example.org/",
        })


def register(session: Session, chemistry: str = "LFP", maker: str = "Maker", **kw: Any) -> str:
    spec = BatteryIn(kind="pack", chemistry=chemistry, rated_capacity_ah=150, rated_energy_wh=48000,
                     nominal_voltage_v=320, mass_kg=310.5, manufacturer=maker,
                     manufactured_on=date(2021, 3, 1), **kw)
    return Registry(session).register(spec, actor=maker).uid


def static_values(tag: str, chemistry: str = "LFP") -> dict[str, Any]:
    name, cas = CHEMISTRY[chemistry]
    url = f"https://example.org/{tag}"
    return {
        "general.battery_category": "ev",
        "general.manufacturing_place": {"addressCountry": "CN", "postalCode": "352100",
                                        "streetAddress": f"plant road 7 {tag}"},
        "general.warranty_period": "P8Y",
        "carbon.battery_carbon_footprint": 61.5,
        "carbon.per_lifecycle_stage": [
            {"lifecycleStage": "RawMaterialExtraction", "carbonFootprint": 40.5},
            {"lifecycleStage": "MainProduction", "carbonFootprint": 15.5},
            {"lifecycleStage": "Distribution", "carbonFootprint": 1.5},
            {"lifecycleStage": "Recycling", "carbonFootprint": 4.0},
        ],
        "carbon.performance_class": "B",
        "carbon.study": f"{url}/cf-study",
        "carbon.absolute": 2952.5,
        "due_diligence.report": f"{url}/due-diligence",
        "due_diligence.third_party_assurances": f"{url}/assurance",
        "due_diligence.indices": 0.5,
        "materials.critical_raw_materials": ["lithium", "natural graphite"],
        "materials.battery_materials": [{
            "batteryMaterialLocation": {"componentName": "cathode", "componentId": f"SENT-cathode-{tag}"},
            "batteryMaterialIdentifier": cas, "batteryMaterialName": f"SENT-material {name}",
            "batteryMaterialMass": 120.5, "isCriticalRawMaterial": False,
        }],
        "materials.hazardous_substances": [{
            "hazardousSubstanceClass": "AcuteToxicity",
            "hazardousSubstanceName": "lithium hexafluorophosphate",
            "hazardousSubstanceConcentration": 1.5, "hazardousSubstanceImpact": ["H302", "H314"],
            "hazardousSubstanceLocation": {"componentName": "electrolyte"},
            "hazardousSubstanceIdentifier": "21324-40-3",
        }],
        "circularity.dismantling_information": [{
            "documentType": "DismantlingManual", "mimeType": "application/pdf",
            "documentURL": f"{url}/SENT-dismantling.pdf",
        }],
        "circularity.spare_part_sources": [{
            "nameOfSupplier": f"SENT-supplier-{tag}",
            "addressOfSupplier": {"addressCountry": "DE", "postalCode": "10115",
                                  "streetAddress": "spare street 2"},
            "emailAddressOfSupplier": "spares@example.org",
            "supplierWebAddress": "https://example.org/spares",
            "components": [{"partName": "BMS board", "partNumber": f"SENT-part-{tag}"}],
        }],
        "circularity.recycled_content": [
            {"preConsumerShare": 5.5, "recycledMaterial": "Lithium", "postConsumerShare": 6.5},
            {"preConsumerShare": 3.5, "recycledMaterial": "Nickel", "postConsumerShare": 4.5},
        ],
        "circularity.safety_instructions": f"{url}/SENT-safety.pdf",
        "circularity.extinguishing_agent": ["Class D", "water spray"],
        "circularity.end_of_life_information": {
            "wastePrevention": f"{url}/waste-prevention", "separateCollection": f"{url}/collection",
            "informationOnCollection": f"{url}/collection-points",
        },
        "circularity.renewable_content": 2.5,
        "performance.minimum_voltage": 250.5,
        "performance.maximum_voltage": 365.5,
        "performance.original_power_capability": [{"atSoC": 80, "powerCapabilityAt": 150000.5},
                                                  {"atSoC": 20, "powerCapabilityAt": 110000.5}],
        "performance.rated_maximum_power": 160000.5,
        "performance.power_capability_ratio": 3.5,
        "performance.c_rate": 1.5,
        "performance.expected_number_of_cycles": 4000,
        "performance.lifetime_reference_test": f"{url}/cycle-life-test",
        "performance.c_rate_life_cycle_test": 0.5,
        "performance.expected_lifetime": 12,
        "performance.capacity_threshold_for_exhaustion": 70.5,
        "performance.temperature_range_idle_state": {"minimum": -20, "maximum": 60},
        "performance.initial_round_trip_efficiency": 95.5,
        "performance.round_trip_efficiency_at_50pct_cycle_life": 93.5,
        "performance.initial_internal_resistance": [{"ohmicResistance": 0.05, "batteryComponent": "pack"}],
        "performance.initial_self_discharge": 1.25,
        "labels.labels": [{"labelingSymbol": f"{url}/bin.svg",
                           "labelingMeaning": {"en": "collect separately"},
                           "labelingSubject": "SeparateCollection"}],
        "labels.declaration_of_conformity": f"{url}/doc.pdf",
        "labels.test_reports": f"{url}/SENT-test-report.pdf",
    }


def condition_values(tag: str) -> dict[str, Any]:
    return {
        "performance.round_trip_efficiency_fade": 2.25,
        "performance.power_fade": 3.25,
        "performance.energy_throughput": {"value": 41234.5, "method": "BMS counter"},
        "performance.capacity_throughput": 130456.5,
        "performance.number_of_full_cycles": 860,
        "performance.negative_events": f"SENT-negative-event {tag}: minor collision, pack inspected",
        "performance.temperature_information": {
            "timeExtremeHighTemp": 12.5, "timeExtremeLowTemp": 30.5,
            "timeExtremeHighTempCharging": 1.5, "timeExtremeLowTempCharging": 0.5},
        "performance.remaining_power_capability": {"value": {"atSoC": 50, "powerCapabilityAt": 120000.5},
                                                   "method": "pulse test", "lower": 118000,
                                                   "upper": 122000},
        "performance.evolution_of_self_discharge": 12.5,
        "performance.state_of_charge": 55.5,
    }


def assess(session: Session, uid: str, actor: str = "Maker") -> None:
    """A `health-assessed` event as health.assess records one, with every Annex VII parameter."""
    values = [
        soh.capacity_soh(131.25, 150, spread_ah=0.5, when=WHEN, source="a" * 64),
        soh.soce(41500.5, 48000, when=WHEN, source="a" * 64),
        soh.resistance_increase(0.062, 0.05, when=WHEN, source="a" * 64),
        soh.power_capability(330, 250, 0.12, when=WHEN, source="a" * 64),
        soh.round_trip_efficiency(43000, 45500, when=WHEN, source="a" * 64),
        soh.self_discharge(131.25, 130.5, 30, when=WHEN, source="a" * 64),
    ]
    Registry(session).append(uid, "health-assessed", {
        "method": "measured", "test": "a" * 64, "tester": "arbin",
        "values": [v.as_dict() for v in values],
    }, actor=actor)


def populate(session: Session, uid: str, tag: str, *, chemistry: str = "LFP",
             actor: str = "Maker") -> None:
    """Every static attribute, an SOH assessment and a condition report."""
    service.create(session, uid, static_values(tag, chemistry), actor=actor)
    assess(session, uid, actor)
    service.report_condition(session, uid, condition_values(tag), actor=actor)


def walk(session: Session, uid: str, states: list[str], actor: str = "Maker") -> None:
    reg = Registry(session)
    for state in states:
        reg.change_status(uid, state, actor=actor)


def original(session: Session, chemistry: str = "LFP", tag: str = "o") -> str:
    uid = register(session, chemistry)
    populate(session, uid, tag, chemistry=chemistry)
    walk(session, uid, ["in_service"])
    return uid


def second_life(session: Session, sources: list[str], relation: str = "repurposed",
                operator: str = "Reuse", chemistry: str = "LFP", tag: str = "r") -> str:
    """A battery made from graded sources; it populates its own passport and goes into service."""
    spec = BatteryIn(kind="pack", chemistry=chemistry, rated_capacity_ah=140, rated_energy_wh=44000,
                     nominal_voltage_v=320, mass_kg=300.5, manufacturer=operator,
                     manufactured_on=date(2024, 5, 1))
    child = Registry(session).create_successor(
        SuccessorIn(sources=sources, relation=relation, battery=spec, actor=operator)
    ).uid
    populate(session, child, tag, chemistry=chemistry, actor=operator)
    walk(session, child, ["in_service"], actor=operator)
    return child


# a pack's parts and a cell's parts as the dismantling fractions that hold them (recycling stage)
_PACK_FRACTIONS = {"modules": "module_hardware", "housing": "housing", "bms": "bms",
                   "wiring": "wiring", "thermal": "thermal"}
_CELL_FRACTIONS = {"black_mass": ("cathode_active_material", "graphite", "carbon_black", "binder"),
                   "cu_foil": ("copper",), "al_foil": ("aluminium",),
                   "electrolyte": ("electrolyte",), "plastics": ("plastics",)}
FOOTPRINT = ("carbon.battery_carbon_footprint", "carbon.per_lifecycle_stage", "carbon.absolute")


def dismantle(session: Session, uid: str, actor: str = "Recycler") -> dict[str, Any]:
    """Take a registered pack apart into the fractions its chemistry's pack breakdown and cell
    make-up imply (recycling/data/composition.toml): weights that add up to its registered mass."""
    b = Registry(session).battery(uid)
    shares = composition.pack_breakdown(b.chemistry)
    rows = [{"fraction": f, "mass_kg": b.mass_kg * shares[part]}
            for part, f in _PACK_FRACTIONS.items() if shares[part] > 0]
    cells_kg = b.mass_kg * shares["cells"]
    parts = composition.cell_parts(b.chemistry)
    rows += [{"fraction": f, "mass_kg": cells_kg * sum(sum(parts[n].values()) for n in names)}
             for f, names in _CELL_FRACTIONS.items()]
    return dismantling.record(session, uid, dismantling.DismantlingIn(fractions=rows, actor=actor))


def recycle_in_batch(session: Session, uids: list[str], ref: str,
                     actor: str = "Recycler") -> dict[str, Any]:
    """A hydrometallurgical batch of dismantled batteries, closed by the recycler (who never held
    their custody in the registry)."""
    recycling.create(session, recycling.BatchIn(ref=ref, route="hydrometallurgical", batteries=uids,
                                                processed_on=date(2028, 6, 30), actor=actor))
    return recycling.close(session, ref, actor=actor)

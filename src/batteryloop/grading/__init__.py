"""Grading and second life: policies as data, inspection, grade and route, residual value,
second-life batteries and certificates.

The Python API (the CLI and the HTTP API call the same functions)::

    from batteryloop import grading

    grading.load_policy("ev-reuse")                       # or a path to a user policy file
    grading.evaluate(policy, grading.Facts.of(health=[hv], findings={"swelling": False}))
    grading.record_inspection(session, ref, grading.InspectionIn(...))
    grading.grade(session, ref, policy="stationary-storage", health=[hv], actor="Lab")
    grading.apply_route(session, ref, actor="Lab")
    grading.second_life(session, [a, b], "repurposed", BatteryIn(kind="pack"), actor="Lab")
    grading.residual_value(rated_energy_kwh=60, soh_lower=78, chemistry="NMC",
                           route="repurposed", application="stationary")
    grading.build_certificate(session, ref)  ->  dict;  grading.certificate_pdf(cert)  ->  bytes
    grading.issue_certificate(session, ref, actor="Lab", with_pdf=True)  # + `certificate-issued`
    grading.check_certificate(session, pdf_bytes_or_json)  ->  {"valid": ..., "issued": ...}
    grading.regroup.plan(session, refs, "14S4P"); grading.regroup.commit(session, refs, "14S4P")
"""

from batteryloop.grading.certificate import build as build_certificate
from batteryloop.grading.certificate import check as check_certificate
from batteryloop.grading.certificate import issue as issue_certificate
from batteryloop.grading.certificate import pdf as certificate_pdf
from batteryloop.grading.engine import Decision, Facts, evaluate
from batteryloop.grading.inspection import InspectionIn
from batteryloop.grading.inspection import listing as inspections
from batteryloop.grading.inspection import record as record_inspection
from batteryloop.grading.metrics import METRICS, ROUTES, VISUAL_FINDINGS, Measure
from batteryloop.grading.policy import Policy
from batteryloop.grading.policy import available as list_policies
from batteryloop.grading.policy import load as load_policy
from batteryloop.grading.policy import parse as parse_policy
from batteryloop.grading.service import (
    apply_route,
    evaluate_facts,
    facts_for,
    grade,
    latest_grade,
    record_health,
    second_life,
)
from batteryloop.grading.value import composition, load_prices, residual_value

__all__ = [
    "METRICS", "ROUTES", "VISUAL_FINDINGS", "Decision", "Facts", "InspectionIn", "Measure", "Policy",
    "apply_route", "build_certificate", "certificate_pdf", "check_certificate", "composition",
    "evaluate", "evaluate_facts", "facts_for", "grade", "inspections", "issue_certificate",
    "latest_grade", "list_policies", "load_policy",
    "load_prices", "parse_policy", "record_health", "record_inspection", "residual_value",
    "second_life",
]

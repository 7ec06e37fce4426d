"""Avoided emissions of recycling and reuse, and the 0.19 t / 24 % claim check."""

from __future__ import annotations

import pytest

from batteryloop.carbon import published
from batteryloop.carbon.avoided import check_claim, recycling_avoided, reuse_avoided
from batteryloop.carbon.footprint import EOL, footprint
from batteryloop.errors import ValidationFailed


def test_claim_of_019_t_at_24_percent_is_flagged() -> None:
    r = check_claim(0.19, 0.24)
    assert r["implied_baseline_kg_per_kwh"] == pytest.approx(190.0 / 0.24)  # 791.7
    studies = published.studies()
    assert r["published"]["low"] == min(s["low"] for s in studies.values())
    assert r["published"]["high"] == max(s["high"] for s in studies.values())
    codes = {f["code"] for f in r["flags"]}
    assert {"implied_baseline_above_published", "saving_exceeds_footprint", "saving_above_model"} <= codes
    assert r["verdict"] == "inconsistent"
    # at 24 %, a consistent saving would be 24 % of the published footprints
    assert r["consistent_saving_at_claimed_share_kg_per_kwh"] == pytest.approx(
        [0.24 * r["published"]["low"], 0.24 * r["published"]["high"]])


def test_claim_defaults_are_the_issue_claim() -> None:
    assert check_claim()["claim"] == {"saving_t_per_kwh": 0.19, "share": 0.24, "saving_kg_per_kwh": 190.0}


def test_claim_against_the_issue_ranges() -> None:
    r = check_claim(0.19, 0.24, footprint_range=(61.0, 106.0))
    msg = next(f["message"] for f in r["flags"] if f["code"] == "implied_baseline_above_published")
    assert "7.5 to 13.0 times" in msg  # 791.7 / 106 and 791.7 / 61


def test_a_modest_claim_passes() -> None:
    r = check_claim(0.02, 0.24)  # implies 83 kg CO2e/kWh: inside the published footprints
    assert r["verdict"] == "consistent"
    assert not {"implied_baseline_above_published", "saving_exceeds_footprint"} & {f["code"] for f in r["flags"]}


@pytest.mark.parametrize("args, kwargs", [
    ((0.19, 24.0), {}), ((-0.1, 0.24), {}), ((0.19, 0.0), {}),
    ((0.19, 0.24), {"footprint_range": (106.0, 61.0)}),
])
def test_bad_claims_are_refused(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValidationFailed):
        check_claim(*args, **kwargs)


@pytest.mark.parametrize("chemistry", ["NMC811", "LFP"])
def test_recycling_avoided_two_ways(chemistry: str) -> None:
    r = recycling_avoided(chemistry)
    sub, cff = r["substitution"], r["cff"]
    # the CFF gives (1 - A) of each credit and burden, with A >= 0.2: less than substitution
    assert 0 < cff["net_avoided"] < sub["net_avoided"]
    assert sub["net_avoided"] == pytest.approx(sub["gross_credit"] - sub["recycling_burden"])
    # the CFF figure is the footprint's end-of-life stage, sign reversed
    assert cff["net_avoided"] == pytest.approx(-footprint(chemistry).per_kwh_capacity[EOL])
    assert 0 < sub["share_of_cradle_to_gate"] < 1


def test_nickel_rich_cells_save_more_by_recycling() -> None:
    assert recycling_avoided("NMC811")["substitution"]["net_avoided"] > \
        recycling_avoided("LFP")["substitution"]["net_avoided"]


def test_reuse_avoided_by_hand() -> None:
    r = reuse_avoided("NMC811", grid="CN")
    # second life 0.8 x 2000 x (1 + 0.75)/2 = 1400 kWh/kWh; new LFP 6000 x (1 + 0.7)/2 = 5100
    assert r["second_life_kwh_per_kwh"] == pytest.approx(1400.0)
    assert r["displaced_battery_kwh_per_kwh"] == pytest.approx(5100.0)
    new = footprint("LFP", grid="CN").cradle_to_gate
    assert r["avoided_production"] == pytest.approx(new * 1400.0 / 5100.0)
    assert r["net_avoided"] == pytest.approx(r["avoided_production"] - r["repurposing_burden"])
    lower = reuse_avoided("NMC811", soh_at_reuse=0.6, grid="CN")
    assert lower["net_avoided"] < r["net_avoided"]


def test_bad_reuse_parameters() -> None:
    with pytest.raises(ValidationFailed):
        reuse_avoided("NMC811", soh_at_reuse=1.5)
    with pytest.raises(ValidationFailed):
        reuse_avoided("NMC811", flux_capacitor=1.0)

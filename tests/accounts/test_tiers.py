"""Access tiers come from data: organisation roles through tiers.toml, raised by explicit grants."""

from __future__ import annotations

import pytest

from batteryloop.accounts import tiers
from batteryloop.accounts.service import Accounts
from batteryloop.accounts.viewer import TIERS, Viewer
from batteryloop.errors import ValidationFailed
from batteryloop.registry.roles import roles as organisation_roles
from batteryloop.registry.schemas import BatteryIn, OrganisationIn
from batteryloop.registry.service import Registry


@pytest.mark.parametrize(
    ("roles", "tier"),
    [
        (["manufacturer"], "public"),
        (["vehicle_maker"], "public"),
        (["repair_shop"], "public"),
        (["collection_outlet"], "legitimate_interest"),
        (["repurposer"], "legitimate_interest"),
        (["remanufacturer"], "legitimate_interest"),
        (["dismantler"], "legitimate_interest"),
        (["recycler"], "legitimate_interest"),
        (["auditor"], "authority"),
        (["manufacturer", "recycler"], "legitimate_interest"),  # the highest of an org's roles
        (["recycler", "auditor"], "authority"),
        ([], "public"),
        (["no-such-role"], "public"),
    ],
)
def test_tier_from_organisation_roles(roles: list[str], tier: str) -> None:
    assert tiers.tier_for_roles(roles) == tier


def test_every_registry_role_has_a_tier_and_the_order_is_the_viewers() -> None:
    mapping = tiers.config()["organisation_roles"]
    assert set(organisation_roles()) == set(mapping)
    assert tuple(tiers.config()["order"]) == TIERS
    assert "2023/1542" in tiers.config()["source"]


def test_a_grant_raises_a_tier_and_never_lowers_it() -> None:
    assert tiers.user_tier(["manufacturer"], "authority") == "authority"
    assert tiers.user_tier(["auditor"], "public") == "authority"
    assert tiers.user_tier(["recycler"], None) == "legitimate_interest"
    with pytest.raises(ValidationFailed):
        tiers.check_tier("superuser")


def test_users_get_their_tier_from_their_organisation_and_grants(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        for name, roles in (("Maker", ["manufacturer"]), ("Recycler", ["recycler"]),
                            ("Notified Body", ["auditor"])):
            reg.add_organisation(OrganisationIn(name=name, roles=roles))
        acc = Accounts(s)
        maker = acc.add_user("m", "Maker")
        rec = acc.add_user("r", "Recycler")
        nb = acc.add_user("nb", "Notified Body")
        officer = acc.add_user("msa-officer", "Maker")
        assert [acc.tier_of(u) for u in (maker, rec, nb, officer)] == [
            "public", "legitimate_interest", "authority", "public"]
        acc.grant_tier("msa-officer", "authority", by="admin")
        assert acc.tier_of(officer) == "authority"
        assert acc.describe_user(officer)["tier_from_roles"] == "public"
        acc.grant_tier("msa-officer", None, by="admin")
        assert acc.tier_of(officer) == "public"


def test_an_organisation_reads_its_own_batteries_at_the_own_battery_tier(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        maker = reg.add_organisation(OrganisationIn(name="Maker", roles=["manufacturer"]))
        other = reg.add_organisation(OrganisationIn(name="Other", roles=["manufacturer"]))
        mine = reg.register(BatteryIn(kind="pack", manufacturer="Maker"))
        theirs = reg.register(BatteryIn(kind="pack", manufacturer="Other"))
        as_maker = Viewer(tier="public", organisation=maker.uid, user="m")
        assert tiers.viewer_for_battery(s, as_maker, mine).tier == tiers.own_battery_tier()
        assert tiers.viewer_for_battery(s, as_maker, theirs).tier == "public"
        assert tiers.viewer_for_battery(s, Viewer(), mine).tier == "public"
        high = Viewer(tier="authority", organisation=other.uid)
        assert tiers.viewer_for_battery(s, high, mine) is high

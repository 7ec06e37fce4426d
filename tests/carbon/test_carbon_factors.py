"""The factor set: shipped data with sources, user overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from batteryloop.carbon import factors
from batteryloop.errors import NotFound, ValidationFailed


def test_every_shipped_factor_has_a_source_and_flags() -> None:
    fs = factors.shipped()
    rows = [*fs.materials.values(), *fs.electricity.values(), *fs.transport.values()]
    assert rows and all(r.source.strip() for r in rows)
    assert all(f.source for f in fs.fuels.values())
    # estimates are never marked verified
    assert not any(r.estimate and r.verified for r in rows)


def test_grid_by_code_name_or_number() -> None:
    fs = factors.shipped()
    assert fs.grid("cn") is fs.grid("China") is fs.electricity["CN"]
    assert fs.grid("0.3").value == 0.3 and fs.grid(0.1).name == "custom"
    with pytest.raises(NotFound, match="Atlantis"):
        fs.grid("Atlantis")
    with pytest.raises(ValidationFailed):
        fs.grid(-0.2)


def test_natural_gas_heat_from_ipcc_defaults() -> None:
    # 56,100 kg CO2 + 29.8 x 1 kg CH4 + 273 x 0.1 kg N2O per TJ = 56,157.1 kg CO2e/TJ
    assert factors.shipped().heat_kg_co2e_per_mj() == pytest.approx(0.0561571)


def test_a_user_file_overrides_entries_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[material.copper]\nvirgin = 3.0\nper = "kg copper"\nsource = "supplier EPD 2024"\n'
                    'verified = true\n[electricity.PLANT]\nkg_per_kwh = 0.05\nsource = "PPA"\n')
    fs = factors.load(path)
    assert fs.material("copper").value == 3.0 and fs.material("copper").source == "supplier EPD 2024"
    assert fs.material("aluminium").value == factors.shipped().material("aluminium").value
    assert fs.grid("PLANT").value == 0.05
    assert [o["file"] for o in fs.origins] == [factors.SHIPPED, str(path)]


@pytest.mark.parametrize("text, where", [
    ('[material.copper]\nvirgin = -1.0\nper = "kg"\nsource = "x"\n', "[material.copper].virgin"),
    ('[material.copper]\nvirgin = 1.0\nper = "kg"\n', "[material.copper]"),
    ('[material.copper]\nvirgin = 1.0\nper = "kg"\nsource = "x"\nformula = "Xx9("\n', "[material.copper]"),
    ("[material.copper\n", "bad.toml"),
])
def test_bad_factor_files_name_the_entry(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValidationFailed) as exc:
        factors.load(path)
    assert where in str(exc.value)


def test_missing_file_and_unknown_material() -> None:
    with pytest.raises(NotFound):
        factors.load("/nonexistent/factors.toml")
    with pytest.raises(NotFound, match="unobtainium"):
        factors.shipped().material("unobtainium")

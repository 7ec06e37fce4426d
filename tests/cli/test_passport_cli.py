"""The passport from the command line: create, update, show by tier, export (checked), import,
QR, condition, waste and recycle; one-line errors and non-zero exits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batteryloop.cli import common
from batteryloop.cli import passport as passport_cli
from batteryloop.cli.main import app
from batteryloop.settings import get_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passport"))
from passport_support import (
    add_orgs,
    assess,
    condition_values,
    register,
    static_values,
    walk,
)


@pytest.fixture
def cli(db, monkeypatch, shared_dir):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BATTERYLOOP_DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BATTERYLOOP_SHARED", str(shared_dir))
    get_settings.cache_clear()
    monkeypatch.setattr(common, "_db", db)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        # `batteryloop passport ...`: the passport group itself, which builds much faster than
        # the whole command tree (test_the_group_is_registered checks the mounting)
        assert args[0] == "passport"
        result = runner.invoke(passport_cli.app, list(args[1:]))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    yield run
    get_settings.cache_clear()


def test_passport_commands(cli, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        add_orgs(s)
        uid = register(s, "LFP")
    attrs = tmp_path / "attrs.json"
    attrs.write_text(json.dumps(static_values("cli")))
    code, out, _ = cli("passport", "create", uid, "--file", str(attrs), "--actor", "Maker", "--json")
    assert code == 0 and json.loads(out)["version"] == 1
    assert cli("passport", "update", uid, "--set", "carbon.performance_class=A", "--actor", "Maker")[0] == 0
    values = tmp_path / "condition.json"
    values.write_text(json.dumps(condition_values("cli")))
    assert cli("passport", "condition", uid, "--file", str(values), "--actor", "Maker")[0] == 0
    with db.session() as s:
        walk(s, uid, ["in_service"])
        assess(s, uid)  # SOH parameters, as `batteryloop health assess` records them

    public = json.loads(cli("passport", "show", uid, "--json")[1])
    legit = json.loads(cli("passport", "show", uid, "--as", "legitimate_interest", "--json")[1])
    assert public["categories"]["carbon_footprint"]["carbon.performance_class"]["value"] == "A"
    assert "general.battery_status" not in public["categories"]["general"]
    assert legit["categories"]["general"]["general.battery_status"]["value"] == "original"
    code, out, _ = cli("passport", "show", uid)
    assert code == 0 and "withheld" in out

    exported = tmp_path / "bp.json"
    code, _, err = cli("passport", "export", uid, "--as", "legitimate_interest", "--check",
                       "--out", str(exported))
    assert code == 0, err
    doc = json.loads(exported.read_text())
    assert "resultOfTestReport" not in doc["Labels"] and doc["exportInfo"]["accessTier"] == "legitimate_interest"
    code, out, _ = cli("passport", "export", uid, "--format", "jsonld")
    assert code == 0 and json.loads(out)["@id"] == uid
    # an incomplete passport does not pass --check, and says why
    bare = None
    with db.session() as s:
        bare = register(s, "NMC")
    code, _, err = cli("passport", "export", bare, "--check")
    assert code == 1 and "carbonFootprintPerformanceClass" in err
    assert "batteryCarbonFootprint" not in err  # computed where the maker declared none

    code, out, _ = cli("passport", "import", str(exported), "--actor", "Maker", "--json")
    assert code == 0 and json.loads(out)["passport"] == uid

    svg, png = tmp_path / "qr.svg", tmp_path / "qr.png"
    code, out, _ = cli("passport", "qr", uid, "--out", str(svg), "--base-url", "https://bp.example.org")
    assert code == 0 and f"https://bp.example.org/passport/{uid}" in out and svg.read_bytes().startswith(b"<svg")
    assert cli("passport", "qr", uid, "--out", str(png))[0] == 0 and png.read_bytes()[:4] == b"\x89PNG"

    assert cli("passport", "waste", uid, "--operator", "Recycler", "--actor", "Maker")[0] == 0
    assert cli("passport", "recycle", uid, "--actor", "Recycler")[0] == 0
    code, _, err = cli("passport", "update", uid, "--set", "carbon.performance_class=B", "--actor", "Maker")
    assert code == 1 and "read-only" in err
    code, out, _ = cli("passport", "attributes", "--json")
    assert code == 0 and len(json.loads(out)) == 72
    code, _, err = cli("passport", "show", uid, "--as", "king")
    assert code == 1 and "unknown tier" in err


def test_the_group_is_registered() -> None:
    result = CliRunner().invoke(app, ["passport", "--help"])
    assert result.exit_code == 0 and "Battery Pass v1.2" in result.stdout

"""Accounts from the command line: users, tokens shown once, the audit log and its check."""

from __future__ import annotations

import json

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import text
from typer.testing import CliRunner

from batteryloop.accounts import hashing, service
from batteryloop.accounts.audit import record_read
from batteryloop.accounts.viewer import Viewer
from batteryloop.cli import common
from batteryloop.cli.main import app
from batteryloop.registry.schemas import BatteryIn
from batteryloop.registry.service import Registry
from batteryloop.settings import get_settings


@pytest.fixture
def cli(db, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """Runs `batteryloop ...` against the test database; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(hashing, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                          parallelism=1, type=Type.ID))
    monkeypatch.setattr(hashing, "_DUMMY", None)
    service.VERIFIED.clear()
    url = db.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("BATTERYLOOP_DATABASE_URL", url)
    monkeypatch.setenv("BATTERYLOOP_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    monkeypatch.setattr(common, "_db", db)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), input=stdin)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    yield run
    get_settings.cache_clear()


def test_users_tokens_and_grants(cli, db) -> None:  # type: ignore[no-untyped-def]
    assert cli("org", "add", "Green Loop", "--role", "recycler")[0] == 0
    assert cli("org", "add", "Maker", "--role", "manufacturer")[0] == 0
    code, out, _ = cli("user", "add", "Rita", "--org", "Green Loop", "--role", "writer",
                       "--password-stdin", "--json", stdin="recycler password 1\n")
    assert code == 0
    rita = json.loads(out)
    assert rita["name"] == "rita" and rita["tier"] == "legitimate_interest" and rita["has_password"]
    assert "recycler password 1" not in out
    code, out, _ = cli("user", "add", "officer", "--org", "Maker", "--json")
    assert code == 0 and json.loads(out)["tier"] == "public"
    assert cli("user", "grant", "officer", "--tier", "authority")[0] == 0
    users = {u["name"]: u for u in json.loads(cli("user", "list", "--json")[1])}
    assert users["officer"]["tier"] == "authority" and users["officer"]["granted_by"] == "cli"

    # the token is printed once, alone on stdout; the list never shows it
    code, out, err = cli("token", "create", "--user", "rita", "--expires", "30d",
                         "--scope", "write", "--label", "scanner")
    assert code == 0 and "shown only this once" in err
    token = out.strip()
    assert token.startswith("blt_") and len(out.splitlines()) == 1
    token_id = token.split("_")[1]
    listed = json.loads(cli("token", "list", "--user", "rita", "--json")[1])
    assert [t["id"] for t in listed] == [token_id] and listed[0]["state"] == "active"
    assert token.split("_", 2)[2] not in cli("token", "list")[1]
    with db.session() as s:
        assert service.Accounts(s).authenticate(token).viewer.user == "rita"

    code, out, _ = cli("token", "revoke", token_id, "--json")
    assert code == 0 and json.loads(out)["state"] == "revoked"
    with db.session() as s, pytest.raises(Exception, match="invalid"):
        service.Accounts(s).authenticate(token)

    # one-line errors, non-zero exits
    for args in (("user", "add", "x", "--org", "No Such Org"),
                 ("user", "add", "rita", "--org", "Maker"),
                 ("token", "create", "--user", "rita", "--tier", "authority"),
                 ("token", "create", "--user", "rita", "--expires", "forever"),
                 ("token", "revoke", "ffffffffffff"),
                 ("user", "grant", "rita")):
        code, _, err = cli(*args)
        assert code != 0 and err.startswith("error:"), args
    code, _, err = cli("user", "add", "weak", "--org", "Maker", "--password-stdin", stdin="short\n")
    assert code != 0 and "password" in err


def test_audit_lists_and_verifies(cli, db) -> None:  # type: ignore[no-untyped-def]
    assert cli("org", "add", "Maker", "--role", "manufacturer")[0] == 0
    with db.session() as s:
        battery = Registry(s).register(BatteryIn(kind="pack", manufacturer="Maker")).uid
    viewer = Viewer(tier="authority", organisation="urn:uuid:msa", user="officer")
    with db.session() as s:
        record_read(s, viewer, battery, ["test_reports"], f"/api/v1/passports/{battery}")
        record_read(s, viewer, "urn:uuid:other", ["state_of_health"], "/api/v1/passports/x")
    code, out, _ = cli("audit", "--json")
    assert code == 0 and json.loads(out)["total"] == 2
    code, out, _ = cli("audit", "--battery", battery, "--json")
    items = json.loads(out)["items"]
    assert [e["attributes"] for e in items] == [["test_reports"]] and items[0]["user"] == "officer"
    code, out, _ = cli("audit", "--verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True

    with db.engine.begin() as conn:  # an owner lifts the guard and edits the log
        if db.dialect == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET user_name = 'nobody' WHERE seq = 1"))
    code, out, _ = cli("audit", "--verify")
    assert code == 1 and "edited" in out and "entry 1" in out

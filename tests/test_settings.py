"""Settings: environment variables over the config file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from batteryloop.settings import Settings


def test_defaults_put_sqlite_in_the_data_dir(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for var in ("BATTERYLOOP_DATA_DIR", "BATTERYLOOP_DATABASE_URL", "BATTERYLOOP_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'var' / 'batteryloop.sqlite'}"


def test_config_file_then_environment(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "site.toml"
    cfg.write_text('[batteryloop]\nport = 9100\nholidays = ["2026-10-01"]\n'
                   'database_url = "postgresql://u@h/db"\n')
    monkeypatch.setenv("BATTERYLOOP_CONFIG", str(cfg))
    monkeypatch.delenv("BATTERYLOOP_PORT", raising=False)
    s = Settings()
    assert s.port == 9100 and s.holidays == ["2026-10-01"]
    assert s.resolved_database_url == "postgresql://u@h/db"
    monkeypatch.setenv("BATTERYLOOP_PORT", "9200")
    assert Settings().port == 9200


def test_missing_config_file_is_an_error(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BATTERYLOOP_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(FileNotFoundError, match="absent.toml"):
        Settings()

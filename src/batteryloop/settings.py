"""Settings from environment variables (``BATTERYLOOP_*``) and an optional TOML file.

The TOML file is found at ``BATTERYLOOP_CONFIG`` or ``./batteryloop.toml``; environment variables
win over it, so CI and containers can override a checked-in file.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def _config_file() -> Path | None:
    explicit = os.environ.get("BATTERYLOOP_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"BATTERYLOOP_CONFIG points to {path}, which is not a file")
        return path
    local = Path("batteryloop.toml")
    return local if local.is_file() else None


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the ``[batteryloop]`` table (or the top level) of the config file."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = _config_file()
        data: dict[str, Any] = {}
        if path is not None:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
            data = raw.get("batteryloop", raw)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Where the platform keeps its records and files, and how it behaves."""

    model_config = SettingsConfigDict(env_prefix="BATTERYLOOP_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Parquet files, keys, reports.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in data_dir."
    )
    shared: Path | None = Field(default=None, description="Folder of real test data (../shared).")
    host: str = "127.0.0.1"
    port: int = 8000
    # Working-day calendar for reporting deadlines: extra non-working dates (ISO), e.g. public
    # holidays; weekends are always off. A convention of this deployment, not a standard value.
    holidays: list[str] = Field(default_factory=list)
    max_upload_bytes: int = 512 * 1024 * 1024
    # Request hardening. Both are conventions of this deployment, not standard values: a JSON body
    # larger than max_body_bytes is refused (413) before it is read; each caller (API token, session
    # cookie or, anonymous, client address) may make `rate_limit` requests (``limits`` notation,
    # e.g. "1200/minute"), beyond which it gets 429 with Retry-After. "" switches the limit off.
    max_body_bytes: int = 1024 * 1024
    rate_limit: str = "1200/minute"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'batteryloop.sqlite').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

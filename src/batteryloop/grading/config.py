"""Where a certificate's QR code points: the platform's public address.

From ``BATTERYLOOP_PUBLIC_URL``, else ``public_url`` in the ``[batteryloop]`` table of the config
file (``BATTERYLOOP_CONFIG`` or ./batteryloop.toml), else the local server's address (the API uses
the address it was called at).
"""

from __future__ import annotations

import os
import tomllib

from batteryloop.settings import _config_file, get_settings


def configured_base_url() -> str | None:
    url = os.environ.get("BATTERYLOOP_PUBLIC_URL")
    if not url:
        path = _config_file()
        if path is not None:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
            url = raw.get("batteryloop", raw).get("public_url")
    return str(url).rstrip("/") if url else None


def public_base_url() -> str:
    configured = configured_base_url()
    if configured:
        return configured
    settings = get_settings()
    return f"http://{settings.host}:{settings.port}"


def record_url(uid: str, base_url: str | None = None) -> str:
    return f"{(base_url or public_base_url()).rstrip('/')}/batteries/{uid}"

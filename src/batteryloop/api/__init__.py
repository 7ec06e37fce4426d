"""Face: the HTTP API (/api/v1, OpenAPI). Parses, calls a service, formats; no domain logic."""

from batteryloop.api.app import create_app

__all__ = ["create_app"]

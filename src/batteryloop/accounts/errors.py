"""Authentication and authorisation failures: RFC 9457 problems that carry no data.

Their messages never say which part of a credential was wrong (user name, password, token id or
secret), nor anything about the resource asked for.
"""

from __future__ import annotations

from batteryloop.errors import BatteryloopError


class Unauthorized(BatteryloopError):
    """401: no valid credentials. ``error`` is the RFC 6750 code for WWW-Authenticate, if any."""

    status = 401
    title = "Unauthorized"

    def __init__(
        self, message: str = "authentication required", *, error: str | None = None
    ) -> None:
        super().__init__(message)
        self.error = error

    @property
    def challenge(self) -> str:
        value = 'Bearer realm="batteryloop"'
        if self.error:
            value += f', error="{self.error}"'
        return value


class Forbidden(BatteryloopError):
    """403: authenticated, but not allowed this."""

    status = 403
    title = "Forbidden"

    def __init__(self, message: str = "not allowed", *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


INVALID_TOKEN = "the access token is invalid, expired or revoked"
INVALID_LOGIN = "invalid user name or password"

"""argon2id hashes of passwords and API-token secrets (RFC 9106), via argon2-cffi.

Only PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) reach the database. The
parameters are argon2-cffi's RFC 9106 low-memory profile (t=3, m=64 MiB, p=4); a stored hash made
with other parameters is re-hashed on the next successful password sign-in.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
# Verified when the user or token does not exist, so both answers take the same time.
_DUMMY: str | None = None


def hash_secret(secret: str) -> str:
    return HASHER.hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    """True when ``secret`` matches the PHC string; a missing hash still costs one verification."""
    global _DUMMY
    if stored is None:
        if _DUMMY is None:
            _DUMMY = HASHER.hash("batteryloop: no such credential")
        stored = _DUMMY
        secret = secret + "\x00never"  # the dummy must never match
    try:
        return HASHER.verify(stored, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True

"""Ed25519 signatures by the acting organisation over what it states.

An organisation signs the statement (battery, type, actor, time, payload) before it knows where the
event will land in the chain; the chain then hashes the signature with everything else. A leaked
database therefore cannot forge an organisation's statement, and a rewritten chain shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batteryloop.errors import ValidationFailed
from batteryloop.registry import canonical


def statement(battery: str, event_type: str, actor: str | None, occurred_at: str, payload: Any) -> bytes:
    """The canonical bytes an organisation signs."""
    return canonical.dumps(
        {"actor": actor, "battery": battery, "occurred_at": occurred_at, "payload": payload, "type": event_type}
    )


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def save_private(key: Ed25519PrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationFailed(f"{path}: not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    return key.sign(message)


def is_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True

"""Tester-format readers; importing this package registers every reader in ``READERS``."""

from __future__ import annotations

# Import order is irrelevant: detection ranks by sniff confidence, not by registration order.
from batteryloop.cycling.readers import (  # noqa: F401
    arbin_csv,
    arbin_res,
    bdf,
    biologic_mpr,
    biologic_text,
    landt,
    maccor,
    neware_csv,
    neware_nda,
    novonix,
    pec,
)
from batteryloop.cycling.readers.registry import READERS, Reader, register

__all__ = ["READERS", "Reader", "register"]

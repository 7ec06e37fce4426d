"""Demo plant: organisations, packs with plausible histories (and, as stages land, their data)."""

from batteryloop.synth.plant import seed

__all__ = ["seed"]

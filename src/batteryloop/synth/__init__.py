"""The demo plant: organisations and packs with plausible histories (``plant``), the project's own
degradation model for tester data (``degradation``, or PyBaMM's curves: ``pybamm_curves``), and
the run of every stage's services over them (``pipeline``, what ``batteryloop demo`` does)."""

from batteryloop.synth.plant import seed

__all__ = ["seed"]

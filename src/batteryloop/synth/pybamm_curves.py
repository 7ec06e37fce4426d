"""Physically detailed check-up curves from PyBaMM, for ``batteryloop demo --pybamm``.

Optional: PyBaMM (https://pybamm.org, BSD-3-Clause) is not a dependency of batteryloop; install it
with ``pip install pybamm``. The demo's own model (``synth.degradation``) needs nothing and runs a
few hundred check-ups in seconds; PyBaMM solves the single-particle model with electrolyte (SPMe)
for each battery, about a second each, and gives the diffusion and electrolyte dynamics the cheap
model leaves out.

The same protocol (``data/degradation.toml [protocol]``) runs as a ``pybamm.Experiment`` on a
published parameter set per chemistry family: Chen et al. 2020 (LG M50, NMC811/graphite-SiOx) and
Prada et al. 2013 (A123 LFP). The battery's ageing enters the way the cheap model ages it: its
capacity by scaling the electrode area with the SOH, its resistance through a contact resistance
carrying the growth. A pack is ``series`` cells in series; its current is the cell's scaled by the
rated capacity over the parameter set's.

Not run in the project's tests unless PyBaMM is installed (the test skips otherwise).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.synth import degradation as dm

PARAMETER_SETS = {"NMC": "Chen2020", "LFP": "Prada2013"}


def available() -> bool:
    return importlib.util.find_spec("pybamm") is not None


def require() -> None:
    if not available():
        raise ValidationFailed(
            "PyBaMM is not installed: pip install pybamm (or leave out --pybamm: the demo's own "
            "degradation model needs nothing)", location="--pybamm")


def _experiment(pybamm: Any, p: dict[str, Any], v_min: float, v_max: float) -> Any:
    rest = f"Rest for {p['rest_minutes']:g} minutes"
    cycle = [f"Charge at {p['charge_c_rate']:g}C until {v_max:g} V",
             f"Hold at {v_max:g} V until C/{1 / p['cv_cutoff_c_rate']:g}", rest,
             f"Discharge at {p['discharge_c_rate']:.6g}C until {v_min:g} V", rest]
    fine = f"({p['pulse_sample_seconds']:g} second period)"
    first = (f"Rest for {p['arrival_rest_minutes']:g} minutes",
             f"Charge at {p['pulse_c_rate']:g}C for {p['pulse_seconds']:g} seconds {fine}",
             f"Rest for {p['pulse_rest_after_seconds']:g} seconds {fine}", *cycle)
    return pybamm.Experiment([first] + [tuple(cycle)] * (p["cycles"] - 1),
                             period=f"{p['sample_seconds']:g} seconds")


def checkup(cond: dm.Condition, rng: np.random.Generator, *, start_unix: float | None = None
            ) -> pl.DataFrame:
    """The check-up of ``dm.checkup``, solved by PyBaMM's SPMe (see the module docstring)."""
    require()
    import pybamm

    p = dm.config()["protocol"]
    params = pybamm.ParameterValues(PARAMETER_SETS[cond.chemistry.name])
    cell_ah = float(params["Nominal cell capacity [A.h]"])
    scale = cond.rated_ah / cell_ah
    params.update({"Electrode height [m]": params["Electrode height [m]"] * cond.soh})
    fresh = cond.chemistry.specific_resistance_ohm_ah / cond.rated_ah
    params.update({"Contact resistance [Ohm]": max(cond.r0_ohm - fresh, 0.0) * scale},
                  check_already_exists=False)
    v_min = max(cond.chemistry.min_voltage_v, float(params["Lower voltage cut-off [V]"]))
    v_max = min(cond.chemistry.max_voltage_v, float(params["Upper voltage cut-off [V]"]))
    model = pybamm.lithium_ion.SPMe(options={"contact resistance": "true"})
    sim = pybamm.Simulation(model, parameter_values=params,
                            experiment=_experiment(pybamm, p, v_min, v_max))
    solution = sim.solve(initial_soc=cond.arrival_soc)
    trace = dm.Trace(cond)
    for n, cyc in enumerate(solution.cycles):
        trace.cycle = n + 1
        for k, step in enumerate(cyc.steps):
            t = step["Time [s]"].entries
            current = -step["Current [A]"].entries * scale  # PyBaMM: discharge positive
            volts = step["Voltage [V]"].entries
            keep = slice(1, None) if trace.parts else slice(None)  # steps share their end points
            tau = t[keep] - t[0] + (1e-3 if not trace.parts else 0.0)
            kind = "rest" if np.allclose(current, 0.0) else (
                "charge" if float(np.mean(current)) > 0 else "discharge")
            if tau.size:
                trace.add(tau, current[keep], volts[keep], k + 1 if n == 0 else k + 4, kind)
    return dm.frame_of(trace, rng, p, start_unix)

"""Features of a pulse test: what the 21 turning-point voltages say about a cell.

A pulse test (PulseBat protocol, ``data/pulse_cells.toml``) brings the cell to a state of charge,
measured in per cent of the *rated* capacity, rests it, then applies five 5 s current pulses
(+0.5, -0.5, +1, -1, +1.5 C), each followed by a rest. U1 is the rest voltage before the first
pulse; for pulse k (k = 1..5) four turning points follow: ``on`` (the step at the start of the
pulse), ``end`` (end of the pulse), ``off`` (the step when the current stops) and ``rest`` (end of
the rest before the next pulse). The features, per pulse, with current I = c x Q_rated (c the
C-rate, signed: + charge):

* ``r_ohm_k`` = (U_on - U_before) / c: the instant step, i.e. ohmic resistance x rated capacity,
  in mOhm.Ah (capacity-normalised so that a 2.1 Ah and a 35 Ah cell are comparable);
* ``r_pol_k`` = (U_end - U_on) / c: the polarisation built up during the 5 s (charge transfer and
  diffusion), mOhm.Ah;
* ``r_off_k`` = (U_end - U_off) / c: the step at the end of the pulse, mOhm.Ah;
* ``shift_k`` = (U_rest - U_before) / c: what remains after the rest, i.e. the OCV moved by the
  pulse's charge plus unrelaxed polarisation, mV per C;
* ``ocv``: U1, the rest voltage at the arrival SOC (V). SOC is set by charging a share of the
  *rated* capacity, so a faded cell sits further up its OCV curve: the OCV at a given nominal SOC
  is the strongest capacity signal for the sloped chemistries (LMO, NMC);
* ``dvdq``: (U21 - U1) over the net charge of the five pulses, mV per % of rated capacity: the
  slope of the OCV curve at that SOC (a dV/dQ proxy, again steeper for a faded cell);
* ``asym_1``, ``asym_2``: charge minus discharge polarisation at 0.5 C and 1 C, mOhm.Ah (the
  charge/discharge asymmetry, a hysteresis proxy).

:class:`PulseTest` is the validated input of one test.
"""

from __future__ import annotations

import math
import numbers
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np

from batteryloop.errors import ValidationFailed

N_POINTS = 21
N_PULSES = 5


@cache
def config() -> dict[str, Any]:
    """The parsed ``data/pulse_cells.toml``."""
    return tomllib.loads((files("batteryloop.health") / "data" / "pulse_cells.toml").read_text())


def chemistries() -> dict[str, tuple[float, float]]:
    """Chemistry -> plausible voltage window (V)."""
    return {k: (float(v["window_v"][0]), float(v["window_v"][1]))
            for k, v in config()["chemistry"].items()}


def chemistry_family(name: str) -> str:
    """The chemistry family of a name as written in a registry or a data sheet ("NMC811",
    "ncm523", "LiFePO4"): the known family it starts with, after the aliases of
    ``pulse_cells.toml``; else the name upper-cased (unknown, and refused by the checks)."""
    text = str(name).strip().upper()
    aliases = {k.upper(): v for k, v in config().get("aliases", {}).items()}
    for alias in sorted(aliases, key=len, reverse=True):
        if text.startswith(alias):
            return aliases[alias]
    for family in sorted(config()["chemistry"], key=len, reverse=True):
        if text.startswith(family):
            return family
    return text


def cell_types() -> dict[str, dict[str, Any]]:
    """Known cell types ("NMC_21Ah", ...) and their protocol facts."""
    return config()["types"]


def default_currents(chemistry: str | None = None, rated_ah: float | None = None) -> tuple[float, ...]:
    """The pulse currents (C-rate, + charge) of a type, else the protocol's default."""
    tol = config()["domain"]["rated_tolerance"]
    for spec in cell_types().values():
        if (chemistry == spec["chemistry"] and rated_ah is not None
                and abs(rated_ah - spec["rated_ah"]) <= tol * spec["rated_ah"]):
            return tuple(float(c) for c in spec["currents_c"])
    return tuple(float(c) for c in config()["pulse"]["default_currents_c"])


FEATURES: list[str] = (
    ["ocv"]
    + [f"{name}_{k}" for k in range(1, N_PULSES + 1)
       for name in ("r_ohm", "r_pol", "r_off", "shift")]
    + ["dvdq", "asym_1", "asym_2"]
)
UNITS: dict[str, str] = {
    "ocv": "V", "dvdq": "mV/%", "asym_1": "mOhm.Ah", "asym_2": "mOhm.Ah",
    **{f"{n}_{k}": ("mV/C" if n == "shift" else "mOhm.Ah")
       for k in range(1, N_PULSES + 1) for n in ("r_ohm", "r_pol", "r_off", "shift")},
}


def check_voltages(voltages: np.ndarray, chemistry: str, *, location: str = "voltages",
                   row_offset: int = 0) -> None:
    """Raise :class:`ValidationFailed` for a (n, 21) array that cannot be a pulse test of
    ``chemistry``: wrong count, non-finite values, millivolts, outside the chemistry's window,
    or steps in the wrong direction (pulses out of order or current sign reversed). A row is
    named as ``row_offset + index`` (e.g. the line number in a file)."""
    u = np.asarray(voltages, dtype=float)
    if u.ndim == 1:
        u = u[None, :]
    if u.shape[1] != N_POINTS:
        raise ValidationFailed(
            f"a pulse test has {N_POINTS} turning-point voltages (U1..U21); got {u.shape[1]}"
            + (" (too few points)" if u.shape[1] < N_POINTS else ""), location=location)
    bad = ~np.isfinite(u)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValidationFailed(f"U{col + 1} is not a finite number ({u[row, col]!r})",
                               location=_where(location, row, u.shape[0], row_offset))
    windows = chemistries()
    if chemistry not in windows:
        raise ValidationFailed(f"unknown chemistry '{chemistry}' (known: "
                               f"{', '.join(sorted(windows))})", location="chemistry")
    low, high = windows[chemistry]
    if np.nanmedian(u) > 100:
        raise ValidationFailed(
            f"voltages look like millivolts (median {np.median(u):g}): give volts (divide by 1000)",
            location=location)
    milli = np.nanmedian(u, axis=1) > 100
    if milli.any():
        row = int(np.argmax(milli))
        raise ValidationFailed(
            f"voltages look like millivolts (median {np.median(u[row]):g}): give volts (divide "
            "by 1000)", location=_where(location, row, u.shape[0], row_offset))
    outside = (u < low) | (u > high)
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise ValidationFailed(
            f"U{col + 1} = {u[row, col]:g} V is outside the plausible {chemistry} window "
            f"{low:g}-{high:g} V (wrong units or wrong chemistry?)",
            location=_where(location, row, u.shape[0], row_offset))


def check_directions(voltages: np.ndarray, currents_c: np.ndarray, *,
                     location: str = "voltages", row_offset: int = 0) -> None:
    """The voltage must step up when a charge pulse starts and down when it stops (and the
    reverse for discharge); anything else means the points are out of order or mislabelled."""
    u = np.atleast_2d(np.asarray(voltages, dtype=float))
    c = np.broadcast_to(np.asarray(currents_c, dtype=float), (u.shape[0], N_PULSES))
    for k in range(N_PULSES):
        before, on, end, off = (u[:, 4 * k + i] for i in range(4))
        sign = np.sign(c[:, k])
        wrong = ((on - before) * sign <= 0) | ((off - end) * sign >= 0)
        if wrong.any():
            row = int(np.argmax(wrong))
            raise ValidationFailed(
                f"pulse {k + 1} ({c[row, k]:+g} C): U{4 * k + 2} and U{4 * k + 4} step the wrong "
                "way for its current; are the voltages in protocol order "
                "(U1, then start/end/stop/rest of each pulse)?",
                location=_where(location, row, u.shape[0], row_offset))


def _where(location: str, row: int, n: int, offset: int = 0) -> str:
    return f"{location} row {row + offset}" if n > 1 or offset else location


def feature_matrix(voltages: np.ndarray, currents_c: np.ndarray, width_s: float | np.ndarray = 5.0
                   ) -> np.ndarray:
    """Features (columns in :data:`FEATURES` order) of n tests: ``voltages`` (n, 21) in V,
    ``currents_c`` (n, 5) or (5,) C-rates. Vectorised, no validation (see :func:`check_voltages`)."""
    u = np.atleast_2d(np.asarray(voltages, dtype=float))
    c = np.broadcast_to(np.asarray(currents_c, dtype=float), (u.shape[0], N_PULSES))
    width = np.broadcast_to(np.asarray(width_s, dtype=float), (u.shape[0],))
    cols = [u[:, 0]]
    pol = []
    for k in range(N_PULSES):
        before, on, end, off, rest = (u[:, 4 * k + i] for i in range(5))
        ck = c[:, k]
        cols += [1000 * (on - before) / ck, 1000 * (end - on) / ck,
                 1000 * (end - off) / ck, 1000 * (rest - before) / ck]
        pol.append(1000 * (end - on) / ck)
    net_pct = c.sum(axis=1) * width / 36.0  # % of rated capacity moved by the five pulses
    with np.errstate(divide="ignore", invalid="ignore"):
        dvdq = np.where(np.abs(net_pct) > 1e-9, 1000 * (u[:, 20] - u[:, 0]) / net_pct, 0.0)
    cols += [dvdq, pol[0] - pol[1], pol[2] - pol[3]]
    return np.column_stack(cols)


def transfer_matrix(features: np.ndarray, soc: np.ndarray, chemistry: Sequence[str]) -> np.ndarray:
    """Type-agnostic features for a cell type never trained on: SOC as a fraction, the OCV as a
    position in its chemistry's voltage window, and the capacity-normalised resistances."""
    windows = chemistries()
    low = np.array([windows[c][0] for c in chemistry])
    span = np.array([windows[c][1] - windows[c][0] for c in chemistry])
    x = np.array(features, dtype=float, copy=True)
    x[:, 0] = (x[:, 0] - low) / span
    x[:, FEATURES.index("dvdq")] /= span
    return np.column_stack([np.asarray(soc, dtype=float) / 100, x])


@dataclass(frozen=True)
class PulseTest:
    """One pulse test as measured: the 21 voltages (V) at the turning points, in protocol order,
    the state of charge it arrived with (% of rated capacity), the rated capacity (Ah) and the
    chemistry. ``currents_c`` defaults to the matching known type's, else the protocol's."""

    voltages: tuple[float, ...]
    soc: float
    rated_ah: float
    chemistry: str
    currents_c: tuple[float, ...] | None = None
    pulse_width_s: float = 5.0
    cell_id: str | None = None
    _features: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        chem = str(self.chemistry).strip().upper()
        object.__setattr__(self, "chemistry", chem)
        try:
            volts = tuple(float(v) for v in self.voltages)
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(f"voltages must be numbers: {exc}", location="voltages") from None
        object.__setattr__(self, "voltages", volts)
        for name in ("soc", "rated_ah", "pulse_width_s"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or not math.isfinite(value)):
                raise ValidationFailed(f"{name} must be a finite number, got {value!r}",
                                       location=name)
        if self.rated_ah <= 0:
            raise ValidationFailed(f"rated capacity must be positive, got {self.rated_ah!r} Ah",
                                   location="rated_ah")
        if self.rated_ah > 2000:
            raise ValidationFailed(f"rated capacity {self.rated_ah:g} Ah is implausible for a cell "
                                   "(mAh given for Ah?)", location="rated_ah")
        if not 0 <= self.soc <= 100:
            raise ValidationFailed(f"SOC must be in per cent (0-100), got {self.soc!r}",
                                   location="soc")
        if 0 < self.soc < 1:
            raise ValidationFailed(f"SOC {self.soc!r} looks like a fraction: give per cent "
                                   "(5 for 5 %)", location="soc")
        if self.pulse_width_s <= 0:
            raise ValidationFailed("pulse width must be positive", location="pulse_width_s")
        check_voltages(np.array(volts), chem)
        currents = (default_currents(chem, self.rated_ah) if self.currents_c is None
                    else tuple(float(c) for c in self.currents_c))
        if len(currents) != N_PULSES or not all(math.isfinite(c) and c != 0 for c in currents):
            raise ValidationFailed(f"currents_c must be {N_PULSES} non-zero C-rates, got "
                                   f"{currents!r}", location="currents_c")
        object.__setattr__(self, "currents_c", currents)
        check_directions(np.array(volts), np.array(currents))
        object.__setattr__(self, "_features",
                           feature_matrix(np.array(volts), np.array(currents),
                                          self.pulse_width_s)[0])

    @property
    def features(self) -> dict[str, float]:
        return dict(zip(FEATURES, (float(v) for v in self._features), strict=True))

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PulseTest:
        """From a row of :func:`batteryloop.health.datasets.load_pulsebat`."""
        return cls(voltages=tuple(row[f"U{i}"] for i in range(1, N_POINTS + 1)),
                   soc=row["soc"], rated_ah=row["rated_ah"], chemistry=row["chemistry"],
                   pulse_width_s=row.get("pulse_width_s", 5.0), cell_id=row.get("cell_id"))

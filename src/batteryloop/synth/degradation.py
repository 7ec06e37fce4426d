"""The demo's own degradation model: what a retired battery's check-up on a tester looks like.

Two halves, both cheap enough for a few hundred batteries in a second or two:

* **Ageing** (``capacity_fraction``, ``resistance_factor``): capacity lost to calendar ageing
  (a power law in days), to cycling (a power law in equivalent full cycles) and, past a knee, an
  accelerated quadratic loss; resistance growing with both; Arrhenius in the mean temperature.
  The forms and their sources, and the coefficients (this demo's conventions), are in
  ``data/degradation.toml``.
* **Tester data** (``checkup``): the check-up a tester runs on an incoming battery (a DC pulse
  after a rest at its arrival SOC, then full CC-CV / CC cycles), as the canonical cycling
  table (BDF column names, SI units, charge-positive current). The terminal voltage is the
  chemistry's OCV(SOC) plus the ohmic drop ``I R0`` plus a first-order polarisation ``v_p`` (RC
  branch ``R1``, ``tau``); a CV phase's current decays exponentially to the cut-off with the time
  constant that tops the battery up to full. A pack is ``series`` cells in series: its voltage is
  ``series`` times a cell's, its current the pack current.

Every step is computed on whole arrays (its time grid at once, with analytic RC and SOC
solutions); the only loop is over the protocol's dozen steps, never over samples.
"""

from __future__ import annotations

import hashlib
import io
import math
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np
import polars as pl

from batteryloop.cycling.schema import COLUMNS, SCHEMA, CyclerMetadata
from batteryloop.errors import ValidationFailed

TESTER = "batteryloop-synth"
FILE_FORMAT = "bdf-csv"


@cache
def config() -> dict[str, Any]:
    return tomllib.loads((files("batteryloop.synth") / "data" / "degradation.toml").read_text())


# --------------------------------------------------------------------------------- chemistry
@dataclass(frozen=True)
class Chemistry:
    """One chemistry family of the model: voltage limits, OCV curve, resistance, ageing."""

    name: str
    nominal_voltage_v: float
    min_voltage_v: float
    max_voltage_v: float
    ocv_soc: np.ndarray = field(repr=False)
    ocv_v: np.ndarray = field(repr=False)
    specific_resistance_ohm_ah: float
    polarisation_share: float
    polarisation_tau_s: float
    k_cal: float
    z_cal: float
    k_cyc: float
    z_cyc: float
    efc_knee: float
    k_knee: float
    activation_energy_j_per_mol: float
    r_cal: float
    r_cyc: float
    r_knee: float

    def ocv(self, soc: np.ndarray | float) -> np.ndarray:
        """Open-circuit voltage of one cell at ``soc`` (held at the table's ends beyond them)."""
        return np.interp(soc, self.ocv_soc, self.ocv_v)


@cache
def chemistry(name: str) -> Chemistry:
    """The model's family for a registry chemistry name (LFP, NMC811, NCM, NCA...)."""
    key = (name or "").strip().upper()
    for family, row in config()["chemistry"].items():
        if key in row["aliases"]:
            fields = {k: row[k] for k in Chemistry.__dataclass_fields__
                      if k not in ("name", "ocv_soc", "ocv_v")}
            return Chemistry(name=family, ocv_soc=np.asarray(row["ocv_soc"], dtype=float),
                             ocv_v=np.asarray(row["ocv_v"], dtype=float), **fields)
    known = sorted(a for row in config()["chemistry"].values() for a in row["aliases"])
    raise ValidationFailed(f"the degradation model has no chemistry '{name}' (known: "
                           f"{', '.join(known)})", location="chemistry")


# --------------------------------------------------------------------------------- ageing
def arrhenius(chem: Chemistry, temperature_c: np.ndarray | float) -> np.ndarray:
    """Rate factor at a mean temperature against the reference (1 at 25 C)."""
    a = config()["ageing"]
    t = np.asarray(temperature_c, dtype=float) + 273.15
    t_ref = a["reference_temperature_c"] + 273.15
    return np.exp(chem.activation_energy_j_per_mol / a["gas_constant_j_per_mol_k"]
                  * (1.0 / t_ref - 1.0 / t))


def knee_loss(chem: Chemistry, efc: np.ndarray | float, efc_knee: np.ndarray | float | None = None
              ) -> np.ndarray:
    """Capacity fraction lost past the knee (zero before it)."""
    knee = chem.efc_knee if efc_knee is None else np.asarray(efc_knee, dtype=float)
    past = np.clip(np.asarray(efc, dtype=float) - knee, 0.0, None)
    return chem.k_knee * past**2


def capacity_fraction(chem: Chemistry, days: np.ndarray | float, efc: np.ndarray | float,
                      temperature_c: np.ndarray | float = 25.0,
                      efc_knee: np.ndarray | float | None = None) -> np.ndarray:
    """Remaining capacity over the fresh one after ``days`` and ``efc`` equivalent full cycles."""
    days = np.clip(np.asarray(days, dtype=float), 0.0, None)
    efc = np.clip(np.asarray(efc, dtype=float), 0.0, None)
    rate = arrhenius(chem, temperature_c)
    loss = (chem.k_cal * rate * days**chem.z_cal + chem.k_cyc * rate * efc**chem.z_cyc
            + knee_loss(chem, efc, efc_knee))
    return np.clip(1.0 - loss, 0.0, 1.0)


def resistance_factor(chem: Chemistry, days: np.ndarray | float, efc: np.ndarray | float,
                      temperature_c: np.ndarray | float = 25.0,
                      efc_knee: np.ndarray | float | None = None) -> np.ndarray:
    """DC resistance over the fresh one (1 = new)."""
    days = np.clip(np.asarray(days, dtype=float), 0.0, None)
    efc = np.clip(np.asarray(efc, dtype=float), 0.0, None)
    rate = arrhenius(chem, temperature_c)
    return (1.0 + chem.r_cal * rate * np.sqrt(days) + chem.r_cyc * efc
            + chem.r_knee * knee_loss(chem, efc, efc_knee))


def fade_trajectory(chem: Chemistry, efc: np.ndarray, *, efc_per_day: float,
                    temperature_c: float = 25.0, efc_knee: float | None = None) -> pl.DataFrame:
    """Capacity fraction per cycle for steady use: one row per ``efc`` value (cycle, capacity)."""
    efc = np.asarray(efc, dtype=float)
    q = capacity_fraction(chem, efc / efc_per_day, efc, temperature_c, efc_knee)
    return pl.DataFrame({"cycle": efc, "capacity": q})


# --------------------------------------------------------------------------------- a battery
@dataclass(frozen=True)
class Usage:
    """How a battery was used before its check-up."""

    days: float
    efc: float
    temperature_c: float
    efc_knee: float


@dataclass(frozen=True)
class Condition:
    """What the tester meets: true capacity and resistances of the battery (cell-equivalent
    resistances for the battery's own current, voltages per cell; ``series`` cells in series)."""

    chemistry: Chemistry
    rated_ah: float
    capacity_ah: float
    r0_ohm: float
    r1_ohm: float
    series: int
    arrival_soc: float
    usage: Usage | None = None

    @property
    def soh(self) -> float:
        return self.capacity_ah / self.rated_ah

    @property
    def dc_resistance_ohm(self) -> float:
        """The battery's ohmic resistance as its terminals see it."""
        return self.series * self.r0_ohm


def fresh_resistance_ohm(chem: Chemistry, rated_ah: float, series: int = 1) -> float:
    """DC resistance of a new battery of this rating (what its data sheet would state)."""
    return series * chem.specific_resistance_ohm_ah / rated_ah


def draw_usage(chem: Chemistry, days: float, rng: np.random.Generator) -> Usage:
    """A plausible use of an EV battery over ``days`` in service (``data/degradation.toml``)."""
    u = config()["usage"]
    per_day = rng.uniform(*u["efc_per_day"])
    temp = float(np.clip(rng.normal(*u["temperature_c"]), *u["temperature_limits_c"]))
    knee = chem.efc_knee * float(np.exp(rng.normal(0.0, u["knee_spread"])))
    return Usage(days=float(days), efc=float(days * per_day), temperature_c=temp, efc_knee=knee)


def condition(chem: Chemistry, rated_ah: float, usage: Usage, rng: np.random.Generator, *,
              series: int = 1) -> Condition:
    """The battery's state after ``usage``, with the manufacturing spread of a real population."""
    u = config()["usage"]
    fresh_q = rated_ah * (1.0 + rng.normal(0.0, u["capacity_spread"]))
    fresh_r = (chem.specific_resistance_ohm_ah / rated_ah
               * (1.0 + rng.normal(0.0, u["resistance_spread"])))
    use = (usage.days, usage.efc, usage.temperature_c, usage.efc_knee)
    q = fresh_q * float(capacity_fraction(chem, *use))
    r = fresh_r * float(resistance_factor(chem, *use))
    return Condition(chemistry=chem, rated_ah=rated_ah, capacity_ah=max(q, 0.05 * rated_ah),
                     r0_ohm=r, r1_ohm=r * chem.polarisation_share, series=series,
                     arrival_soc=float(rng.uniform(*u["arrival_soc"])), usage=usage)


def series_count(chem: Chemistry, nominal_voltage_v: float | None) -> int:
    """Cells in series behind a battery's nominal voltage (1 for a cell)."""
    if not nominal_voltage_v:
        return 1
    return max(1, round(nominal_voltage_v / chem.nominal_voltage_v))


# --------------------------------------------------------------------------------- the tester
@dataclass
class Trace:
    """The test as it is built: arrays per step, concatenated at the end."""

    cond: Condition
    t: float = 0.0
    soc: float = 0.0
    vp: float = 0.0  # polarisation voltage of one cell (positive while charging)
    cycle: int = 0
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    @property
    def q_as(self) -> float:
        return self.cond.capacity_ah * 3600.0

    def _grid(self, duration: float, dt: float) -> np.ndarray:
        n = max(1, math.ceil(duration / dt - 1e-9))
        return np.minimum(np.arange(1, n + 1) * dt, duration)

    def add(self, tau_grid: np.ndarray, current: np.ndarray, volts: np.ndarray, step_id: int,
             step_type: str) -> None:
        self.parts.append({
            "t": self.t + tau_grid, "i": current, "v": volts,
            "step_id": np.full(tau_grid.size, step_id), "type": np.full(tau_grid.size, step_type),
            "cycle": np.full(tau_grid.size, self.cycle),
        })
        self.t += float(tau_grid[-1])

    def _vp(self, current: float, tau_grid: np.ndarray) -> np.ndarray:
        tau = self.cond.chemistry.polarisation_tau_s
        steady = current * self.cond.r1_ohm
        return steady + (self.vp - steady) * np.exp(-tau_grid / tau)

    def rest(self, seconds: float, dt: float, step_id: int) -> None:
        g = self._grid(seconds, dt)
        vp = self._vp(0.0, g)
        v = self.cond.chemistry.ocv(self.soc) + vp
        self.add(g, np.zeros(g.size), v, step_id, "rest")
        self.vp = float(vp[-1])

    def constant_current(self, current: float, dt: float, step_id: int, *,
                         until_v: float | None = None, seconds: float | None = None,
                         until_soc: float | None = None) -> None:
        """CC at ``current`` (A, charge positive) until a voltage, a time or a SOC is reached."""
        chem = self.cond.chemistry
        if until_soc is not None:
            seconds = (until_soc - self.soc) * self.q_as / current
        if seconds is None:  # to a voltage: at most until the OCV table ends
            end = chem.ocv_soc[-1] if current > 0 else chem.ocv_soc[0]
            seconds = max((end - self.soc) * self.q_as / current, dt)
        g = self._grid(seconds, dt)
        soc = self.soc + current * g / self.q_as
        vp = self._vp(current, g)
        v = chem.ocv(soc) + current * self.cond.r0_ohm + vp
        if until_v is not None:
            crossed = (v >= until_v) if current > 0 else (v <= until_v)
            if crossed.any():  # stop at the limit: the crossing time, interpolated
                k = int(np.argmax(crossed))
                prev_t = float(g[k - 1]) if k else 0.0
                prev_v = float(v[k - 1]) if k else float(
                    chem.ocv(self.soc) + current * self.cond.r0_ohm + self.vp)
                frac = (until_v - prev_v) / (v[k] - prev_v) if v[k] != prev_v else 1.0
                t_end = prev_t + float(np.clip(frac, 0.0, 1.0)) * (float(g[k]) - prev_t)
                g = np.append(g[:k], max(t_end, prev_t + 1e-3))
                soc = self.soc + current * g / self.q_as
                vp = self._vp(current, g)
                v = chem.ocv(soc) + current * self.cond.r0_ohm + vp
                v[-1] = until_v
        self.add(g, np.full(g.size, current), v, step_id, "charge" if current > 0 else "discharge")
        self.soc, self.vp = float(soc[-1]), float(vp[-1])

    def constant_voltage(self, volts: float, current: float, cutoff: float, dt: float,
                         step_id: int) -> None:
        """CV at ``volts`` from ``current`` down to ``cutoff``: the exponential decay whose charge
        tops the battery up to full (SOC 1, or a little above when CC already reached it)."""
        top = max(1.0, self.soc + 0.002) - self.soc
        tau = top * self.q_as / (current - cutoff)
        seconds = tau * math.log(current / cutoff)
        g = self._grid(seconds, dt)
        i = current * np.exp(-g / tau)
        soc = self.soc + tau * (current - i) / self.q_as
        self.add(g, i, np.full(g.size, volts), step_id, "charge")
        self.soc = float(soc[-1])
        self.vp = float(i[-1] * self.cond.r1_ohm)


def checkup(cond: Condition, rng: np.random.Generator, *, start_unix: float | None = None
            ) -> pl.DataFrame:
    """A check-up of the battery on a tester, as the canonical cycling table (see the module
    docstring and ``[protocol]`` in ``data/degradation.toml``)."""
    p = config()["protocol"]
    chem = cond.chemistry
    rated = cond.rated_ah
    dt, dt_pulse = p["sample_seconds"], p["pulse_sample_seconds"]
    rest = p["rest_minutes"] * 60.0
    i_chg, i_dis = p["charge_c_rate"] * rated, -p["discharge_c_rate"] * rated
    i_cut, i_pulse = p["cv_cutoff_c_rate"] * rated, p["pulse_c_rate"] * rated
    tr = Trace(cond, soc=cond.arrival_soc, cycle=1)
    # at the arrival SOC: a rest, then the DC pulse (charging) logged every second
    tr.rest(p["arrival_rest_minutes"] * 60.0, dt, 1)
    tr.constant_current(i_pulse, dt_pulse, 2, seconds=p["pulse_seconds"])
    tr.rest(p["pulse_rest_after_seconds"], dt_pulse, 3)
    for n in range(1, p["cycles"] + 1):
        tr.cycle = n
        tr.constant_current(i_chg, dt, 4, until_v=chem.max_voltage_v)
        tr.constant_voltage(chem.max_voltage_v, i_chg, i_cut, dt, 5)
        tr.rest(rest, dt, 6)
        tr.constant_current(i_dis, dt, 7, until_v=chem.min_voltage_v)
        tr.rest(rest, dt, 8)
    return frame_of(tr, rng, p, start_unix)


def frame_of(tr: Trace, rng: np.random.Generator, p: dict[str, Any], start_unix: float | None
             ) -> pl.DataFrame:
    """The steps' arrays as one canonical table, with tester noise and the BDF counters (each
    row's increment is its current over the interval that ends at it: the tester's sample)."""
    cat = {k: np.concatenate([part[k] for part in tr.parts]) for k in tr.parts[0]}
    s = tr.cond.series
    n = cat["t"].size
    t = cat["t"]
    volts = s * cat["v"] + rng.normal(0.0, p["voltage_noise_v"] * math.sqrt(s), n)
    current = cat["i"] * (1.0 + rng.normal(0.0, p["current_noise_fraction"], n))
    cycle = cat["cycle"].astype(np.int64)
    step_count = np.repeat(np.arange(1, len(tr.parts) + 1), [part["t"].size for part in tr.parts])
    dq = current * np.diff(t, prepend=0.0) / 3600.0
    increments = {"charging_capacity_ah": np.clip(dq, 0.0, None),
                  "discharging_capacity_ah": np.clip(-dq, 0.0, None),
                  "charging_energy_wh": np.clip(dq * volts, 0.0, None),
                  "discharging_energy_wh": np.clip(-dq * volts, 0.0, None)}
    firsts = np.r_[0, np.flatnonzero(np.diff(cycle)) + 1]  # each cycle's first row
    lengths = np.diff(np.r_[firsts, n])
    columns: dict[str, Any] = {
        "test_time_second": t,
        "unix_time_second": (start_unix + t) if start_unix is not None else np.full(n, np.nan),
        "voltage_volt": volts, "current_ampere": current, "cycle_count": cycle,
        "step_id": cat["step_id"].astype(np.int64), "step_count": step_count,
        "step_type": cat["type"],
    }
    for name, inc in increments.items():
        total = np.cumsum(inc)
        columns[name] = total
        columns[f"cycle_{name}"] = total - np.repeat(np.r_[0.0, total][firsts], lengths)
    columns["ambient_temperature_celsius"] = (p["ambient_c"]
                                              + rng.normal(0.0, p["ambient_noise_c"], n))
    columns["temperature_t1_celsius"] = np.full(n, np.nan)
    df = pl.DataFrame({c: columns[c] for c in COLUMNS}).cast(dict(SCHEMA))  # type: ignore[arg-type]
    return df.with_columns(pl.col("unix_time_second", "temperature_t1_celsius").fill_nan(None))


# --------------------------------------------------------------------------------- as a file
def bdf_csv_bytes(df: pl.DataFrame) -> bytes:
    """The test as the BDF CSV a tester would export (what ``batteryloop ingest`` reads)."""
    from batteryloop.cycling.storage import bdf_frame

    buf = io.BytesIO()
    bdf_frame(df).write_csv(buf)
    return buf.getvalue()


def metadata(df: pl.DataFrame, name: str, *, cell_id: str | None = None,
             rated_ah: float | None = None, start_unix: float | None = None) -> CyclerMetadata:
    """Metadata of a generated test, keyed (as any tester file) on the SHA-256 of its BDF CSV."""
    digest = hashlib.sha256(bdf_csv_bytes(df)).hexdigest()
    meta = CyclerMetadata(source_path=name, sha256=digest, tester=TESTER, file_format=FILE_FORMAT,
                          cell_id=cell_id, start_time_unix=start_unix, nominal_capacity_ah=rated_ah)
    meta.note("generated by batteryloop.synth.degradation (the demo's degradation model)")
    return meta

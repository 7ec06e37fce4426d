"""Purification of the crude NMP-water condensate into battery-grade NMP.

Two vacuum columns, as battery plants run them:

1. dehydration: water (the light key; no azeotrope, so it can be stripped to ppm) goes overhead
   with a specified NMP content (the water cut); NMP with a trace of water leaves at the bottom;
2. rectification: NMP goes overhead as the product, heavies (binder residue, degradation
   products) are purged at the bottom with a specified share of the NMP.

The dehydration column is a shortcut design: the relative volatility of water over NMP from the
UNIFAC model at the top (distillate bubble point) and bottom (NMP boiling at the column
pressure), averaged geometrically; the minimum reflux by Underwood (saturated-liquid feed); the
minimum stages that the installed stages and reflux correspond to by the Gilliland correlation
(Molokanov's form); the bottom's water by Fenske. Duties: each condenser condenses (R + 1) D of
vapour; each reboiler closes its column's enthalpy balance. Every property comes from
``properties.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batteryloop.errors import ValidationFailed
from batteryloop.factory import properties as props
from batteryloop.factory.streams import SECONDS_PER_HOUR, Liquid, mw


@dataclass(frozen=True)
class Dehydration:
    pressure_Pa: float
    theoretical_stages: float
    reflux_ratio: float  # the least reflux the column runs at
    reflux_to_minimum: float  # and at least this multiple of the Underwood minimum
    water_cut_nmp_mass_fraction: float


@dataclass(frozen=True)
class Rectification:
    pressure_Pa: float
    reflux_ratio: float
    heavies_purge_fraction: float
    product_temperature_K: float


@dataclass(frozen=True)
class DistillationResult:
    product: Liquid
    water_cut: Liquid
    purge: Liquid
    reboiler_kW: np.ndarray  # both columns
    condenser_kW: np.ndarray  # both columns' condensers and the product cooler
    minimum_stages: np.ndarray
    relative_volatility: np.ndarray

    @property
    def purity_wt_pct(self) -> np.ndarray:
        return 100.0 * (1.0 - self.product.water_mass_fraction())

    @property
    def water_ppm(self) -> np.ndarray:
        return 1e6 * self.product.water_mass_fraction()


def minimum_reflux(alpha: np.ndarray, x_feed: np.ndarray, x_dist: np.ndarray) -> np.ndarray:
    """Underwood's minimum reflux of a binary with a saturated-liquid feed (light-key fractions)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x_dist / x_feed - alpha * (1 - x_dist) / (1 - x_feed)) / (alpha - 1)


def gilliland_minimum_stages(stages: float, reflux: np.ndarray,
                             reflux_min: np.ndarray) -> np.ndarray:
    """The Fenske minimum stages that ``stages`` at ``reflux`` achieve (Molokanov's Gilliland)."""
    X = np.clip((reflux - reflux_min) / (reflux + 1), 1e-9, 1.0)
    Y = 1 - np.exp((1 + 54.4 * X) / (11 + 117.2 * X) * (X - 1) / np.sqrt(X))
    return stages - Y * (stages + 1)


def _mole_fraction_water(w_water: float) -> float:
    a, b = w_water / mw("water"), (1 - w_water) / mw("nmp")
    return a / (a + b)


def dehydrate(feed: Liquid, col: Dehydration) -> tuple[Liquid, Liquid, np.ndarray, np.ndarray,
                                                        np.ndarray, np.ndarray]:
    """Water cut (distillate), dewatered NMP (bottoms), reboiler and condenser kW, Nmin, alpha."""
    P = col.pressure_Pa
    xd_w = _mole_fraction_water(1 - col.water_cut_nmp_mass_fraction)  # water fraction of distillate
    T_top = props.bubble_temperature(P, np.full_like(feed.nmp, xd_w))
    T_bot = props.bubble_temperature(P, np.zeros_like(feed.nmp))
    alpha = np.sqrt(props.relative_volatility(T_top, xd_w) * props.relative_volatility(T_bot, 0.0))
    x_feed = feed.x_water()
    has_feed = feed.total > 0
    r_min = np.where(has_feed, minimum_reflux(alpha, np.clip(x_feed, 1e-12, 1 - 1e-12), xd_w), 0.0)
    r_min = np.maximum(r_min, 0.0)
    reflux = np.maximum(col.reflux_ratio, col.reflux_to_minimum * r_min)
    n_min = gilliland_minimum_stages(col.theoretical_stages, reflux, r_min)
    if np.any(n_min < 1):
        raise ValidationFailed(f"{col.theoretical_stages} theoretical stages at "
                               f"{col.reflux_to_minimum} x minimum reflux are fewer than one "
                               "minimum stage",
                               location="distillation.dehydration.theoretical_stages")
    # Fenske: (xD_w/xD_n) / (xB_w/xB_n) = alpha^Nmin
    k = (1 - xd_w) / xd_w  # NMP per water in the distillate
    r_b = (xd_w / (1 - xd_w)) / alpha ** n_min  # water per NMP in the bottoms
    b_n = np.clip((feed.nmp - k * feed.water) / (1 - k * r_b), 0.0, feed.nmp)
    b_w = np.minimum(r_b * b_n, feed.water)
    d_w = feed.water - b_w
    d_n = feed.nmp - b_n
    distillate = Liquid(d_n, d_w, T_top)
    bottoms = Liquid(b_n, b_w, props.bubble_temperature(P, _safe_x(b_n, b_w)))
    vapour = (reflux + 1) * distillate.total
    q_cond = vapour * _latent(T_top, xd_w) / SECONDS_PER_HOUR
    q_reb = q_cond + distillate.enthalpy_kW() + bottoms.enthalpy_kW() - feed.enthalpy_kW()
    return distillate, bottoms, q_reb, q_cond, n_min, alpha


def _safe_x(nmp: np.ndarray, water: np.ndarray) -> np.ndarray:
    t = nmp + water
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(t > 0, water / np.where(t > 0, t, 1.0), 0.0)


def _latent(T: np.ndarray, x_water: np.ndarray | float) -> np.ndarray:
    """J/mol to condense a vapour of the liquid's composition into that liquid at T."""
    xw = np.broadcast_to(np.asarray(x_water, dtype=float), np.shape(T))
    return ((1 - xw) * props.hvap(props.NMP, T) + xw * props.hvap(props.WATER, T)
            - props.h_excess(T, xw))


def rectify(feed: Liquid, col: Rectification) -> tuple[Liquid, Liquid, np.ndarray, np.ndarray]:
    """Product (cooled), purge, reboiler kW, condenser + product cooler kW."""
    P = col.pressure_Pa
    purge_n = col.heavies_purge_fraction * feed.nmp
    d_n, d_w = feed.nmp - purge_n, feed.water  # the trace water is lighter: it goes overhead
    x_d = _safe_x(d_n, d_w)
    T_top = props.bubble_temperature(P, x_d)
    top = Liquid(d_n, d_w, T_top)
    purge = Liquid(purge_n, np.zeros_like(purge_n), props.bubble_temperature(P, np.zeros_like(d_n)))
    q_cond = (col.reflux_ratio + 1) * top.total * _latent(T_top, x_d) / SECONDS_PER_HOUR
    q_reb = q_cond + top.enthalpy_kW() + purge.enthalpy_kW() - feed.enthalpy_kW()
    product = Liquid(d_n, d_w, np.full_like(d_n, col.product_temperature_K))
    q_cooler = top.enthalpy_kW() - product.enthalpy_kW()
    return product, purge, q_reb, q_cond + q_cooler


def purify(crude: Liquid, dehydration: Dehydration,
           rectification: Rectification) -> DistillationResult:
    """Both columns in series."""
    water_cut, dry, q_reb1, q_cond1, n_min, alpha = dehydrate(crude, dehydration)
    product, purge, q_reb2, q_cond2 = rectify(dry, rectification)
    return DistillationResult(product, water_cut, purge, q_reb1 + q_reb2, q_cond1 + q_cond2,
                              n_min, alpha)

"""The unit model as the alarms' soft sensor: expected outlet values from measured inputs.

``model_expected(params)`` wraps :func:`batteryloop.factory.unit.expected_outlet` as an
``alarms.Expected``: a wide frame of smoothed measurements (``t`` + one column per tag) in, the
clean unit's expected ``<stage>.outlet.temp``, ``cond.outlet.nmp`` and ``stack.nmp`` out, one row
per input row. Rows where an input is missing, or where the inputs are not a state the model can
take (a coolant not colder than the gas it cools), get no expectation (null) rather than an error,
so a gap in one instrument silences the deviation alarms that need it and nothing else.
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl

from batteryloop.errors import ValidationFailed
from batteryloop.factory import unit
from batteryloop.factory.alarms import Expected
from batteryloop.factory.params import LineParams, load_line

log = logging.getLogger(__name__)


def inputs(params: LineParams) -> tuple[str, ...]:
    """Tags the soft sensor reads: the model's inputs, the heat-recovery outlet, stage outlets."""
    return unit.required_tags(params) + ("hx.outlet.temp",) + tuple(
        f"{s.name}.outlet.temp" for s in params.condensers)


def outputs(params: LineParams) -> tuple[str, ...]:
    return tuple(f"{s.name}.outlet.temp" for s in params.condensers) + (
        "cond.outlet.nmp", "stack.nmp")


def _usable(wide: pl.DataFrame, params: LineParams) -> pl.Series:
    """Rows with every input present and finite, each coolant colder than the gas it meets."""
    needed = inputs(params)
    if any(t not in wide.columns for t in needed):
        return pl.Series([False] * wide.height)
    ok = pl.all_horizontal([pl.col(t).is_not_null() & pl.col(t).is_finite() for t in needed])
    gas_in = "hx.outlet.temp"
    for s in params.condensers:
        ok = ok & (pl.col(f"{s.name}.coolant.temp") < pl.col(gas_in))
        gas_in = f"{s.name}.outlet.temp"
    ok = ok & (pl.col("hx.outlet.temp") < pl.col("oven.exhaust.temp"))
    return wide.select(ok.fill_null(False)).to_series()


def model_expected(params: LineParams | None = None) -> Expected:
    params = params or load_line()
    names = outputs(params)

    def expected(wide: pl.DataFrame) -> pl.DataFrame:
        empty = {n: np.full(wide.height, np.nan) for n in names}
        usable = _usable(wide, params)
        rows = np.flatnonzero(usable.to_numpy())
        if rows.size:
            conditions = {t: wide[t].to_numpy()[rows].astype(float) for t in inputs(params)}
            try:
                got = unit.expected_outlet(params, conditions)
            except ValidationFailed as exc:  # a state outside the model: no expectation
                log.warning("soft sensor skipped %d rows: %s", rows.size, exc)
                got = {}
            for n in names:
                if n in got:
                    empty[n][rows] = np.broadcast_to(np.asarray(got[n], dtype=float), rows.shape)
        return pl.DataFrame(empty).fill_nan(None)

    return expected

"""Running a chain of polars steps as one query.

Each eager polars call has a fixed cost (planning, dispatch to the thread pool) that dominates on
the small frames of a short test file. Building the steps on a LazyFrame and collecting once pays
it once. The only optimiser passes are the expression simplification an eager call does and
common-subexpression elimination (an expression used twice is computed once, with the same
result), so the arithmetic is exactly that of the step-by-step version.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

_EAGER_LIKE = pl.QueryOptFlags.none(simplify_expression=True, comm_subexpr_elim=True)


def collect(lf: pl.LazyFrame) -> pl.DataFrame:
    """Run ``lf`` in memory, as eager calls would have run its steps."""
    return lf.collect(engine="in-memory", optimizations=_EAGER_LIKE)


def collect_with(lf: pl.LazyFrame, aggregates: Sequence[pl.Expr]) -> tuple[pl.DataFrame, dict]:
    """``lf`` and one row of ``aggregates`` over it, from one call (``lf`` is computed once)."""
    lf = lf.cache()
    df, agg = pl.collect_all([lf, lf.select(aggregates)], engine="in-memory",
                             optimizations=_EAGER_LIKE)
    return df, agg.row(0, named=True)

"""A small matrix LCA engine: processes -> sparse technosphere A and biosphere B -> scores by stage.

Each process makes one unit of its own product, consumes other products (``inputs``; a negative
amount is an avoided product, i.e. a credit) and emits ``direct`` kg CO2e per unit. With A square
(A[j, j] = 1, A[i, j] = -input of i per unit of j) and B the 1 x n row of direct emissions:

    scaling s = A^-1 f          (how much of each process the demand f needs)
    score     = B s
    unit multipliers m = A^-T B^T   (cumulative kg CO2e per unit of each product)

Processes with a ``stage`` are foreground (the battery's own steps); the rest are background
(electricity, fuels, materials). A foreground process's contribution is its direct emission plus
its background inputs at their cumulative multipliers; stages add to the total exactly, because
background processes may not consume foreground ones (checked). Sparse LU (SuperLU via
``scipy.sparse.linalg.splu``) solves both systems from one factorisation; the column ordering is
minimum degree on A^T + A, measured 3x faster than SuperLU's default COLAMD on database-sized
systems (``benchmarks/lca.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from batteryloop.errors import ValidationFailed

ORDERING = "MMD_AT_PLUS_A"


@dataclass
class Process:
    key: str
    unit: str
    direct: float = 0.0
    inputs: dict[str, float] = field(default_factory=dict)
    stage: str | None = None
    label: str | None = None
    estimate: bool = False


@dataclass(frozen=True)
class Contribution:
    stage: str
    process: str
    source: str  # the background product or "direct"
    kg_co2e: float


@dataclass(frozen=True)
class Result:
    total: float
    by_stage: dict[str, float]
    contributions: list[Contribution]
    scaling: dict[str, float]
    direct_by_process: dict[str, float]
    estimate_share: float
    estimate_processes: list[str]

    def top(self, n: int = 10) -> list[Contribution]:
        return sorted(self.contributions, key=lambda c: -abs(c.kg_co2e))[:n]


class ProcessGraph:
    """Processes by key; build with :meth:`add`, then :meth:`solve` a demand."""

    def __init__(self) -> None:
        self.processes: dict[str, Process] = {}

    def add(self, key: str, *, unit: str, direct: float = 0.0, inputs: Mapping[str, float] | None = None,
            stage: str | None = None, label: str | None = None, estimate: bool = False) -> Process:
        if key in self.processes:
            raise ValidationFailed(f"process '{key}' is defined twice", location="process graph")
        if not math.isfinite(direct):
            raise ValidationFailed(f"direct emission of '{key}' is not finite", location="process graph")
        clean: dict[str, float] = {}
        for k, v in (inputs or {}).items():
            if not math.isfinite(v):
                raise ValidationFailed(f"input '{k}' of '{key}' is not finite", location="process graph")
            if v != 0.0:
                clean[k] = clean.get(k, 0.0) + float(v)
        proc = Process(key, unit, float(direct), clean, stage, label, estimate)
        self.processes[key] = proc
        return proc

    def has(self, key: str) -> bool:
        return key in self.processes

    def add_input(self, process: str, product: str, amount: float) -> None:
        proc = self.processes[process]
        proc.inputs[product] = proc.inputs.get(product, 0.0) + amount

    # -- matrices -------------------------------------------------------------------------------
    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.processes)}

    def _check(self, index: Mapping[str, int]) -> None:
        for proc in self.processes.values():
            for product in proc.inputs:
                if product not in index:
                    raise ValidationFailed(f"process '{proc.key}' consumes '{product}', which no "
                                           "process makes", location="process graph")
                if proc.stage is None and self.processes[product].stage is not None:
                    raise ValidationFailed(
                        f"background process '{proc.key}' consumes foreground '{product}'; stage "
                        "contributions would not add up", location="process graph")

    def matrices(self) -> tuple[sparse.csc_matrix, sparse.csr_matrix, dict[str, int]]:
        """A (n x n, CSC) and B (1 x n, CSR) as scipy.sparse, with the process index."""
        index = self.index()
        self._check(index)
        n = len(index)
        rows: list[int] = list(range(n))
        cols: list[int] = list(range(n))
        vals: list[float] = [1.0] * n
        for proc in self.processes.values():
            j = index[proc.key]
            for product, amount in proc.inputs.items():
                rows.append(index[product])
                cols.append(j)
                vals.append(-amount)
        a = sparse.csc_matrix((np.asarray(vals), (np.asarray(rows), np.asarray(cols))), shape=(n, n))
        direct = np.fromiter((p.direct for p in self.processes.values()), dtype=float, count=n)
        b = sparse.csr_matrix(direct.reshape(1, n))
        return a, b, index

    # -- solving --------------------------------------------------------------------------------
    def solve(self, demand: Mapping[str, float]) -> Result:
        a, b, index = self.matrices()
        n = len(index)
        f = np.zeros(n)
        for key, amount in demand.items():
            if key not in index:
                raise ValidationFailed(f"demand names '{key}', which no process makes",
                                       location="demand")
            f[index[key]] += amount
        try:
            lu = splu(a, permc_spec=ORDERING)
        except RuntimeError as exc:  # singular: a loop that makes no net product
            raise ValidationFailed(f"the process graph cannot be solved ({exc})",
                                   location="process graph") from None
        s = lu.solve(f)
        direct = b.toarray().ravel()
        m = lu.solve(direct, trans="T")  # cumulative kg CO2e per unit of each product
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(m))):
            raise ValidationFailed("the process graph gives no finite solution", location="process graph")
        keys = list(index)
        contributions: list[Contribution] = []
        by_stage: dict[str, float] = {}
        for proc in self.processes.values():
            if proc.stage is None:
                continue
            sj = s[index[proc.key]]
            if sj == 0.0:
                continue
            parts = [("direct", sj * proc.direct)] if proc.direct else []
            for product, amount in proc.inputs.items():
                if self.processes[product].stage is None:
                    parts.append((product, sj * amount * m[index[product]]))
            for src, value in parts:
                contributions.append(Contribution(proc.stage, proc.key, src, float(value)))
                by_stage[proc.stage] = by_stage.get(proc.stage, 0.0) + float(value)
        for key, amount in demand.items():  # background demanded directly: no stage of its own
            if self.processes[key].stage is None and amount:
                value = float(amount * m[index[key]])
                contributions.append(Contribution("unstaged", key, key, value))
                by_stage["unstaged"] = by_stage.get("unstaged", 0.0) + value
        total = float(direct @ s)
        emitted = direct * s
        flagged = [k for k in keys if self.processes[k].estimate and emitted[index[k]] != 0.0]
        gross = float(np.abs(emitted).sum())
        share = float(sum(abs(emitted[index[k]]) for k in flagged) / gross) if gross else 0.0
        return Result(
            total=total, by_stage=by_stage, contributions=contributions,
            scaling={k: float(s[index[k]]) for k in keys},
            direct_by_process={k: float(emitted[index[k]]) for k in keys if emitted[index[k]] != 0.0},
            estimate_share=share, estimate_processes=flagged,
        )


def multipliers(graph: ProcessGraph, products: Iterable[str]) -> dict[str, float]:
    """Cumulative kg CO2e per unit of the named products (one transposed solve)."""
    a, b, index = graph.matrices()
    m = splu(a, permc_spec=ORDERING).solve(b.toarray().ravel(), trans="T")
    return {p: float(m[index[p]]) for p in products}


def describe(result: Result, labels: Mapping[str, str] | None = None, n: int = 12) -> list[dict[str, Any]]:
    """The largest contributions as plain rows (for reports)."""
    labels = labels or {}
    return [{"stage": c.stage, "process": c.process, "source": labels.get(c.source, c.source),
             "kg_co2e": c.kg_co2e} for c in result.top(n)]

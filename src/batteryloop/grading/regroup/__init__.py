"""Regrouping second-life cells: consistency clustering and sSpP pack assembly.

    from batteryloop.grading import regroup

    cells = regroup.pulsebat_cells(shared, "LMO_10Ah")         # capacity, dcir, ocv, pulse_*
    labels = regroup.cluster(cells, method="kmeans", n_groups=6, min_size=56)
    regroup.score(cells, labels)                               # ranges, std, DCIR spread, DB index
    regroup.compare(cells, target_range=0.25)                  # k-means / GMM / binning side by side

    a = regroup.assemble(capacities, resistances, series=14, parallel=4)
    a.cells            # (packs, S, P) cell indices;  a.leftover: the cells in no pack
    a.packs()          # per pack: usable capacity, upper bound, gap %, resistance spread
    a.summary()

    regroup.deepsort_study(shared)   # do groups keep cells that age alike together?

Over the registry (numbers from each battery's ledger, results back into it):

    regroup.plan(session, refs, "14S4P")                     # what would be built; writes nothing
    regroup.commit(session, refs, "14S4P", actor="Lab")      # new packs, lineage, `regrouped`
    regroup.cluster_batteries(session, refs, method="gmm", target_range=0.3)
"""

from batteryloop.grading.regroup.assembly import (
    Assignment,
    assemble,
    evaluate,
    pack_upper_bound,
    regroup_packs,
)
from batteryloop.grading.regroup.consistency import (
    METHODS,
    cluster,
    compare,
    feature_matrix,
    score,
)
from batteryloop.grading.regroup.features import (
    dcir_from_pulses,
    deepsort_cells,
    deepsort_outcomes,
    deepsort_trajectories,
    pulsebat_cells,
)
from batteryloop.grading.regroup.service import Clustering, Layout, commit, plan
from batteryloop.grading.regroup.service import cluster as cluster_batteries
from batteryloop.grading.regroup.validation import deepsort_study, outcome_spread

__all__ = [
    "METHODS", "Assignment", "Clustering", "Layout", "assemble", "cluster", "cluster_batteries",
    "commit", "compare", "dcir_from_pulses", "deepsort_cells", "deepsort_outcomes", "deepsort_study",
    "deepsort_trajectories", "evaluate", "feature_matrix", "outcome_spread", "pack_upper_bound",
    "plan", "pulsebat_cells", "regroup_packs", "score",
]

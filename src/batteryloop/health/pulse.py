"""Rapid SOH from a pulse test: the public face of :mod:`pulse_features` (input and features) and
:mod:`pulse_model` (training, scoring with whole cells held out, intervals, out-of-domain flags).

    from batteryloop.health import pulse
    model, card = pulse.train(shared, root=models_dir)      # trains, scores, saves with its card
    est = pulse.predict(model, pulse.PulseTest(voltages=(...21 V...), soc=30, rated_ah=21,
                                               chemistry="NMC"))
    est.value, est.lower, est.upper, est.in_domain, est.reasons
"""

from __future__ import annotations

from batteryloop.health.datasets import load_pulsebat
from batteryloop.health.pulse_features import FEATURES, PulseTest, feature_matrix
from batteryloop.health.pulse_model import (
    DEFAULT_METHOD,
    METHODS,
    NAME,
    NOMINAL_COVERAGE,
    PUBLISHED,
    PulseData,
    PulseSohModel,
    SohEstimate,
    cell_folds,
    evaluate,
    evaluate_ood,
    fit,
    load,
    predict,
    predict_frame,
    train,
)

__all__ = [
    "DEFAULT_METHOD", "FEATURES", "METHODS", "NAME", "NOMINAL_COVERAGE", "PUBLISHED", "PulseData",
    "PulseSohModel", "PulseTest", "SohEstimate", "cell_folds", "evaluate", "evaluate_ood",
    "feature_matrix", "fit", "load", "load_pulsebat", "predict", "predict_frame", "train",
]

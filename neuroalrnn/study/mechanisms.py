"""Mechanism extraction as scorers: each fitted model's mechanism, measured on its held-out fold.

A mechanism scorer runs one function of :mod:`neuroalrnn.analysis.mechanisms` on the fitted
model and the held-out trials and returns its scalar summaries, so ``compare`` stores them as
variables ``"<mechanism>.<summary>"`` with dims (model, fold, seed): one value per fitted model,
from which :func:`neuroalrnn.study.summary.summarize_study` counts the fraction of seeds (and
folds) that show each mechanism.
"""

from __future__ import annotations

import numpy as np

from neuroalrnn.analysis import mechanisms as mech

# per task: (mechanism name, analysis function, its summaries kept, the flag saying it is shown)
MECHANISMS = {
    "addition": [("gating", mech.marker_gating, ("max_selectivity", "n_gates", "switches_at_markers", "gating"),
                  "gating")],
    "stimulus_selection": [("attractors", mech.context_attractors,
                            ("missing_attractor", "own_subregions", "selective_modes", "rule_based_integration",
                             "diverging", "slowest_abs", "align_relevant", "align_irrelevant"),
                            "rule_based_integration")],
    "flipflop": [("memory", mech.memory_attractors,
                  ("fixed_point_memory", "transient_memory", "n_attractors", "n_stable_cycles"), "fixed_point_memory")],
    "delayed_match": [("memory", mech.memory_attractors,
                       ("fixed_point_memory", "transient_memory", "n_attractors", "n_stable_cycles"),
                       "fixed_point_memory")],
    "multitask": [("sharing", mech.region_sharing, ("overlap", "shared_fraction", "shared", "n_regions"), "shared")],
}

# what counts as showing a mechanism, per fitted model: (summary variable, at least this value, in words)
SHOWN = {
    "gating.gating": (0.5, "a ReLU unit switches at the marker inputs (|selectivity| >= 0.5)"),
    "attractors.own_subregions": (0.5, "each context's attracting fixed point lies in its own subregion"),
    "attractors.selective_modes": (0.5, "each context's slow mode is aligned more with the cued stream's input"),
    "attractors.rule_based_integration": (0.5, "both of the above (rule-based integration)"),
    "attractors.missing_attractor": (0.5, "a context without an attracting real fixed point"),
    "attractors.diverging": (0.5, "most trials diverge under a context's constant input"),
    "memory.fixed_point_memory": (1.0, "every memory state held at its own stable fixed point"),
    "memory.transient_memory": (0.5, "most memory states held by transients, not fixed points"),
    "memory.n_stable_cycles": (1.0, "a stable cycle (order 2-4) under the holding input"),
    "sharing.shared": (0.5, "most of each task's time in subregions other tasks use too"),
}


class MechanismScorer:
    """``scorer(estimator, X, y=None) -> {summary: float}`` for one mechanism (picklable for Dask).

    Examples
    --------
    >>> scorer = MechanismScorer("addition", "gating")
    >>> scorer.keys
    ('max_selectivity', 'n_gates', 'switches_at_markers', 'gating')
    """

    greater_is_better = True

    def __init__(self, task: str, name: str):
        found = [m for m in MECHANISMS.get(task, []) if m[0] == name]
        if not found:
            raise ValueError(f"name: no mechanism {name!r} for task {task!r}; have "
                             f"{[m[0] for m in MECHANISMS.get(task, [])]}")
        self.task, self.name = task, name
        _, self.fn, self.keys, _ = found[0]

    def __call__(self, estimator, X, y=None) -> dict:
        ds = X.ds if hasattr(X, "ds") else X
        model = getattr(estimator, "model_", None)
        if model is None or not hasattr(model, "n_relu"):
            raise TypeError(f"{self.name}: needs a fitted AL-RNN estimator (model_ an ALRNN), got "
                            f"{type(estimator).__name__}")
        out = self.fn(model, ds)
        summary = {}
        for key in self.keys:
            value = np.asarray(out[key], dtype=float)
            if value.ndim and np.isfinite(value).any():  # per context: the worst for divergence, else the mean
                value = np.nanmax(value) if key == "diverging" else np.nanmean(value)
            summary[key] = float(value) if not value.ndim else np.nan
        return summary

    __name__ = "mechanism"


def mechanism_scorers(task: str) -> dict:
    """The mechanism scorers of a task, by name (empty for tasks without one).

    Examples
    --------
    >>> sorted(mechanism_scorers("flipflop"))
    ['memory']
    """
    return {name: MechanismScorer(task, name) for name, *_ in MECHANISMS.get(task, [])}

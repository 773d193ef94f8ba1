"""Recommended settings per task: the data, the training that solves it, and what "solved" means.

``recommended(task)`` gives, for each task of the study suite (``SUITE``), a dict with

* ``data``: keyword arguments of the task's generator (``n_trials`` included);
* ``params``: ``ALRNNTaskEstimator`` parameters (initialisation, learning rate, steps, ...) with
  which an AL-RNN of ``n_units`` units and a few ReLU units reaches the criterion;
* ``scoring``: the held-out scores worth reporting (names of :mod:`neuroalrnn.scoring`);
* ``criterion``: the scorer, its threshold and direction, chance or baseline level, and why.

The settings were measured with the study runner (``benchmarks/RESULTS_study.md``). Use
:func:`make_task` for the dataset and :func:`is_solved` to apply the criterion.
"""

from __future__ import annotations

import copy

import numpy as np
import xarray as xr

SUITE = ("stimulus_selection", "addition", "copy", "flipflop", "delayed_match", "multitask", "digits")

# the multi-task suite: short versions of the memory tasks, so one network learns all four
_MULTI = {"addition": {"T": 30}, "copy": {"seq_len": 3, "delay": 5}, "flipflop": {"n_bits": 2, "T": 30},
          "delayed_match": {"delay": 5, "n_stimuli": 2}}

_CONFIGS = {
    "stimulus_selection": {
        "data": {"n_trials": 4000},
        "params": {"n_units": 32, "init": "reference", "lr": 0.01, "lr_decay": 0.998, "n_steps": 600,
                   "batch_size": 128, "eval_every": 100, "select_metric": "val_accuracy"},
        "scoring": ["accuracy", "accuracy[congruent]", "accuracy[incongruent]", "accuracy[context=motion]",
                    "accuracy[context=color]", "ideal_gap", "ideal_gap[incongruent]"],
        "criterion": {"scorer": "ideal_gap", "threshold": 0.02, "solved_below": True, "chance": None,
                      "why": "within 2 points of the ideal observer (the sign of the cued stream summed over the "
                             "stimulus epoch; ~0.76 correct) on the same held-out trials, whose gap to chance is "
                             "~0.26; a linear network cannot ignore the irrelevant stream and stays near chance on "
                             "incongruent trials"}},
    "addition": {
        "data": {"n_trials": 4000, "T": 100},
        "params": {"n_units": 32, "init": "normal", "lr": 0.003, "lr_decay": 0.99985, "n_steps": 12000,
                   "batch_size": 64, "eval_every": 250},
        "scoring": ["mse"],
        "criterion": {"scorer": "mse", "threshold": 0.01, "solved_below": True, "chance": 1 / 6,
                      "why": "MSE <= 0.01 at the last step, against 1/6 (0.163 on 2,000 trials) for always "
                             "answering the mean sum 1; the reference and identity initialisations forget or "
                             "explode and stay at the baseline, A = 0 with W ~ N(0, 1/M) ('normal') learns"}},
    "copy": {
        "data": {"n_trials": 2000, "n_symbols": 4, "seq_len": 5, "delay": 10},
        "params": {"n_units": 32, "init": "normal", "lr": 0.003, "lr_decay": 1.0, "n_steps": 3000,
                   "batch_size": 64, "eval_every": 100, "loss": "ce"},
        "scoring": ["class_accuracy"],  # cross-entropy training: the outputs are logits, their MSE means nothing
        "criterion": {"scorer": "class_accuracy", "threshold": 0.9, "solved_below": False, "chance": 0.25,
                      "why": "at least 90% of the recalled symbols right (chance 1/4); a delay line is linear, so "
                             "P = 0 can solve it"}},
    "flipflop": {
        "data": {"n_trials": 1000, "n_bits": 3, "T": 50},
        "params": {"n_units": 32, "init": "normal", "lr": 0.003, "lr_decay": 1.0, "n_steps": 3000,
                   "batch_size": 32, "eval_every": 250},
        "scoring": ["mse", "sign_accuracy"],
        "criterion": {"scorer": "mse", "threshold": 0.05, "solved_below": True, "chance": 0.645,
                      "why": "MSE <= 0.05 over all steps, against 0.645 for answering 0 (a bit is 0 until its first "
                             "pulse); holding 2^3 = 8 memories at fixed points needs at least 8 linear subregions "
                             "(P >= 3), one stable point each"}},
    "delayed_match": {
        "data": {"n_trials": 2000, "n_stimuli": 2, "delay": 10},
        "params": {"n_units": 32, "init": "normal", "lr": 0.003, "lr_decay": 1.0, "n_steps": 2000,
                   "batch_size": 64, "eval_every": 100, "select_metric": "val_accuracy"},
        "scoring": ["accuracy", "mse"],
        "criterion": {"scorer": "accuracy", "threshold": 0.95, "solved_below": False, "chance": 0.5,
                      "why": "at least 95% of match/non-match choices right (chance 1/2); with two stimuli "
                             "'same or not' is an XOR of sample and test, which a linear readout of a linear "
                             "network gets right on at most 3 of the 4 pairs (0.75)"}},
    "multitask": {
        "data": {"n_trials": 2000, "task_kwargs": _MULTI},
        "params": {"n_units": 32, "init": "normal", "lr": 0.003, "lr_decay": 1.0, "n_steps": 3000,
                   "batch_size": 64, "eval_every": 250},
        "scoring": ["mse", "mse[task=addition]", "class_accuracy[task=copy]", "mse[task=flipflop]",
                    "sign_accuracy[task=delayed_match]"],
        "criterion": {"scorer": "mse", "threshold": 0.05, "solved_below": True, "chance": 0.501,
                      "why": "MSE <= 0.05 over the scored outputs of all four tasks (answering 0 gives 0.50); "
                             "the per-task scores say which task holds it back"}},
    "digits": {
        "data": {"n_trials": None},
        "params": {"n_units": 32, "init": "reference", "lr": 0.01, "lr_decay": 1.0, "n_steps": 1000,
                   "batch_size": 64, "eval_every": 100, "loss": "ce", "select_metric": "val_accuracy"},
        "scoring": ["accuracy"],
        "criterion": {"scorer": "accuracy", "threshold": 0.9, "solved_below": False, "chance": 0.1,
                      "why": "at least 90% of held-out digits right (chance 1/10; a linear classifier of all 64 "
                             "pixels gets ~95%)"}},
}


def recommended(task: str) -> dict:
    """The recommended data, training parameters, scores and criterion of a suite task (a copy).

    Examples
    --------
    >>> cfg = recommended("addition")
    >>> cfg["params"]["init"], cfg["criterion"]["threshold"]
    ('normal', 0.01)

    The parameters are an estimator's (``compare`` specs and ``neuroalrnn fit`` take them too):

    >>> from neuroalrnn.estimators import ALRNNTaskEstimator
    >>> ALRNNTaskEstimator(n_relu=2, **cfg["params"]).n_steps
    12000
    """
    if task not in _CONFIGS:
        raise ValueError(f"task: expected one of {list(SUITE)}, got {task!r}")
    return copy.deepcopy({"task": task, **_CONFIGS[task]})


def make_task(task: str, n_trials: int | None = None, *, seed=0, **overrides) -> xr.Dataset:
    """The task's dataset with its recommended settings (``n_trials`` and ``overrides`` replace them).

    Examples
    --------
    >>> make_task("flipflop", 10, seed=0).sizes["time"]
    50
    """
    from neuroalrnn import tasks

    generators = {"stimulus_selection": tasks.stimulus_selection, "addition": tasks.addition,
                  "copy": tasks.copy_task, "flipflop": tasks.flipflop, "delayed_match": tasks.delayed_match,
                  "multitask": tasks.multitask, "digits": tasks.digit_sequence}
    kwargs = {**recommended(task)["data"], **overrides}
    if n_trials is not None:
        kwargs["n_trials"] = n_trials
    return generators[task](kwargs.pop("n_trials"), seed=seed, **kwargs)


def is_solved(task: str, value):
    """Whether a score (array-like, any shape) meets the task's criterion (1.0 / 0.0; NaN stays NaN).

    ``solved_below``: the score is at most the threshold (an error); else at least it (an accuracy).

    Examples
    --------
    >>> is_solved("addition", [0.005, 0.1, float("nan")]).tolist()
    [1.0, 0.0, nan]
    """
    crit = recommended(task)["criterion"]
    x = np.asarray(value, dtype=float)
    ok = x <= crit["threshold"] if crit["solved_below"] else x >= crit["threshold"]
    return np.where(np.isfinite(x), ok.astype(float), np.nan)

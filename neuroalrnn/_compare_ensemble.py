"""``compare``'s ensembles: compatible fits grouped into one :class:`ALRNNEnsemble` per sweep task.

Fits of task-trained AL-RNNs (``ALRNNTaskEstimator``) or teacher-forced ones
(``ALRNNTeacherForcingEstimator``) whose specs agree on everything the computation shares
(``SHARED``: units, steps, batch size, optimizer, loss or forcing, evaluation, device, ...) train
together; they may differ in ``n_relu``, ``init``, ``lr``, ``lr_decay``, ``clip_grad_norm``,
``patience``, seed and fold (and ``val_fraction`` for task fits). Other estimators (GRU, custom
ones) are fitted one by one. Each ensemble is one task of
:func:`neuroalrnn._sweep.run_tasks` (so Dask distributes ensembles); its result holds one record per
member, which ``compare`` stores as that member's own result, so a rerun skips finished members
whatever ensembles the rest falls into. With a ``results_dir`` an ensemble also writes an atomic
checkpoint there (``<key>.ckpt``) at every evaluation, from which an interrupted one resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone

from neuroalrnn._threads import sweep_threads, threads_for
from neuroalrnn.estimators import ALRNNTaskEstimator, ALRNNTeacherForcingEstimator, Trials

# what the members of one ensemble share, per estimator class (the rest may differ per member)
SHARED = {ALRNNTaskEstimator: ("n_units", "loss", "n_steps", "batch_size", "optimizer", "eval_every",
                               "select_metric", "device"),
          ALRNNTeacherForcingEstimator: ("n_units", "forcing", "tau", "alpha", "observation", "noise_std",
                                         "sequence_length", "n_steps", "batch_size", "optimizer", "val",
                                         "eval_every", "n_ahead", "device")}


def group_key(est, device=None) -> str | None:
    """What members of one ensemble share (a JSON string), or None for an estimator fitted alone.

    Examples
    --------
    >>> a = group_key(ALRNNTaskEstimator(n_relu=0, lr=0.01))
    >>> a == group_key(ALRNNTaskEstimator(n_relu=16, lr=0.02)), a == group_key(ALRNNTaskEstimator(n_units=8))
    (True, False)
    """
    if type(est) not in SHARED:  # subclasses may fit differently
        return None
    params = est.get_params()
    if device is not None:
        params["device"] = device
    shared = {name: params[name] for name in SHARED[type(est)]}
    shared["class"] = type(est).__name__
    if "val_fraction" in params:
        shared["has_val"] = bool(params["val_fraction"])
    return json.dumps(shared, sort_keys=True, default=repr)


def plan(tasks: list[dict], estimators: dict, ensemble, n_jobs: int, device=None) -> list[dict]:
    """Sweep tasks: ensembles of compatible member tasks (split into at least ``n_jobs`` parts), then singles.

    ``ensemble`` False fits every task alone; an int caps the models per ensemble.
    """
    groups, singles = {}, []
    for task in tasks:
        key = group_key(estimators[task["model"]], device) if ensemble is not False else None
        if key is None:
            singles.append(task)
        else:
            groups.setdefault(key, []).append(task)
    cap = None if ensemble is True else int(ensemble)
    out = []
    for members in groups.values():
        n = len(members)
        parts = max(min(n, n_jobs), math.ceil(n / cap) if cap else 1)
        out += [ensemble_task([members[i] for i in part]) for part in np.array_split(np.arange(n), parts)]
    return out + singles


def in_process_threads(tasks: list[dict], estimators: dict, ensemble, data, device=None) -> int:
    """Threads for running these tasks in this process: ``sweep_threads`` of the smallest work per model
    and step when every task trains in a CPU ensemble, else 1 (single fits seed torch's global RNG)."""
    from neuroalrnn.model import _resolve_device

    if ensemble is False or not tasks:
        return 1
    works = []
    for name in {task["model"] for task in tasks}:
        est = estimators[name]
        if group_key(est, device) is None:
            return 1
        params = est.get_params()
        try:
            on_cpu = _resolve_device(device or params["device"]).type == "cpu"
        except (TypeError, ValueError):  # the fit reports it
            return 1
        if not on_cpu:
            return 1
        works.append(params["batch_size"] * data.sizes["time"] * params["n_units"] ** 2)
    return sweep_threads(min(works))


def ensemble_task(members: list[dict]) -> dict:
    """The sweep task of an ensemble of member tasks; its key is a hash of them."""
    digest = hashlib.sha1(json.dumps(members, sort_keys=True).encode()).hexdigest()[:16]
    return {"key": f"ensemble-{digest}", "members": members}


def checkpoint_path(results_dir, task) -> Path | None:
    return None if results_dir is None else Path(results_dir) / f"{task['key']}.ckpt"


def fit_ensemble(task: dict, shared: dict) -> dict:
    """One ensemble sweep task: train its members together, score each on its test fold.

    Returns ``{"members": {member key: result}}``; a result is what ``compare``'s per-model fit
    returns (score, fit_time: the ensemble's time divided among its members, n_train, n_test), or
    ``{"error": ...}`` for a member whose loss became NaN/inf.
    """
    from neuroalrnn.compare import _extra_scores
    from neuroalrnn.model import ALRNNEnsemble, _resolve_device

    members, data, folds = task["members"], shared["data"], shared["folds"]
    ests = []
    for member in members:
        est = clone(shared["estimators"][member["model"]]).set_params(seed=member["seed"])
        if shared.get("device") is not None:
            est.set_params(device=shared["device"])
        ests.append(est)
    params = [est.get_params() for est in ests]
    first, seeds = params[0], [m["seed"] for m in members]
    teacher_forcing = type(ests[0]) is ALRNNTeacherForcingEstimator
    n_inputs = data.sizes["input"] if "inputs" in data.data_vars else 0
    n_outputs = 0 if teacher_forcing else data.sizes["output"]
    ens = ALRNNEnsemble(first["n_units"], [p["n_relu"] for p in params], n_inputs, n_outputs,
                        init=[p["init"] for p in params], seeds=seeds, device=_resolve_device(first["device"]))
    per = {name: [p[name] for p in params] for name in ("lr", "lr_decay", "clip_grad_norm", "patience")}
    common = dict(n_steps=first["n_steps"], batch_size=first["batch_size"], optimizer=first["optimizer"],
                  eval_every=first["eval_every"], seeds=seeds, fingerprint=task["key"],
                  checkpoint=checkpoint_path(shared.get("results_dir"), task), **per)
    train_trials = [folds[m["fold"]][0] for m in members]
    start = time.perf_counter()
    fitted = _fit_tf(ens, data, train_trials, first, common) if teacher_forcing else \
        _fit_task(ens, data, train_trials, params, common)
    fit_time = (time.perf_counter() - start) / len(members)
    trials = Trials(data)
    work = first["batch_size"] * data.sizes["time"] * first["n_units"] ** 2
    out, held_out = {}, {}  # held_out: each fold's test trials, selected once for the members sharing it
    with threads_for(work):
        for member, est, (result, set_fitted) in zip(members, ests, fitted):
            if "error" in result.extra:
                out[member["key"]] = {"error": f"NonFiniteLossError: {result.extra['error']}"}
                continue
            set_fitted(est)  # the attributes the estimator's fit sets
            est.train_result_, est.history_ = result, result.history
            train, test = folds[member["fold"]]
            if member["fold"] not in held_out:
                held_out[member["fold"]] = trials[test]
            out[member["key"]] = {"score": float(est.score(held_out[member["fold"]])), "fit_time": fit_time,
                                  "n_train": int(len(train)), "n_test": int(len(test))}
            scores = _extra_scores(shared, est, held_out[member["fold"]])  # compare's scoring=
            if scores:
                out[member["key"]]["scores"] = scores
    return {"members": out}


def _fit_task(ens, data, train_trials, params, common):
    """Task training as ALRNNTaskEstimator.fit does it, for all members; (result, setter) per member."""
    from neuroalrnn.fit.ensemble_task import fit_task_ensemble

    first = params[0]
    results = fit_task_ensemble(ens, data, train_trials, loss=first["loss"], select_metric=first["select_metric"],
                                val_fraction=[p["val_fraction"] for p in params], **common)
    n_inputs, n_outputs = ens.n_inputs, ens.n_outputs

    def setter(k):
        def set_fitted(est):
            est.model_ = ens.member(k).cpu().eval()
            est.n_features_in_ = est.n_inputs_ = n_inputs
            est.n_outputs_ = n_outputs
        return set_fitted

    return [(res, setter(k)) for k, res in enumerate(results)]


def _fit_tf(ens, data, train_trials, first, common):
    """Teacher forcing as ALRNNTeacherForcingEstimator.fit does it, for all members."""
    from neuroalrnn.fit.ensemble_tf import fit_teacher_forcing_ensemble

    fits = fit_teacher_forcing_ensemble(
        ens, data, train_trials, val=first["val"], forcing=first["forcing"], tau=first["tau"], alpha=first["alpha"],
        observation=first["observation"], noise_std=first["noise_std"], sequence_length=first["sequence_length"],
        select_metric="n_step" if first["val"] else "val_loss", metrics=("n_step",), n_ahead=first["n_ahead"],
        **common)
    n_units = data.sizes["unit"]

    def setter(observed):
        def set_fitted(est):
            est.observed_ = observed.cpu().eval()
            est.model_ = est.observed_.model
            est.n_features_in_ = est.n_units_observed_ = n_units
        return set_fitted

    return [(observed.train_result_, setter(observed)) for observed in fits]

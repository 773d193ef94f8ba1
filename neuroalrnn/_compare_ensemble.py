"""``compare``'s ensembles: compatible fits grouped into one :class:`ALRNNEnsemble` per sweep task.

Fits of task-trained AL-RNNs (``ALRNNTaskEstimator``) whose specs agree on everything the
computation shares (``SHARED``: units, loss, steps, batch size, optimizer, evaluation, device, and
whether there is a validation split) train together; they may differ in ``n_relu``, ``init``,
``lr``, ``lr_decay``, ``clip_grad_norm``, ``patience``, ``val_fraction``, seed and fold. Other
estimators (GRU, custom ones) are fitted one by one. Each ensemble is one task of
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

from neuroalrnn._threads import threads_for
from neuroalrnn.estimators import ALRNNTaskEstimator, Trials

SHARED = ("n_units", "loss", "n_steps", "batch_size", "optimizer", "eval_every", "select_metric", "device")


def group_key(est, device=None) -> str | None:
    """What members of one ensemble share (a JSON string), or None for an estimator fitted alone.

    Examples
    --------
    >>> a = group_key(ALRNNTaskEstimator(n_relu=0, lr=0.01))
    >>> a == group_key(ALRNNTaskEstimator(n_relu=16, lr=0.02)), a == group_key(ALRNNTaskEstimator(n_units=8))
    (True, False)
    """
    if type(est) is not ALRNNTaskEstimator:  # subclasses may fit differently
        return None
    params = est.get_params()
    if device is not None:
        params["device"] = device
    shared = {name: params[name] for name in SHARED}
    shared["has_val"] = bool(params["val_fraction"])
    return json.dumps(shared, sort_keys=True, default=repr)


def plan(tasks: list[dict], estimators: dict, ensemble, n_jobs: int, device=None) -> list[dict]:
    """Sweep tasks: ensembles of compatible member tasks (split into at least ``n_jobs`` parts), then singles.

    ``ensemble`` False fits every task alone; an int caps the models per ensemble.
    """
    groups, singles = {}, []
    for task in tasks:
        key = group_key(estimators[task["model"]], device) if ensemble is not False else None
        (singles.append(task) if key is None else groups.setdefault(key, []).append(task))
    cap = None if ensemble is True else int(ensemble)
    out = []
    for members in groups.values():
        n = len(members)
        parts = max(min(n, n_jobs), math.ceil(n / cap) if cap else 1)
        out += [ensemble_task([members[i] for i in part]) for part in np.array_split(np.arange(n), parts)]
    return out + singles


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
    from neuroalrnn.fit.ensemble_task import fit_task_ensemble
    from neuroalrnn.model import ALRNNEnsemble, _resolve_device

    members, data, folds = task["members"], shared["data"], shared["folds"]
    ests = []
    for member in members:
        est = clone(shared["estimators"][member["model"]]).set_params(seed=member["seed"])
        if shared.get("device") is not None:
            est.set_params(device=shared["device"])
        ests.append(est)
    params = [est.get_params() for est in ests]
    first = params[0]
    per = lambda name: [p[name] for p in params]  # noqa: E731
    n_inputs, n_outputs = data.sizes["input"], data.sizes["output"]
    ens = ALRNNEnsemble(first["n_units"], per("n_relu"), n_inputs, n_outputs, init=per("init"),
                        seeds=[m["seed"] for m in members], device=_resolve_device(first["device"]))
    start = time.perf_counter()
    results = fit_task_ensemble(
        ens, data, [folds[m["fold"]][0] for m in members], loss=first["loss"], val_fraction=per("val_fraction"),
        n_steps=first["n_steps"], batch_size=first["batch_size"], lr=per("lr"), lr_decay=per("lr_decay"),
        optimizer=first["optimizer"], clip_grad_norm=per("clip_grad_norm"), eval_every=first["eval_every"],
        patience=per("patience"), select_metric=first["select_metric"], seeds=[m["seed"] for m in members],
        checkpoint=checkpoint_path(shared.get("results_dir"), task), fingerprint=task["key"])
    fit_time = (time.perf_counter() - start) / len(members)
    trials = Trials(data)
    work = first["batch_size"] * data.sizes["time"] * first["n_units"] ** 2
    out = {}
    with threads_for(work):
        for k, (member, est, res) in enumerate(zip(members, ests, results)):
            if "error" in res.extra:
                out[member["key"]] = {"error": f"NonFiniteLossError: {res.extra['error']}"}
                continue
            est.model_ = ens.member(k).cpu().eval()  # the attributes ALRNNTaskEstimator.fit sets
            est.train_result_, est.history_ = res, res.history
            est.n_features_in_ = est.n_inputs_ = n_inputs
            est.n_outputs_ = n_outputs
            train, test = folds[member["fold"]]
            out[member["key"]] = {"score": float(est.score(trials[test])), "fit_time": fit_time,
                                  "n_train": int(len(train)), "n_test": int(len(test))}
    return {"members": out}

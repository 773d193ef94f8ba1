"""Cross-validated comparisons of models on a TrialDataset, locally or on Dask.

``compare`` fits every model on every training fold with every seed and returns the held-out
scores as an ``xarray.Dataset`` with dims (model, fold, seed). Compatible task-trained AL-RNN fits
(same units, steps, batch size, loss, optimizer, ...; any P, learning rate, seed and fold) are
trained together as ensembles, many small models in one computation
(:mod:`neuroalrnn._compare_ensemble`); other estimators are fitted one by one. Each ensemble or
single fit is one task of :func:`neuroalrnn._sweep.run_tasks`: in-process, on a ``LocalCluster``
when ``n_jobs > 1``, or on a given Dask scheduler. In-process, when every fit trains in a CPU
ensemble of models large enough to gain (``neuroalrnn._threads.sweep_threads``: M = 32 and above at
the demo's batch), the ensembles are split over the cores and run side by side in threads.
``summarize`` (:mod:`neuroalrnn.stats`) gives the mean and SEM per model and paired tests between
models on the same (fold, seed) pairs.

The score is the estimator's ``score`` on the held-out trials: choice accuracy at the
response epoch for choice tasks, else negative masked MSE (task estimators); negative
n-step prediction error (teacher forcing). Higher is better for all. ``scoring=`` adds named
scorers (:mod:`neuroalrnn.scoring`: per-condition accuracy, per-task MSE, D_stsp, scikit-learn
scorers, ...), one results variable each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, clone

from neuroalrnn import _compare_ensemble
from neuroalrnn._sweep import _write, read_stored, run_tasks
from neuroalrnn._threads import threads_for
from neuroalrnn.estimators import (ALRNNTaskEstimator, ALRNNTeacherForcingEstimator, GRUTaskEstimator,
                                   Trials)
from neuroalrnn.schema import validate
from neuroalrnn.stats import summarize, table  # noqa: F401  (compare's results, summarized: part of this module's API)

FAMILIES = {"alrnn": ALRNNTaskEstimator, "gru": GRUTaskEstimator, "teacher_forcing": ALRNNTeacherForcingEstimator}
_NOT_IN_KEY = ("device", "progress")  # parameters that do not change a result's identity


def make_estimator(spec, ds: xr.Dataset | None = None, name: str = "model") -> BaseEstimator:
    """An unfitted estimator from an estimator, a family name or a dict of parameters.

    A dict may name its ``family`` (one of ``FAMILIES``: "alrnn" task training, "gru"
    baseline, "teacher_forcing"); without one it is "alrnn" when ``ds`` has targets, else
    "teacher_forcing". The other keys are the estimator's parameters.

    Examples
    --------
    >>> make_estimator({"family": "gru", "n_units": 4}).n_units
    4
    >>> make_estimator("alrnn").n_relu
    2
    """
    if isinstance(spec, BaseEstimator):
        if not (hasattr(spec, "fit") and hasattr(spec, "score")):
            raise TypeError(f"models[{name!r}]: the estimator needs fit and score methods")
        return clone(spec)
    if isinstance(spec, str):
        spec = {"family": spec}
    if not isinstance(spec, Mapping):
        raise TypeError(f"models[{name!r}]: expected an estimator, a family name {sorted(FAMILIES)} or a dict "
                        f"of parameters, got {type(spec).__name__}")
    params = dict(spec)
    default = "alrnn" if ds is None or "targets" in ds.data_vars else "teacher_forcing"
    family = params.pop("family", default)
    if family not in FAMILIES:
        raise ValueError(f"models[{name!r}]: unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    cls = FAMILIES[family]
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"models[{name!r}]: unknown parameters {unknown} for {cls.__name__}; "
                         f"expected some of {sorted(valid)}")
    return cls(**params)


def make_folds(n_trials: int, cv=5, groups=None, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) trial-index pairs from an int or a scikit-learn splitter.

    An int gives ``GroupKFold`` when ``groups`` is given, else a shuffled ``KFold`` (seeded).

    Examples
    --------
    >>> [len(test) for _, test in make_folds(10, cv=5)]
    [2, 2, 2, 2, 2]
    >>> make_folds(6, cv=3, groups=[0, 0, 1, 1, 1, 1])
    Traceback (most recent call last):
    ...
    ValueError: cv: 3 folds but only 2 distinct groups; use at most 2 folds
    """
    from sklearn.model_selection import GroupKFold, KFold

    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n_trials,):
            raise ValueError(f"groups: expected one value per trial ({n_trials}), got shape {groups.shape}")
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"cv: expected at least 2 folds, got {cv}")
        cv = GroupKFold(n_splits=int(cv)) if groups is not None else KFold(int(cv), shuffle=True, random_state=seed)
    elif isinstance(cv, str) or not hasattr(cv, "split"):
        raise TypeError(f"cv: expected an int or a scikit-learn splitter (KFold, GroupKFold, ...), "
                        f"got {type(cv).__name__}")
    n_splits = getattr(cv, "n_splits", None)
    if groups is not None and n_splits is not None and n_splits > len(np.unique(groups)):
        raise ValueError(f"cv: {n_splits} folds but only {len(np.unique(groups))} distinct groups; "
                         f"use at most {len(np.unique(groups))} folds")
    if n_splits is not None and n_splits > n_trials:
        raise ValueError(f"cv: {n_splits} folds but only {n_trials} trials")
    try:
        folds = [(np.asarray(tr), np.asarray(te)) for tr, te in cv.split(np.zeros(n_trials), groups=groups)]
    except ValueError as error:
        raise ValueError(f"cv: cannot split {n_trials} trials: {error}") from None
    if not folds:
        raise ValueError("cv: the splitter gave no folds")
    return folds


def _fingerprint(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
    return h.hexdigest()[:16]


def _extra_scores(shared: dict, est, test) -> dict:
    """The ``scoring=`` scorers of ``compare`` on held-out trials: {name: float}.

    A scorer that returns a mapping gives one entry per key, named ``"<scorer>.<key>"``.
    """
    out = {}
    for name, scorer in shared.get("scorers", {}).items():
        value = scorer(est, test)
        items = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, v in items:
            out[name if key is None else f"{name}.{key}"] = float(v)
    return out


def _fit_score(task: dict, shared: dict) -> dict:
    """One sweep task: fit a clone on the training fold, score it on the test fold."""
    est = clone(shared["estimators"][task["model"]]).set_params(seed=task["seed"])
    if shared.get("device") is not None:
        est.set_params(device=shared["device"])
    train, test = shared["folds"][task["fold"]]
    trials = Trials(shared["data"])
    params = est.get_params()
    work = params.get("batch_size", 64) * shared["data"].sizes["time"] * params.get("n_units", 16) ** 2
    with threads_for(work):  # scoring too: torch's threads busy-wait on small models' tensors
        start = time.perf_counter()
        est.fit(trials[train])
        fit_time = time.perf_counter() - start
        score = float(est.score(trials[test]))
        scores = _extra_scores(shared, est, trials[test])
    return {"score": score, "fit_time": fit_time, "n_train": int(len(train)), "n_test": int(len(test)),
            **({"scores": scores} if scores else {})}


def _run_task(task: dict, shared: dict) -> dict:
    """A sweep task of compare: an ensemble of fits or a single fit."""
    if "members" in task:
        return _compare_ensemble.fit_ensemble(task, shared)
    return _fit_score(task, shared)


def compare(ds, models: Mapping, *, cv=5, groups=None, seeds: Sequence[int] = (0,), scheduler=None,
            n_jobs: int = 1, results_dir=None, device: str | None = None, ensemble: bool | int = True,
            scoring=None, progress: bool = False) -> xr.Dataset:
    """Cross-validated held-out scores of several models, with dims (model, fold, seed).

    Parameters
    ----------
    ds : TrialDataset or Trials
    models : mapping name -> estimator, family name or dict of parameters
        See :func:`make_estimator` (e.g. ``{"P=0": {"n_relu": 0}, "gru": "gru"}``).
    cv : int or scikit-learn splitter
        An int gives ``GroupKFold`` when ``groups`` is given, else a shuffled ``KFold``.
    groups : str or array, optional
        A trial coord name (e.g. ``"session"``) or one group label per trial.
    seeds : sequence of int
        Model seeds (initialisation and batches); every seed is fitted on every fold.
    scheduler : None, str or distributed.Client
        None: in-process (``n_jobs == 1``; large CPU ensembles in one thread per core) or a
        LocalCluster of ``n_jobs`` processes; a scheduler address or Client: run there.
        ``ConnectionError`` within ~5 s when an address does not answer.
    n_jobs : int
        Worker processes; ensembles are split into at least ``n_jobs`` parts to use them.
    results_dir : path, optional
        Per-fit JSON results are written here as they finish; a rerun skips them. Ensembles also
        keep an atomic checkpoint here while they train, so an interrupted one resumes (when the
        rerun splits the ensembles alike: the same ``n_jobs``, and for threads the same cores).
    device : str, optional
        Overrides every estimator's ``device`` (e.g. ``"auto"`` so GPU workers use CUDA).
    ensemble : bool or int
        True (default): train compatible AL-RNN task fits together as ensembles; an int also caps
        the models per ensemble; False: every fit alone (the same results to float tolerance).
    scoring : str, callable, list or dict, optional
        More held-out scores (:func:`neuroalrnn.scoring.check_scoring`): built-in names such as
        ``"accuracy[incongruent]"`` or ``"mse[task=addition]"``, scikit-learn scorers, or
        callables ``f(estimator, X, y) -> float`` (or a dict of floats: one variable per key).
    progress : bool

    Returns
    -------
    xarray.Dataset
        ``score`` and ``fit_time`` (model, fold, seed; seconds, an ensemble's time divided among its
        models); coords ``n_relu`` and ``family`` on ``model`` (``n_relu`` NaN for models without
        one), ``n_test`` and ``n_train`` on ``fold``; one variable (model, fold, seed) per scorer of
        ``scoring``, with ``greater_is_better`` in its attrs.

    Examples
    --------
    >>> from neuroalrnn.tasks import stimulus_selection
    >>> ds = stimulus_selection(24, seed=0)
    >>> res = compare(ds, {"P=0": {"n_units": 4, "n_relu": 0, "n_steps": 2, "eval_every": 2}}, cv=2)
    >>> res["score"].dims
    ('model', 'fold', 'seed')
    """
    from neuroalrnn.scoring import check_scoring

    data = validate(ds.ds if isinstance(ds, Trials) else ds)
    scorers = check_scoring(scoring)
    if {"score", "fit_time"} & set(scorers):
        raise ValueError("scoring: the names 'score' and 'fit_time' are taken by compare's own results")
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models: expected a non-empty dict of name -> estimator, family name or parameters")
    for name in models:
        if not isinstance(name, str) or not name:
            raise TypeError(f"models: names must be non-empty strings, got {name!r}")
    estimators = {name: make_estimator(spec, data, name) for name, spec in models.items()}
    for name, est in estimators.items():
        if "seed" not in est.get_params():
            raise ValueError(f"models[{name!r}]: the estimator has no 'seed' parameter")
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds: expected a non-empty list of non-negative ints, got {seeds!r}")
    if isinstance(ensemble, (bool, np.bool_)):
        ensemble = bool(ensemble)
    elif not isinstance(ensemble, (int, np.integer)) or ensemble < 1:
        raise ValueError(f"ensemble: expected True, False or a positive int (models per ensemble), got {ensemble!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds: contain duplicates")
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device: expected None or a string ('cpu', 'cuda', 'auto'), got {device!r}")
    group_name = groups if isinstance(groups, str) else None
    if isinstance(groups, str):
        groups = Trials(data).groups(groups)
    folds = make_folds(data.sizes["trial"], cv, groups)
    # the data's identity for stored results: the signals and every trial coord (e.g. correct_choice and
    # response_onset, which the choice score reads), so relabelled trials are fitted anew
    trial_coords = sorted(k for k, v in data.coords.items() if v.dims[:1] == ("trial",))
    data_key = _fingerprint(*[data[v].values for v in ("activity", "inputs", "targets", "loss_weight")
                              if v in data.data_vars], *[data[k].values for k in trial_coords],
                            np.asarray(trial_coords))
    tasks = []
    for name, est in estimators.items():
        params = {k: v for k, v in est.get_params().items() if k not in _NOT_IN_KEY and k != "seed"}
        spec = json.loads(json.dumps({"class": type(est).__name__, **params}, default=repr, sort_keys=True))
        for f, (_, test) in enumerate(folds):
            for seed in seeds:
                tasks.append({"key": f"{name}-fold{f}-seed{int(seed)}", "model": name, "fold": f,
                              "seed": int(seed), "estimator": spec, "data": data_key,
                              "test": _fingerprint(test), **({"scoring": list(scorers)} if scorers else {})})
    shared = {"data": data, "estimators": estimators, "folds": folds, "device": device,
              "results_dir": None if results_dir is None else str(results_dir), "scorers": scorers}
    results = _run(tasks, shared, estimators, ensemble, scheduler, n_jobs, results_dir, device, progress)
    shape = (len(estimators), len(folds), len(seeds))
    score, fit_time = np.full(shape, np.nan), np.full(shape, np.nan)
    index = {name: i for i, name in enumerate(estimators)}
    extra = {}
    for task, res in zip(tasks, results):
        at = (index[task["model"]], task["fold"], seeds.index(task["seed"]))
        score[at], fit_time[at] = res["score"], res["fit_time"]
        for name, value in res.get("scores", {}).items():
            extra.setdefault(name, np.full(shape, np.nan))[at] = value
    names = list(estimators)
    n_relu = [float(est.get_params().get("n_relu", np.nan)) if not isinstance(est, GRUTaskEstimator) else np.nan
              for est in estimators.values()]
    family = [next((k for k, c in FAMILIES.items() if type(est) is c), type(est).__name__)
              for est in estimators.values()]
    dims = ("model", "fold", "seed")
    better = {name: scorer.greater_is_better for name, scorer in scorers.items()}
    scored = {name: xr.Variable(dims, values, {"greater_is_better": int(better[name.split(".")[0]])})
              for name, values in extra.items()}
    return xr.Dataset(
        {"score": (dims, score), "fit_time": (dims, fit_time), **scored},
        coords={"model": names, "fold": np.arange(len(folds)), "seed": np.asarray(seeds, dtype=int),
                "n_relu": ("model", np.asarray(n_relu, dtype=float)), "family": ("model", family),
                "n_test": ("fold", [len(test) for _, test in folds]),
                "n_train": ("fold", [len(train) for train, _ in folds])},
        attrs={"score": "held-out estimator score (higher is better)", "cv": repr(cv),
               "groups": group_name or ("given" if groups is not None else "none"), "data": data_key})


def _run(tasks, shared, estimators, ensemble, scheduler, n_jobs, results_dir, device, progress) -> list[dict]:
    """Every task's result: stored ones read back, the rest run as ensembles or single fits.

    The ensembles are planned over all tasks, finished or not, so a rerun of the same call gives an
    interrupted ensemble its old key (and checkpoint); finished members are read from their own
    records or from their ensemble's.
    """
    store = None if results_dir is None else Path(results_dir)
    threads = 1 if scheduler is not None or n_jobs > 1 else \
        _compare_ensemble.in_process_threads(tasks, estimators, ensemble, shared["data"], device)
    planned = _compare_ensemble.plan(tasks, estimators, ensemble, max(n_jobs, threads), device)
    done, stored = {}, {}
    if store is not None and store.is_dir():
        stored = read_stored(store, tasks + [task for task in planned if "members" in task], stacklevel=3)
        done = {task["key"]: stored[task["key"]] for task in tasks if task["key"] in stored}
        by_key = {task["key"]: task for task in tasks}
        for task in planned:
            record = stored.get(task["key"], {}) if "members" in task else {}
            for key, result in record.get("members", {}).items():
                if "error" not in result and key not in done and key in by_key:
                    done[key] = result
                    _write(store, by_key[key], result)  # its own record was missing or damaged
    todo = []
    for task in planned:
        members = [m for m in task.get("members", [task]) if m["key"] not in done]
        if members:
            todo.append(task if len(members) == len(task.get("members", [task])) else
                        _compare_ensemble.ensemble_task(members))
    # threads: one torch/BLAS count set here for all of them, so that no fit's end restores the
    # process's count under another's feet (those counts are global)
    with threads_for(0) if threads > 1 else contextlib.nullcontext():
        outputs = run_tasks(_run_task, todo, shared=shared, scheduler=scheduler, n_jobs=n_jobs, threads=threads,
                            results_dir=results_dir, progress=progress, stored={})  # todo: none stored
    errors = []
    for task, out in zip(todo, outputs):
        if "members" not in task:
            done[task["key"]] = out
            continue
        for member in task["members"]:
            result = out["members"][member["key"]]
            if "error" in result:
                errors.append(f"task {member['key']!r} failed: {result['error']}")
                continue
            if store is not None:
                _write(store, member, result)
            done[member["key"]] = result
        path = _compare_ensemble.checkpoint_path(results_dir, task)
        if path is not None and path.exists():  # finished: its members' results are stored
            path.unlink()
    if errors:
        raise RuntimeError("; ".join(errors))
    return [done[task["key"]] for task in tasks]

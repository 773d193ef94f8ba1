"""The nonlinearity study: the task suite x numbers of ReLU units x seeds, cross-validated, in one Dataset.

For every task the runner makes the task's dataset with its recommended settings
(:func:`neuroalrnn.tasks.recommended`), compares AL-RNNs with P in ``p_values`` ReLU units (all
with the recommended training) by :func:`neuroalrnn.compare.compare` over folds x seeds, with the
task's scores and its mechanism scorers (:mod:`neuroalrnn.study.mechanisms`), and marks each fit
solved or not by the task's criterion. The per-task results are joined along a ``task`` dim.
``compare`` trains each task's fits as ensembles, runs them in-process or on Dask and, with a
``results_dir``, stores every finished fit, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from neuroalrnn.study.mechanisms import mechanism_scorers
from neuroalrnn.tasks.recommended import SUITE, is_solved, make_task, recommended

P_VALUES = (0, 1, 2, 4, "M")

# quick mode: tiny data and training per task (a smoke run of the whole pipeline in seconds)
_QUICK_DATA = {"stimulus_selection": {"n_trials": 40, "timing": {"stimulus": 0.3}},
               "addition": {"n_trials": 40, "T": 12}, "copy": {"n_trials": 40, "seq_len": 2, "delay": 2},
               "flipflop": {"n_trials": 40, "T": 16, "p_flip": 0.2}, "delayed_match": {"n_trials": 40, "delay": 2},
               "multitask": {"n_trials": 48, "task_kwargs": {"addition": {"T": 8}, "copy": {"seq_len": 2, "delay": 2},
                                                             "flipflop": {"n_bits": 2, "T": 8},
                                                             "delayed_match": {"delay": 2}}},
               "digits": {"n_trials": 60}}
_QUICK_PARAMS = {"n_units": 6, "n_steps": 6, "eval_every": 3, "batch_size": 16}


def study_config(task: str, *, quick: bool = False, n_units: int | None = None) -> dict:
    """The recommended configuration of a task, shrunk in quick mode, with ``n_units`` overridden.

    Examples
    --------
    >>> study_config("addition", quick=True)["params"]["n_steps"]
    6
    """
    cfg = recommended(task)
    if quick:
        cfg["data"].update(_QUICK_DATA[task])
        cfg["params"].update(_QUICK_PARAMS)
    if n_units is not None:
        cfg["params"]["n_units"] = int(n_units)
    return cfg


def _p_values(p_values, n_units: int) -> list[int]:
    out = []
    for p in p_values:
        p = n_units if p == "M" else p
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 0 <= p <= n_units:
            raise ValueError(f"p_values: expected ints in [0, {n_units}] or 'M', got {p!r}")
        out.append(int(p))
    if len(set(out)) != len(out):
        raise ValueError(f"p_values: contain duplicates ({out})")
    return out


def _union_variables(parts: list[xr.Dataset]) -> list[xr.Dataset]:
    """Every part with every variable of the others (NaN where a task has no such score)."""
    names = {}
    for part in parts:
        for name, var in part.data_vars.items():
            names.setdefault(name, var.attrs)
    out = []
    for part in parts:
        missing = {name: xr.full_like(part["score"], np.nan, dtype=float).assign_attrs(attrs)
                   for name, attrs in names.items() if name not in part}
        out.append(part.assign(missing)[list(names)])
    return out


def run_study(tasks: Sequence[str] = SUITE, *, p_values: Sequence = P_VALUES, seeds: Sequence[int] = (0, 1, 2),
              cv=2, n_units: int | None = None, quick: bool = False, mechanisms: bool = True, data_seed: int = 0,
              scheduler=None, n_jobs: int = 1, device: str | None = None, results_dir=None, out=None,
              progress: bool = False) -> xr.Dataset:
    """Run the nonlinearity study and return (optionally write) one results Dataset with a ``task`` dim.

    Parameters
    ----------
    tasks : sequence of str
        Names from ``neuroalrnn.tasks.SUITE``.
    p_values : sequence of int or "M"
        Numbers of ReLU units; "M" is all units (the PLRNN).
    seeds : sequence of int
        Model seeds; each is fitted on every fold.
    cv : int or scikit-learn splitter
        Folds of every task's trials (2: half the trials train, half test).
    n_units : int, optional
        M for every task (default: the recommended 32; 6 in quick mode).
    quick : bool
        Tiny data and training: a smoke test of the pipeline, not a measurement.
    mechanisms : bool
        Extract the mechanisms of every fitted model (on its held-out fold).
    data_seed : int
        Seed of the task datasets.
    scheduler, n_jobs, device, progress
        As for :func:`neuroalrnn.compare.compare` (``device="auto"``: train on a GPU where there is one).
    results_dir : path, optional
        Folder of per-fit results (one subfolder per task); a rerun resumes from it.
    out : path, optional
        netCDF file to write the results to (atomically).

    Returns
    -------
    xarray.Dataset
        Dims (task, model, fold, seed): ``score`` (the estimator's), every task's scores (NaN for the
        other tasks), the mechanism summaries ``"<mechanism>.<summary>"``, ``solved`` (1/0 by the
        task's criterion) and ``fit_time``; ``wall_time`` (task); coords ``n_relu`` (model),
        ``n_test``/``n_train`` (task, fold); attrs ``config`` (JSON of every task's settings),
        ``criterion`` (JSON), ``seeds``, ``quick``.

    Examples
    --------
    >>> res = run_study(["addition"], p_values=[0, 2], seeds=[0], quick=True)
    >>> res["solved"].dims, res["task"].values.tolist()
    (('task', 'model', 'fold', 'seed'), ['addition'])
    """
    from neuroalrnn.compare import compare
    from neuroalrnn.utils import atomic_write

    tasks = list(tasks)
    unknown = [t for t in tasks if t not in SUITE]
    if not tasks or unknown or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks: expected distinct names from {list(SUITE)}, got {tasks!r}")
    configs = {task: study_config(task, quick=quick, n_units=n_units) for task in tasks}
    m_values = {cfg["params"]["n_units"] for cfg in configs.values()}
    if len(m_values) > 1:
        raise ValueError(f"n_units: the tasks' recommended sizes differ ({sorted(m_values)}); give n_units")
    M = m_values.pop()
    ps = _p_values(p_values, M)
    parts, walls = [], []
    for task in tasks:
        cfg = configs[task]
        data = dict(cfg["data"])
        ds = make_task(task, data.pop("n_trials"), seed=data_seed, **data)
        models = {f"P={p}": {**cfg["params"], "n_relu": p} for p in ps}
        scoring = {name: name for name in cfg["scoring"]}
        if mechanisms:
            scoring.update(mechanism_scorers(task))
        where = None if results_dir is None else Path(results_dir) / task
        if progress:
            print(f"study: {task} ({ds.sizes['trial']} trials), P = {ps}, seeds {list(seeds)}", flush=True)
        start = time.perf_counter()
        res = compare(ds, models, cv=cv, seeds=seeds, scoring=scoring, scheduler=scheduler, n_jobs=n_jobs,
                      device=device, results_dir=where, progress=progress)
        walls.append(time.perf_counter() - start)
        crit = cfg["criterion"]
        res["solved"] = xr.DataArray(is_solved(task, res[crit["scorer"]].values), dims=res["score"].dims)
        res.attrs = {}  # the study's attrs replace compare's; the variables keep theirs (greater_is_better)
        parts.append(res)
    joined = xr.concat(_union_variables(parts), dim="task", coords="different", compat="equals", join="outer")
    joined = joined.assign_coords(task=tasks)
    joined["wall_time"] = ("task", np.asarray(walls))
    joined.attrs = {"config": json.dumps(configs, default=repr), "seeds": np.asarray(list(seeds), dtype=int),
                    "criterion": json.dumps({t: c["criterion"] for t, c in configs.items()}),
                    "quick": int(quick), "cv": repr(cv), "data_seed": int(data_seed),
                    "title": "neuroalrnn nonlinearity study"}
    if out is not None:
        with atomic_write(Path(out)) as tmp:
            joined.to_netcdf(tmp)
    return joined

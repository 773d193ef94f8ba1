"""Adapter from a neurogym ``TrialEnv`` to a TrialDataset that keeps trials apart.

neurogym's own ``Dataset`` concatenates trials into one long stream and drops
the per-trial info; here every ``env.new_trial()`` becomes one trial of the
dataset (NaN-padded to the longest, with ``mask`` from the true lengths), and
the trial-info dict and period boundaries become trial coords.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from neuroalrnn.schema import from_arrays


def from_neurogym(env: Any, n_trials: int, seed: int | None = None, *,
                  targets: str = "onehot") -> xr.Dataset:
    """Sample ``n_trials`` trials of a neurogym task into a TrialDataset.

    Parameters
    ----------
    env : neurogym.TrialEnv (or a gymnasium wrapper around one)
        Needs ``new_trial()``, and after it ``ob`` (time, obs), ``gt`` and ``dt`` (ms).
    n_trials : int
    seed : int, optional
        Seeds the env (``env.seed(seed)``, or ``env.reset(seed=seed)`` when
        the env has no ``seed`` method), so the same seed gives the same trials.
    targets : {'onehot', 'index'}
        ``'onehot'``: integer ground truth ``gt`` (time,) becomes a one-hot
        (trial, time, output) array over the ``action_space.n`` actions
        (``output`` labels are the action names where the env provides them);
        ``'index'``: the ground truth as given, one float column
        ``output='gt'`` (or the env's own columns when ``gt`` is 2-D).

    Returns
    -------
    xarray.Dataset
        ``inputs`` from ``env.ob``, ``targets`` from ``env.gt``, ``dt`` in
        seconds (``env.dt`` / 1000), time 0 at trial start; trial coords from
        ``env.trial`` (scalar entries; a fixed-length tuple/array ``x`` becomes
        ``x_0``, ``x_1``...) plus ``<period>_start``/``<period>_end`` in seconds.

    Examples
    --------
    >>> import neurogym as ngym                                  # doctest: +SKIP
    >>> env = ngym.make("PerceptualDecisionMaking-v0", dt=20)    # doctest: +SKIP
    >>> ds = from_neurogym(env, n_trials=50, seed=0)              # doctest: +SKIP
    """
    if isinstance(n_trials, (bool, np.bool_)) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ValueError(f"n_trials: expected a positive integer, got {n_trials!r}")
    if targets not in ("onehot", "index"):
        raise ValueError(f"targets: expected 'onehot' or 'index', got {targets!r}")
    task = getattr(env, "unwrapped", env)
    for attr in ("new_trial", "dt"):
        if not hasattr(task, attr):
            raise TypeError(f"env: expected a neurogym TrialEnv with `{attr}`, got {type(env).__name__}")
    # a neurogym TrialWrapper defines its own new_trial; gymnasium's generic wrappers do not
    new_trial = env.new_trial if env is not task and hasattr(type(env), "new_trial") else task.new_trial
    if seed is not None:
        if hasattr(task, "seed"):
            task.seed(int(seed))
        else:
            env.reset(seed=int(seed))
    obs, gts, infos, periods = [], [], [], []
    for i in range(n_trials):
        info = new_trial()
        info = dict(info if isinstance(info, dict) else getattr(task, "trial", {}) or {})
        ob, gt = np.asarray(task.ob, dtype=float), np.asarray(task.gt)
        if ob.ndim != 2 or ob.shape[0] < 1:
            raise ValueError(f"env.ob: trial {i} has shape {ob.shape}; expected (time, n_obs)")
        if gt.shape[0] != ob.shape[0]:
            raise ValueError(f"env.gt: trial {i} has {gt.shape[0]} steps, env.ob has {ob.shape[0]}")
        obs.append(ob), gts.append(gt), infos.append(info)
        periods.append({p: (getattr(task, "start_t", {})[p], getattr(task, "end_t", {})[p])
                        for p in getattr(task, "start_t", {})})
    dt = float(task.dt) / 1000.0
    target_arrays, output_names = _targets(gts, task, targets)
    coords = _info_coords(infos)
    for p in periods[0]:
        if all(p in q for q in periods):
            coords[f"{p}_start"] = np.array([q[p][0] for q in periods], dtype=float) / 1000.0
            coords[f"{p}_end"] = np.array([q[p][1] for q in periods], dtype=float) / 1000.0
    attrs = {"source": f"neurogym:{type(task).__name__}", "source_format": "neurogym",
             "targets_format": targets}
    return from_arrays(inputs=obs, targets=target_arrays, dt=dt, align_event="trial_start",
                       trial_coords=coords, input_names=_space_names(getattr(task, "observation_space", None),
                                                                     obs[0].shape[1]),
                       output_names=output_names, attrs=attrs)


def _targets(gts, task, mode):
    if gts[0].ndim == 2:  # continuous targets: use as given
        return [g.astype(float) for g in gts], None
    if mode == "index":
        return [g.astype(float)[:, None] for g in gts], np.array(["gt"])
    space = getattr(task, "action_space", None)
    n = int(getattr(space, "n", 0) or 0)
    top = max(int(g.max()) for g in gts) + 1
    n = max(n, top)
    if any(not np.issubdtype(g.dtype, np.integer) and not np.all(g == np.round(g)) for g in gts):
        raise ValueError("env.gt: expected integer actions for one-hot targets; use targets='index'")
    onehot = [np.eye(n)[g.astype(int)] for g in gts]
    return onehot, _space_names(space, n)


def _space_names(space, n):
    """Per-channel names from a neurogym space's ``name`` dict, e.g. {'fixation': 0, 'stimulus': [1, 2]}."""
    mapping = getattr(space, "name", None)
    labels = [str(i) for i in range(n)]
    if not isinstance(mapping, dict):
        return np.array(labels)
    for key, idx in mapping.items():
        idx = np.atleast_1d(np.asarray(list(idx) if isinstance(idx, range) else idx)).astype(int)
        for j, k in enumerate(idx):
            if 0 <= k < n:
                labels[k] = str(key) if idx.size == 1 else f"{key}_{j}"
    return np.array(labels) if len(set(labels)) == n else np.array([str(i) for i in range(n)])


def _info_coords(infos):
    coords = {}
    keys = [k for k in infos[0] if all(k in info for info in infos)]
    for key in keys:
        values = [info[key] for info in infos]
        arrays = [np.asarray(v) for v in values]
        if all(a.ndim == 0 for a in arrays):
            kinds = {a.dtype.kind for a in arrays}
            if kinds <= set("biuf"):
                coords[str(key)] = np.array([a.item() for a in arrays])
            elif kinds <= {"U", "S"}:
                coords[str(key)] = np.array([str(a) for a in arrays])
        elif all(a.ndim == 1 and a.shape == arrays[0].shape and a.dtype.kind in "biuf" for a in arrays):
            stacked = np.stack(arrays)
            for j in range(stacked.shape[1]):
                coords[f"{key}_{j}"] = stacked[:, j]
    return coords

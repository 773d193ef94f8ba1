"""Mechanisms of task-trained AL-RNNs, each measured on one fitted model and its task's trials.

Each function runs the model on the trials of its task and returns an ``xarray.Dataset``: the
details (per unit, per context, per memory state) and scalar summaries, among them one flag
saying whether the mechanism is shown, so that a study can count the fraction of seeds that
show it. The definitions (thresholds included) are in each docstring.

* :func:`marker_gating`: ReLU units that switch at marker inputs (addition problem).
* :func:`context_attractors`: per-context fixed points, their subregions and slow modes, and the
  modes' alignment with the input directions (stimulus selection).
* :func:`memory_attractors`: whether each memory state is held at its own stable fixed point, by
  transients, or on cycles (flip-flop, delayed match).
* :func:`region_sharing`: how much the tasks of a multi-task model share linear subregions.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from neuroalrnn.analysis._cycles import cycles
from neuroalrnn.analysis._fixed_points import fixed_points
from neuroalrnn.analysis._pwl import model_params
from neuroalrnn.analysis.alignment import cosine_table
from neuroalrnn.analysis.regions import region_codes

__all__ = ["model_states", "marker_gating", "context_attractors", "memory_attractors", "region_sharing"]


def model_states(model, ds: xr.Dataset) -> np.ndarray:
    """Latent states (trial, time, latent) of ``model`` driven by the trials' inputs, NaN outside the mask.

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import addition
    >>> model_states(ALRNN(4, 1, n_inputs=2, n_outputs=1, seed=0), addition(3, T=10, seed=0)).shape
    (3, 10, 4)
    """
    mask = ds["mask"].values
    x = np.where(mask[:, :, None], ds["inputs"].values, 0.0)
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        states = model.simulate(torch.zeros(len(x), model.n_units, dtype=dtype), inputs=torch.as_tensor(x, dtype=dtype))
    return np.where(mask[:, :, None], states.cpu().double().numpy(), np.nan)


def _relu_on(states, n_relu):
    return states[..., states.shape[-1] - n_relu:] > 0


def marker_gating(model, ds: xr.Dataset, *, marker: str = "marker", threshold: float = 0.5) -> xr.Dataset:
    """ReLU units that open (or close) at the marker inputs, and the region sequence of each trial.

    A ReLU unit's selectivity is P(on | marker step) - P(on | other valid step); a unit with
    ``|selectivity| >= threshold`` is a gate. ``gating`` is shown when at least one ReLU unit
    is a gate. ``switches_at_markers`` is the fraction of region switches that happen at a
    marker step or the step after it.

    Returns
    -------
    xarray.Dataset
        ``selectivity``, ``p_on_marker``, ``p_on_other`` (relu_unit), ``region`` (trial, time:
        the region sequence, -1 outside the mask), ``n_switches`` (trial) and scalars
        ``max_selectivity`` (NaN for P = 0), ``n_gates``, ``switches_at_markers``, ``gating``.

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import addition
    >>> g = marker_gating(ALRNN(4, 1, n_inputs=2, n_outputs=1, seed=0), addition(5, T=10, seed=0))
    >>> g["selectivity"].dims, bool(g["gating"]) in (True, False)
    (('relu_unit',), True)
    """
    P = model.n_relu
    states = model_states(model, ds)
    valid = ds["mask"].values
    at = (ds["inputs"].sel(input=marker).fillna(0).values > 0) & valid
    other = valid & ~at
    on = _relu_on(states, P)
    p_marker = on[at].mean(0) if at.any() else np.full(P, np.nan)
    p_other = on[other].mean(0) if other.any() else np.full(P, np.nan)
    sel = p_marker - p_other
    codes = region_codes(states, P, mask=valid) if P else np.where(valid, 0, -1)
    switch = (codes[:, 1:] != codes[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    near = at[:, 1:] | at[:, :-1]  # the marker step or the step after it
    n_gates = int((np.abs(sel) >= threshold).sum())
    return xr.Dataset(
        {"selectivity": ("relu_unit", sel), "p_on_marker": ("relu_unit", p_marker),
         "p_on_other": ("relu_unit", p_other), "region": (("trial", "time"), codes),
         "n_switches": ("trial", switch.sum(1)),
         "max_selectivity": np.abs(sel).max() if P else np.nan, "n_gates": n_gates,
         "switches_at_markers": (switch & near).sum() / switch.sum() if switch.any() else np.nan,
         "gating": n_gates > 0},
        coords={"relu_unit": np.arange(model.n_units - P, model.n_units), "trial": ds["trial"].values,
                "time": ds["time"].values}, attrs={"threshold": threshold})


def _attracting(fp):
    """Real points that attract or are marginal (|lambda| <= 1.001: a line attractor's points)."""
    return fp["real"].values & (fp["spectral_radius"].values <= 1.001)


def _fixed_points(model, inputs, states):
    regions = "auto" if model.n_relu <= 12 else "search"
    return fixed_points(model, inputs, regions=regions, states=states, n_restarts=50, max_iter=20)


def context_attractors(model, ds: xr.Dataset, *, streams=("motion", "color"), n_steps: int = 500) -> xr.Dataset:
    """Per-context fixed points, their subregions and slow modes (context-dependent selection).

    For each context the constant input of the stimulus epoch without evidence (fixation and the
    context cue on, both streams 0) defines an autonomous map. Its attracting real fixed points
    (spectral radius <= 1.001) are found (seeded by the states of that context's trials), and the
    left eigenvector of the slowest mode of the first is compared with the input directions of
    the two streams (columns of C). The state of each trial just before its stimulus onset (or
    at its end without a ``stim_onset`` coord) is also run on under that input for ``n_steps``:
    a norm above 1e6 counts as diverging.

    Shown: ``own_subregions`` (every context has an attracting fixed point and no region holds
    one of two contexts), ``selective_modes`` (in every context the slow mode is more aligned
    with the cued stream than with the other), ``rule_based_integration`` (both).

    Returns
    -------
    xarray.Dataset with dim ``ctx``
        ``n_attractors``, ``region`` (of the first attractor, -1 if none), ``slowest_abs``,
        ``align_relevant``, ``align_irrelevant``, ``diverging`` (fraction of trials); scalars
        ``missing_attractor``, ``own_subregions``, ``selective_modes``, ``rule_based_integration``.

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import stimulus_selection
    >>> out = context_attractors(ALRNN(6, 2, n_inputs=5, n_outputs=1, seed=0), stimulus_selection(8, seed=0))
    >>> out["ctx"].values.tolist()
    ['motion', 'color']
    """
    names = ds["input"].values.tolist()
    C = model_params(model)["C"]
    states = model_states(model, ds)
    steps = ds["mask"].values.sum(1) - 1
    if "stim_onset" in ds.coords:
        steps = np.searchsorted(ds["time"].values, ds["stim_onset"].values - 1e-9 * ds.attrs["dt"]) - 1
    ends = states[np.arange(len(states)), np.maximum(steps, 0)]
    rows = {k: [] for k in ("n_attractors", "region", "slowest_abs", "align_relevant", "align_irrelevant",
                            "diverging")}
    sets = []
    for c, ctx in enumerate(streams):
        s = np.zeros(len(names))
        s[names.index("fixation")] = 1.0
        s[names.index(f"ctx_{ctx}")] = 1.0
        trials = ds["context"].values == ctx
        seeds = states[trials][np.isfinite(states[trials]).all(-1)][::5]
        fp = _fixed_points(model, s, seeds)
        good = np.flatnonzero(_attracting(fp))
        sets.append(set(fp["region"].values[good].tolist()))
        rows["n_attractors"].append(len(good))
        rows["region"].append(int(fp["region"].values[good[0]]) if len(good) else -1)
        rows["slowest_abs"].append(float(fp["slowest_abs"].values[good[0]]) if len(good) else np.nan)
        if len(good):
            left = np.real(fp["slow_left"].values[good[0]])
            cos = np.abs(cosine_table(left[None], C[:, [names.index(k) for k in streams]].T).values[0])
            rows["align_relevant"].append(cos[c]), rows["align_irrelevant"].append(cos[1 - c])
        else:
            rows["align_relevant"].append(np.nan), rows["align_irrelevant"].append(np.nan)
        dtype = next(model.parameters()).dtype
        with torch.no_grad():
            run = model.simulate(torch.as_tensor(ends[trials], dtype=dtype),
                                 inputs=torch.as_tensor(np.broadcast_to(s, (trials.sum(), n_steps, len(s))).copy(),
                                                        dtype=dtype))
        norm = np.linalg.norm(run[:, -1].double().numpy(), axis=-1)
        rows["diverging"].append(float(np.mean(~(norm < 1e6))) if trials.any() else np.nan)
    own = all(rows["n_attractors"]) and not (sets[0] & sets[1])
    rel, irr = np.array(rows["align_relevant"]), np.array(rows["align_irrelevant"])
    selective = bool(np.all(rel > irr))  # NaN (no attractor) compares False
    out = xr.Dataset({k: ("ctx", v) for k, v in rows.items()}, coords={"ctx": list(streams)})
    return out.assign(missing_attractor=not all(rows["n_attractors"]), own_subregions=bool(own),
                      selective_modes=selective, rule_based_integration=bool(own and selective))


def _hold_points(ds: xr.Dataset, task: str):
    """The trials used, the step where each holds its memory, the memory label per trial, the hold input."""
    names = ds["input"].values.tolist()
    last = ds["mask"].values.sum(1) - 1
    if task == "flipflop":  # trials whose every bit has been set by the end
        bits = np.sign(ds["targets"].values[np.arange(len(last)), last])
        use = np.flatnonzero((bits != 0).all(1))
        return use, last[use], [tuple(row) for row in bits[use].astype(int).tolist()], np.zeros(len(names))
    stim = np.nan_to_num(ds["inputs"].values[:, :, 1:]).any(-1)  # delayed match: sample, then test
    onsets = [np.flatnonzero(np.diff(np.r_[0, row.astype(int)]) == 1) for row in stim]
    if any(len(o) < 2 for o in onsets):
        raise ValueError("ds: every delayed-match trial needs a sample and a test apart (a delay of at least 1 step)")
    hold = np.array([o[1] - 1 for o in onsets])  # the last delay step before the test
    hold_input = np.zeros(len(names))
    hold_input[names.index("fixation")] = 1.0
    return np.arange(len(hold)), hold, list(ds["sample"].values.tolist()), hold_input


def memory_attractors(model, ds: xr.Dataset, *, task: str | None = None, n_steps: int = 1000,
                      max_cycle: int = 4) -> xr.Dataset:
    """How each memory state is held: at its own stable fixed point, by transients, or on cycles.

    Memory states are the output patterns at each trial's end (flip-flop: the sign of every
    bit, on the trials where every bit has been set) or the sample identity at the end of the
    delay (delayed match). The states there are run on for ``n_steps`` under the holding input
    (no pulses; fixation only), and a memory
    state is *held at a fixed point* when all its trials come to rest (last step moves less
    than 1e-6 of the state's norm) at one point that no other memory state reaches.
    Memories not held at a fixed point are carried by memory-dependent transients (or cycles).
    The attracting real fixed points and stable cycles (order 2..``max_cycle``) of the
    holding input are counted with the states as seeds.

    Returns
    -------
    xarray.Dataset with dim ``memory``
        ``n_trials``, ``at_fixed_point`` (bool); scalars ``n_memories``, ``fixed_point_memory``
        (fraction of memories at their own fixed point), ``transient_memory`` (the rest),
        ``n_attractors``, ``n_stable_cycles``.

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import flipflop
    >>> out = memory_attractors(ALRNN(6, 2, n_inputs=3, n_outputs=3, seed=0), flipflop(6, T=20, seed=0))
    >>> 0 <= float(out["fixed_point_memory"]) <= 1
    True
    """
    task = task or ds.attrs.get("task")
    if task not in ("flipflop", "delayed_match"):
        raise ValueError(f"task: expected 'flipflop' or 'delayed_match' (or the dataset's attrs['task']), got {task!r}")
    use, hold, labels, s = _hold_points(ds, task)
    if not len(use):
        raise ValueError("ds: no trial holds a complete memory (every flip-flop bit set); use longer trials")
    start = model_states(model, ds)[use, hold]
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        run = model.simulate(torch.as_tensor(start, dtype=dtype),
                             inputs=torch.as_tensor(np.broadcast_to(s, (len(hold), n_steps, len(s))).copy(),
                                                    dtype=dtype)).double().numpy()
    end = run[:, -1]
    scale = np.maximum(np.linalg.norm(end, axis=-1), 1.0)
    rest = np.linalg.norm(run[:, -1] - run[:, -2], axis=-1) < 1e-6 * scale
    memories = sorted(set(labels), key=str)
    lab = np.array([memories.index(m) for m in labels])
    at_fp = []
    for k in range(len(memories)):
        mine, others = end[lab == k], end[lab != k]
        tol = 1e-3 * max(1.0, float(np.abs(mine).max()))
        same = np.all(rest[lab == k]) and np.ptp(mine, axis=0).max() < tol
        apart = not len(others) or np.linalg.norm(others - mine[0], axis=-1).min() > tol
        at_fp.append(bool(same and apart))
    fp = _fixed_points(model, s, run[:, :: max(1, n_steps // 20)].reshape(-1, model.n_units))
    found = cycles(model, max_cycle, s, min_order=2, states=run[:, :: max(1, n_steps // 50)],
                   n_restarts=10, max_iter=10) if model.n_relu else []
    frac = float(np.mean(at_fp))
    return xr.Dataset(
        {"n_trials": ("memory", np.bincount(lab, minlength=len(memories))), "at_fixed_point": ("memory", at_fp),
         "n_memories": len(memories), "fixed_point_memory": frac, "transient_memory": 1.0 - frac,
         "n_attractors": int(_attracting(fp).sum()),
         "n_stable_cycles": int(sum(bool(c["stable"]) for c in found))},
        coords={"memory": [str(m) for m in memories]}, attrs={"task": task, "n_steps": n_steps})


def region_sharing(model, ds: xr.Dataset, *, by: str = "task", min_occupancy: float = 0.05) -> xr.Dataset:
    """How much the tasks (or any trial groups) of one model share linear subregions.

    A group *uses* the regions holding at least ``min_occupancy`` of its valid steps.
    ``overlap`` is the mean Jaccard index of the used-region sets over pairs of groups;
    ``shared_fraction`` the mean over groups of the fraction of their steps spent in regions
    that another group also uses. ``shared`` is shown when ``shared_fraction >= 0.5``
    (most of each task's time in regions other tasks use); all NaN for P = 0 (one region).

    Returns
    -------
    xarray.Dataset
        ``occupancy`` (group, region), scalars ``n_regions`` (used by any group),
        ``overlap``, ``shared_fraction``, ``shared``.

    Examples
    --------
    >>> from neuroalrnn import ALRNN
    >>> from neuroalrnn.tasks import multitask
    >>> ds = multitask(12, task_kwargs={"addition": {"T": 10}, "flipflop": {"T": 10}}, seed=0)
    >>> out = region_sharing(ALRNN(6, 2, n_inputs=ds.sizes["input"], n_outputs=ds.sizes["output"], seed=0), ds)
    >>> out["occupancy"].dims
    ('group', 'region')
    """
    P = model.n_relu
    valid = ds["mask"].values
    codes = region_codes(model_states(model, ds), P, mask=valid) if P else np.where(valid, 0, -1)
    groups = sorted(set(ds[by].values.tolist()))
    regions = np.unique(codes[valid])
    occ = np.array([[np.mean(codes[ds[by].values == g][valid[ds[by].values == g]] == r) for r in regions]
                    for g in groups])
    used = occ >= min_occupancy
    pairs = [(i, j) for i in range(len(groups)) for j in range(i + 1, len(groups))]
    jac = [(used[i] & used[j]).sum() / max((used[i] | used[j]).sum(), 1) for i, j in pairs]
    by_others = np.array([used[np.arange(len(groups)) != i].any(0) for i in range(len(groups))])
    shared_fraction = float(np.mean((occ * by_others).sum(1))) if len(groups) > 1 else np.nan
    nan = not P or len(groups) < 2
    return xr.Dataset(
        {"occupancy": (("group", "region"), occ), "n_regions": int(used.any(0).sum()),
         "overlap": np.nan if nan else float(np.mean(jac)),
         "shared_fraction": np.nan if nan else shared_fraction,
         "shared": np.nan if nan else float(shared_fraction >= 0.5)},
        coords={"group": [str(g) for g in groups], "region": regions}, attrs={"by": by, "min_occupancy": min_occupancy})

"""Context-dependent stimulus selection (Mante, Sussillo, Shenoy & Newsome 2013).

Every trial runs through five epochs: fixation, context cue, stimulus, delay
and response. Two noisy streams (``motion`` and ``color``) with signed
coherences are shown at once during the stimulus epoch; a one-hot context cue
says which of them counts. At the go cue (the offset of the ``fixation``
input) the network reports the sign of the cued stream's coherence.

Design of the targets
---------------------
``targets`` has one output, ``choice``: 0 before the response epoch (hold
still) and +1/-1 (the correct choice) during it, so plain MSE training works.
Where the loss applies is a separate per-step variable ``loss_weight``
(trial, time): ``fixation_weight`` before the response epoch (0 by default,
i.e. the output is free while the evidence comes in), ``1`` during the
response epoch and NaN on ragged padding. ``mask`` marks valid steps only.
The model's decision is read at response time: the sign of its mean output
over the response epoch (``neuroalrnn.fit.task``). Epoch onsets are trial
coords in seconds (``cue_onset``, ``stim_onset``, ``stim_offset``,
``response_onset``) relative to ``trial_start``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import xarray as xr

from neuroalrnn.schema import from_arrays, validate
from neuroalrnn.tasks.memory import _int
from neuroalrnn.utils import check_number, check_random_state

INPUT_NAMES = ("fixation", "ctx_motion", "ctx_color", "motion", "color")
CONTEXTS = ("motion", "color")
DEFAULT_TIMING = {"fixation": 0.2, "cue": 0.2, "stimulus": 1.0, "delay": 0.2, "response": 0.25}
_CUE_UNTIL = ("cue", "stimulus", "delay", "trial")


def stimulus_selection(n_trials: int, *, dt: float = 0.05, timing: Mapping | None = None,
                       coherences: Sequence[float] = (0.05, 0.15, 0.5), noise: float = 1.0,
                       cue_until: str = "stimulus", fixation_weight: float = 0.0,
                       seed=None) -> xr.Dataset:
    """Generate trials of the context-dependent stimulus-selection task.

    Parameters
    ----------
    n_trials : int
        Number of trials.
    dt : float
        Step size in seconds.
    timing : mapping, optional
        Epoch durations in seconds, keys ``fixation``, ``cue``, ``stimulus``,
        ``delay``, ``response`` (defaults in ``DEFAULT_TIMING``: 20 stimulus
        steps at ``dt=0.05``). A ``(low, high)`` pair draws the duration
        uniformly per trial (jitter), giving ragged trials with a mask.
    coherences : sequence of float
        Unsigned coherences; each stream draws one with a random sign.
        A zero coherence gets a random correct choice.
    noise : float
        Standard deviation of the per-step Gaussian noise added to each stream
        (the ideal observer sums these per-step values).
    cue_until : {"cue", "stimulus", "delay", "trial"}
        The epoch up to whose end the context cue stays on.
    fixation_weight : float
        Loss weight of the steps before the response epoch (target 0).
    seed : None, int or numpy Generator

    Returns
    -------
    xarray.Dataset
        A TrialDataset with ``inputs`` (fixation, ctx_motion, ctx_color,
        motion, color), ``targets`` (choice), ``mask``, ``loss_weight`` and
        trial coords ``context``, ``coh_motion``, ``coh_color`` (signed),
        ``coh_relevant``, ``coh_irrelevant``, ``correct_choice`` (+1/-1),
        ``congruent`` and the epoch onsets in seconds.

    Examples
    --------
    >>> ds = stimulus_selection(8, seed=0)
    >>> ds["inputs"].sizes["input"], sorted(set(ds["context"].values.tolist()))
    (5, ['color', 'motion'])
    """
    n_trials = _int("n_trials", n_trials)
    dt = check_number("dt", dt, 0, open_low=True, expected="a positive number of seconds")
    noise = check_number("noise", noise, 0, expected="a non-negative number")
    fixation_weight = check_number("fixation_weight", fixation_weight, 0, expected="a non-negative number")
    if cue_until not in _CUE_UNTIL:
        raise ValueError(f"cue_until: expected one of {_CUE_UNTIL}, got {cue_until!r}")
    coh = np.asarray(coherences)
    expected = "a non-empty list of non-negative numbers"
    if coh.dtype.kind not in "iuf":
        raise TypeError(f"coherences: expected {expected}, got {type(coherences).__name__} {coherences!r}")
    coh = coh.astype(float)
    if coh.ndim != 1 or not coh.size or not np.isfinite(coh).all() or (coh < 0).any():
        raise ValueError(f"coherences: expected {expected}, got {coherences!r}")
    rng = check_random_state(seed)
    steps = _draw_steps(timing, dt, n_trials, rng)

    context = rng.integers(2, size=n_trials)
    signed = rng.choice(coh, size=(n_trials, 2)) * rng.choice([-1.0, 1.0], size=(n_trials, 2))
    relevant = signed[np.arange(n_trials), context]
    tie = rng.choice([-1.0, 1.0], size=n_trials)  # correct choice for zero coherence
    choice = np.where(relevant != 0, np.sign(relevant), tie)
    sgn = np.sign(signed)
    congruent = (sgn[:, 0] == sgn[:, 1]) & (sgn[:, 0] != 0)

    inputs, targets, weights = [], [], []
    onsets = {k: np.zeros(n_trials) for k in ("cue_onset", "stim_onset", "stim_offset", "response_onset")}
    for i in range(n_trials):
        fix, cue, stim, delay, resp = steps[:, i]
        edges = np.cumsum([0, fix, cue, stim, delay, resp])
        T = edges[-1]
        x = np.zeros((T, len(INPUT_NAMES)))
        x[: edges[4], 0] = 1.0
        cue_end = {"cue": edges[2], "stimulus": edges[3], "delay": edges[4], "trial": T}[cue_until]
        x[edges[1]:cue_end, 1 + context[i]] = 1.0
        n_stim = edges[3] - edges[2]
        x[edges[2]:edges[3], 3:5] = signed[i] + noise * rng.standard_normal((n_stim, 2))
        y = np.zeros((T, 1))
        y[edges[4]:, 0] = choice[i]
        w = np.full(T, float(fixation_weight))
        w[edges[4]:] = 1.0
        inputs.append(x), targets.append(y), weights.append(w)
        for key, e in zip(onsets, edges[1:5]):
            onsets[key][i] = e * dt

    coords = {"context": np.array(CONTEXTS)[context], "coh_motion": signed[:, 0], "coh_color": signed[:, 1],
              "coh_relevant": relevant, "coh_irrelevant": signed[np.arange(n_trials), 1 - context],
              "correct_choice": choice.astype(int), "congruent": congruent, **onsets}
    attrs = {"source": "neuroalrnn.tasks.stimulus_selection", "task": "stimulus_selection",
             "noise": float(noise), "coherences": coh, "cue_until": cue_until}
    ds = from_arrays(inputs=inputs, targets=targets, dt=dt, input_names=list(INPUT_NAMES),
                     output_names=["choice"], trial_coords=coords, attrs=attrs)
    lw = np.full(ds["mask"].shape, np.nan)
    for i, w in enumerate(weights):
        lw[i, : len(w)] = w
    return ds.assign(loss_weight=(("trial", "time"), lw))


def _draw_steps(timing, dt, n_trials, rng):
    """Epoch lengths in steps, shape (5, n_trials)."""
    if timing is not None and not isinstance(timing, Mapping):
        raise TypeError(f"timing: expected a mapping of epoch durations in seconds, got {type(timing).__name__}")
    timing = dict(DEFAULT_TIMING, **(timing or {}))
    unknown = set(timing) - set(DEFAULT_TIMING)
    if unknown:
        raise ValueError(f"timing: unknown epochs {sorted(unknown)}; expected keys {list(DEFAULT_TIMING)}")
    out = []
    for name in DEFAULT_TIMING:
        value = np.asarray(timing[name])
        if value.dtype.kind not in "iuf":
            raise TypeError(f"timing[{name!r}]: expected seconds or a (low, high) pair, got {timing[name]!r}")
        value = value.astype(float)
        if value.shape == ():
            secs = np.full(n_trials, float(value))
        elif value.shape == (2,) and value[0] <= value[1]:
            secs = rng.uniform(value[0], value[1], size=n_trials)
        else:
            raise ValueError(f"timing[{name!r}]: expected seconds or a (low, high) pair, got {timing[name]!r}")
        n = np.round(secs / dt).astype(int)
        low = 0 if name in ("cue", "delay") else 1
        if (n < low).any() or not np.isfinite(secs).all():
            raise ValueError(f"timing[{name!r}]: expected at least {low} step(s) of dt={dt}, got {timing[name]!r}")
        out.append(n)
    return np.array(out)


def choice_accuracy(ds: xr.Dataset, choice) -> xr.Dataset:
    """Summarise +1/-1 choices on stimulus-selection trials.

    Parameters
    ----------
    ds : xarray.Dataset
        Trials with the coords of ``stimulus_selection``.
    choice : array-like (trial,)
        The choices (+1/-1).

    Returns
    -------
    xarray.Dataset
        ``choice`` and ``correct`` (trial, with all trial coords),
        ``accuracy`` (ctx, coherence) where ``ctx`` is the cued context
        ('motion', 'color'; the name ``context`` is taken by the trial coord)
        and coherence the unsigned coherence of the cued stream,
        ``n_trials`` (ctx, coherence) and
        scalars ``overall``, ``congruent_accuracy``, ``incongruent_accuracy``.

    Examples
    --------
    >>> ds = stimulus_selection(50, seed=1)
    >>> float(choice_accuracy(ds, ds["correct_choice"].values)["overall"])
    1.0
    """
    for name in ("context", "coh_relevant", "correct_choice", "congruent"):
        if name not in ds.coords:
            raise ValueError(f"ds: missing trial coord {name!r}; expected a stimulus_selection dataset")
    choice = np.asarray(choice, dtype=float)
    if choice.shape != (ds.sizes["trial"],):
        raise ValueError(f"choice: expected shape ({ds.sizes['trial']},), got {choice.shape}")
    # a recording's own choice/correct coords would clash with the summary's variables of those names
    trial_coords = {k: v for k, v in ds.coords.items()
                    if v.dims[:1] == ("trial",) and v.ndim == 1 and k not in ("choice", "correct")}
    out = xr.Dataset({"choice": ("trial", choice)}, coords=trial_coords)
    correct = choice == ds["correct_choice"].values
    out["correct"] = ("trial", correct)
    abs_coh = np.abs(ds["coh_relevant"].values)
    levels = np.unique(abs_coh)
    acc = np.full((len(CONTEXTS), len(levels)), np.nan)
    count = np.zeros_like(acc, dtype=int)
    ctx = ds["context"].values
    for a, c in enumerate(CONTEXTS):
        for b, lev in enumerate(levels):
            sel = (ctx == c) & (abs_coh == lev)
            count[a, b] = sel.sum()
            if sel.any():
                acc[a, b] = correct[sel].mean()
    out["accuracy"] = (("ctx", "coherence"), acc)
    out["n_trials"] = (("ctx", "coherence"), count)
    out = out.assign_coords(ctx=list(CONTEXTS), coherence=levels)
    cong = ds["congruent"].values.astype(bool)
    out["overall"] = float(correct.mean())
    out["congruent_accuracy"] = float(correct[cong].mean()) if cong.any() else np.nan
    out["incongruent_accuracy"] = float(correct[~cong].mean()) if (~cong).any() else np.nan
    return out


def ideal_observer(ds: xr.Dataset) -> xr.Dataset:
    """Choices of the ideal observer: the sign of the cued stream summed over the trial.

    The stimulus streams are zero outside the stimulus epoch, so the sum over
    the valid steps is the sum over the stimulus epoch.

    Returns
    -------
    xarray.Dataset
        As ``choice_accuracy``, plus ``evidence`` (trial), the summed stream.

    Examples
    --------
    >>> ds = stimulus_selection(2000, seed=0)
    >>> 0.72 < float(ideal_observer(ds)["overall"]) < 0.83
    True
    """
    validate(ds)
    if "inputs" not in ds or not set(CONTEXTS) <= set(ds["input"].values.tolist()):
        raise ValueError("ds: expected 'inputs' with 'motion' and 'color' channels")
    summed = ds["inputs"].sel(input=list(CONTEXTS)).fillna(0.0).sum("time").values  # (trial, 2)
    idx = (ds["context"].values == CONTEXTS[1]).astype(int)
    evidence = summed[np.arange(len(idx)), idx]
    out = choice_accuracy(ds, np.where(evidence >= 0, 1.0, -1.0))
    out["evidence"] = ("trial", evidence)
    return out

"""Memory benchmarks: addition problem, copy, n-bit flip-flop, delayed match-to-sample, multi-task.

Durations are in steps (``dt`` only labels the time axis). Every generator
returns a TrialDataset with a ``loss_weight`` variable ((trial, time), or
(trial, time, output) for ``multitask``) that marks where the loss applies;
``mask`` marks valid (non-padding) steps.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import xarray as xr

from neuroalrnn.schema import from_arrays
from neuroalrnn.utils import check_random_state


def _int(name, value, low=1):
    """``value`` as an int >= ``low`` (also used by stimulus_selection), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _steps(name, value, rng, n, low=0):
    """A duration in steps: an int, or a (low, high) pair drawn per trial (inclusive)."""
    arr = np.asarray(value)
    if arr.shape == () and np.issubdtype(arr.dtype, np.integer) and arr >= low:
        return np.full(n, int(arr))
    if arr.shape == (2,) and np.issubdtype(arr.dtype, np.integer) and low <= arr[0] <= arr[1]:
        return rng.integers(arr[0], arr[1] + 1, size=n)
    raise ValueError(f"{name}: expected an integer >= {low} or a (low, high) integer pair, got {value!r}")


def _build(inputs, targets, weights, *, dt, input_names, output_names, coords, task, attrs=None):
    ds = from_arrays(inputs=inputs, targets=targets, dt=dt, input_names=input_names,
                     output_names=output_names, trial_coords=coords,
                     attrs={"source": f"neuroalrnn.tasks.{task}", "task": task, **(attrs or {})})
    lw = np.full(ds["mask"].shape + np.shape(weights[0])[1:], np.nan)
    for i, w in enumerate(weights):
        lw[i, : len(w)] = w
    dims = ("trial", "time") if lw.ndim == 2 else ("trial", "time", "output")
    return ds.assign(loss_weight=(dims, lw))


def addition(n_trials: int, T: int = 100, *, dt: float = 1.0, seed=None) -> xr.Dataset:
    """The addition problem: report the sum of the two marked values at the last step.

    Input ``value`` is uniform on [0, 1] at every step; input ``marker`` is 1 at
    one step in the first half and one in the second half before the last step
    (so that a model whose output is linear in its state can read the answer
    at the last step; an AL-RNN with one ReLU unit solves it exactly). The target ``sum``
    is scored at the last step only (``loss_weight``). Predicting the mean (1)
    gives the baseline MSE 1/6 ~ 0.167.

    Examples
    --------
    >>> ds = addition(4, T=20, seed=0)
    >>> ds["inputs"].shape, float(ds["loss_weight"].sum())
    ((4, 20, 2), 4.0)
    """
    n_trials, T = _int("n_trials", n_trials), _int("T", T, 4)
    rng = check_random_state(seed)
    values = rng.uniform(0, 1, size=(n_trials, T))
    first = rng.integers(0, T // 2, size=n_trials)
    second = rng.integers(T // 2, T - 1, size=n_trials)
    markers = np.zeros((n_trials, T))
    markers[np.arange(n_trials), first] = 1
    markers[np.arange(n_trials), second] = 1
    answer = values[np.arange(n_trials), first] + values[np.arange(n_trials), second]
    targets = np.zeros((n_trials, T, 1))
    targets[:, -1, 0] = answer
    weights = np.zeros((n_trials, T))
    weights[:, -1] = 1
    return _build(np.stack([values, markers], -1), targets, list(weights), dt=dt,
                  input_names=["value", "marker"], output_names=["sum"], task="addition",
                  coords={"answer": answer, "marker_1": first, "marker_2": second})


def copy_task(n_trials: int, *, n_symbols: int = 4, seq_len: int = 5, delay=10, dt: float = 1.0,
              seed=None) -> xr.Dataset:
    """Copy / delayed recall: repeat a sequence of symbols after a delay and a recall cue.

    ``seq_len`` one-hot symbols, ``delay`` blank steps (an int or a (low, high)
    pair: ragged trials), one step of the ``recall`` input, then ``seq_len``
    recall steps where the target is the sequence (one-hot, scored there only).

    Examples
    --------
    >>> ds = copy_task(3, seq_len=3, delay=2, seed=0)
    >>> ds.sizes["time"], ds["output"].values.tolist()
    (9, ['symbol_0', 'symbol_1', 'symbol_2', 'symbol_3'])
    """
    n_trials, n_symbols, seq_len = _int("n_trials", n_trials), _int("n_symbols", n_symbols, 2), _int("seq_len", seq_len)
    rng = check_random_state(seed)
    delays = _steps("delay", delay, rng, n_trials)
    seqs = rng.integers(0, n_symbols, size=(n_trials, seq_len))
    eye = np.eye(n_symbols)
    inputs, targets, weights = [], [], []
    for i in range(n_trials):
        T = 2 * seq_len + delays[i] + 1
        x, y, w = np.zeros((T, n_symbols + 1)), np.zeros((T, n_symbols)), np.zeros(T)
        x[:seq_len, :n_symbols] = eye[seqs[i]]
        x[seq_len + delays[i], n_symbols] = 1
        y[-seq_len:] = eye[seqs[i]]
        w[-seq_len:] = 1
        inputs.append(x), targets.append(y), weights.append(w)
    names = [f"symbol_{k}" for k in range(n_symbols)]
    return _build(inputs, targets, weights, dt=dt, input_names=names + ["recall"], output_names=names,
                  task="copy", coords={"sequence": seqs, "delay": delays})


def flipflop(n_trials: int, *, n_bits: int = 3, T: int = 100, p_flip: float = 0.05, dt: float = 1.0,
             seed=None) -> xr.Dataset:
    """n-bit flip-flop: each output holds the sign of the last pulse on its input.

    Pulses of +1/-1 arrive with probability ``p_flip`` per step and bit; the
    target is 0 before a bit's first pulse. Scored at every step.

    Examples
    --------
    >>> ds = flipflop(2, n_bits=2, T=30, seed=0)
    >>> ds["targets"].shape
    (2, 30, 2)
    """
    n_trials, n_bits, T = _int("n_trials", n_trials), _int("n_bits", n_bits), _int("T", T)
    if not 0 <= p_flip <= 1:
        raise ValueError(f"p_flip: expected a probability in [0, 1], got {p_flip!r}")
    rng = check_random_state(seed)
    pulse = (rng.random((n_trials, T, n_bits)) < p_flip) * rng.choice([-1.0, 1.0], size=(n_trials, T, n_bits))
    targets = np.zeros_like(pulse)
    state = np.zeros((n_trials, n_bits))
    for t in range(T):
        state = np.where(pulse[:, t] != 0, pulse[:, t], state)
        targets[:, t] = state
    names = [f"bit_{k}" for k in range(n_bits)]
    return _build(pulse, targets, list(np.ones((n_trials, T))), dt=dt, input_names=names, output_names=names,
                  task="flipflop", coords={"n_pulses": (pulse != 0).sum((1, 2))})


def delayed_match(n_trials: int, *, n_stimuli: int = 4, sample: int = 5, delay=10, test: int = 5,
                  response: int = 5, fixation: int = 5, p_match: float = 0.5, dt: float = 1.0,
                  seed=None) -> xr.Dataset:
    """Delayed match-to-sample: after the go cue, +1 if the test equals the sample, else -1.

    Inputs: ``fixation`` (on until the response epoch: its offset is the go
    cue) and one-hot stimuli. Target ``match`` is scored during the response
    epoch only; ``delay`` may be a (low, high) pair (ragged trials).

    Examples
    --------
    >>> ds = delayed_match(6, seed=0)
    >>> set(ds["correct_choice"].values.tolist()) <= {-1, 1}
    True
    """
    n_trials, n_stimuli = _int("n_trials", n_trials), _int("n_stimuli", n_stimuli, 2)
    rng = check_random_state(seed)
    fix, smp, tst, resp = (_int(k, v) for k, v in (("fixation", fixation), ("sample", sample),
                                                     ("test", test), ("response", response)))
    delays = _steps("delay", delay, rng, n_trials)
    samples = rng.integers(0, n_stimuli, size=n_trials)
    match = rng.random(n_trials) < p_match
    other = (samples + rng.integers(1, n_stimuli, size=n_trials)) % n_stimuli
    tests = np.where(match, samples, other)
    inputs, targets, weights, onset = [], [], [], np.zeros(n_trials)
    for i in range(n_trials):
        e = np.cumsum([0, fix, smp, delays[i], tst, resp])
        x, y, w = np.zeros((e[-1], n_stimuli + 1)), np.zeros((e[-1], 1)), np.zeros(e[-1])
        x[: e[4], 0] = 1
        x[e[1]:e[2], 1 + samples[i]] = 1
        x[e[3]:e[4], 1 + tests[i]] = 1
        y[e[4]:] = 1.0 if match[i] else -1.0
        w[e[4]:] = 1
        onset[i] = e[4] * dt
        inputs.append(x), targets.append(y), weights.append(w)
    return _build(inputs, targets, weights, dt=dt, output_names=["match"], task="delayed_match",
                  input_names=["fixation"] + [f"stim_{k}" for k in range(n_stimuli)],
                  coords={"sample": samples, "test": tests, "match": match,
                          "correct_choice": np.where(match, 1, -1), "response_onset": onset})


TASKS = {"addition": addition, "copy": copy_task, "flipflop": flipflop, "delayed_match": delayed_match}


def multitask(n_trials: int, tasks: Sequence[str] = ("addition", "copy", "flipflop", "delayed_match"), *,
              task_kwargs: Mapping[str, Mapping] | None = None, seed=None) -> xr.Dataset:
    """A multi-task set: a one-hot rule input selects which memory task a trial is.

    Each task keeps its own input and output channels (named ``task:name``);
    the ``rule_<task>`` inputs are on for the whole trial. Trials are padded to
    the longest (``mask``); ``loss_weight`` is (trial, time, output) and is 0 on
    the outputs of the other tasks.

    Parameters
    ----------
    n_trials : int
    tasks : sequence of str
        Names from ``TASKS``.
    task_kwargs : mapping, optional
        Per-task keyword arguments, e.g. ``{"addition": {"T": 50}}``.
    seed : None, int or numpy Generator

    Examples
    --------
    >>> ds = multitask(8, task_kwargs={"addition": {"T": 20}, "flipflop": {"T": 20}}, seed=0)
    >>> sorted(set(ds["task"].values.tolist())) <= sorted(TASKS)
    True
    """
    n_trials = _int("n_trials", n_trials)
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks: expected distinct names from {sorted(TASKS)}, got {tasks!r}")
    task_kwargs = dict(task_kwargs or {})
    if set(task_kwargs) - set(tasks):
        raise ValueError(f"task_kwargs: keys {sorted(set(task_kwargs) - set(tasks))} are not in tasks")
    rng = check_random_state(seed)
    which = rng.integers(0, len(tasks), size=n_trials)
    parts = {}
    for k, name in enumerate(tasks):
        n = max(int((which == k).sum()), 1)
        parts[name] = TASKS[name](n, seed=rng, **task_kwargs.get(name, {}))
    in_names = [f"rule_{t}" for t in tasks] + [f"{t}:{c}" for t in tasks for c in parts[t]["input"].values]
    out_names = [f"{t}:{c}" for t in tasks for c in parts[t]["output"].values]
    in_off = np.cumsum([len(tasks)] + [parts[t].sizes["input"] for t in tasks])
    out_off = np.cumsum([0] + [parts[t].sizes["output"] for t in tasks])
    used = {t: 0 for t in tasks}
    inputs, targets, weights = [], [], []
    for k in which:
        name = tasks[k]
        part, i = parts[name], used[name]
        used[name] += 1
        L = int(part["mask"][i].sum())
        x, y = np.zeros((L, len(in_names))), np.zeros((L, len(out_names)))
        w = np.zeros((L, len(out_names)))
        x[:, k] = 1
        x[:, in_off[k]:in_off[k + 1]] = part["inputs"].values[i, :L]
        y[:, out_off[k]:out_off[k + 1]] = part["targets"].values[i, :L]
        pw = part["loss_weight"].values[i, :L]
        w[:, out_off[k]:out_off[k + 1]] = pw[:, None] if pw.ndim == 1 else pw
        inputs.append(x), targets.append(y), weights.append(w)
    dts = {t: float(parts[t].attrs["dt"]) for t in tasks}
    if len(set(dts.values())) > 1:
        raise ValueError(f"task_kwargs: every task needs the same dt, got {dts}")
    dt = dts[tasks[0]]
    return _build(inputs, targets, weights, dt=dt, input_names=in_names, output_names=out_names,
                  task="multitask", coords={"task": np.array(tasks)[which]}, attrs={"tasks": tasks})

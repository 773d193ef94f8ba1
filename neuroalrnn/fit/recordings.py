"""Recorded trials for teacher-forced fitting: checks, z-scoring, tensors, held-out evaluation.

Helpers of :func:`neuroalrnn.fit.teacher_forcing.fit_teacher_forcing`: a TrialDataset (or a
NaN-padded (trial, time, unit) array) is checked (all-NaN or constant channels, short trials,
channel and input counts), z-scored per channel with the training trials' statistics and turned
into trial-major tensors; ``make_evaluate`` scores a fit on held-out trials with the DSR metrics.
"""

from __future__ import annotations

import numpy as np
import torch

from ..model.recurrence import alrnn_scan

__all__ = ["zscore_stats", "to_tensors", "make_evaluate", "METRICS"]


def _nan_lengths(x: np.ndarray) -> np.ndarray:
    """Trial lengths of a NaN-padded (trial, time, feature) array: steps before the first non-finite one."""
    ok = np.isfinite(x).all(axis=2)
    return np.where(ok.all(1), ok.shape[1], np.argmin(ok, axis=1)).astype(int)


def _check_not_empty(sizes: dict):
    """Zero trials, steps or channels get their own message (not one about NaN channels)."""
    for dim, what in (("trial", "trials"), ("time", "time steps"), ("unit", "channels (unit)")):
        if sizes.get(dim, 1) == 0:
            raise ValueError(f"ds: the activity has zero {what}; teacher forcing needs at least one trial of "
                             "two or more time steps with at least one channel")


def _as_dataset(data, inputs=None):
    """A TrialDataset from a TrialDataset or a NaN-padded (trial, time, N) array."""
    from ..schema import from_arrays, validate

    if hasattr(data, "data_vars"):
        if "activity" not in data.data_vars:
            raise ValueError("ds: the TrialDataset has no 'activity' to fit")
        act = data["activity"]
        _check_not_empty(dict(act.sizes))
        dead = act.isnull().all(("trial", "time")).values
        if dead.any():
            raise ValueError(f"activity: channels {data['unit'].values[dead].tolist()} (unit) are NaN "
                             "everywhere; drop them before fitting")
        return validate(data)
    x = np.asarray(data.detach().cpu().numpy() if hasattr(data, "detach") else data, dtype=float)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"ds: expected a TrialDataset or a (trial, time, unit) array, got shape {x.shape}")
    _check_not_empty(dict(zip(("trial", "time", "unit"), x.shape)))
    dead = np.isnan(x).all(axis=(0, 1))
    if dead.any():
        raise ValueError(f"activity: channels {np.flatnonzero(dead).tolist()} (unit) are NaN everywhere; "
                         "drop them before fitting")
    lengths = _nan_lengths(x)
    if (lengths < 1).any():
        i = int(np.argmin(lengths))
        raise ValueError(f"activity: trial {i} has a NaN channel at its first step (channels "
                         f"{np.flatnonzero(~np.isfinite(x[i, 0])).tolist()}); a trial ends at its first "
                         "non-finite step, so every channel needs a value there")
    return from_arrays(activity=x, inputs=inputs, lengths=lengths)


def zscore_stats(ds) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``activity`` over the valid steps of ``ds``.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = from_arrays(activity=[np.array([[0.0], [2.0]]), np.array([[4.0]])])
    >>> [v.tolist() for v in zscore_stats(ds)]
    [[2.0], [1.632993161855452]]
    """
    x = ds["activity"].values[ds["mask"].values]
    mean, std = x.mean(0), x.std(0)
    if np.any(std == 0):
        raise ValueError(f"activity: channels {ds['unit'].values[std == 0].tolist()} (unit) are constant; "
                         "they cannot be z-scored")
    return mean, std


def to_tensors(ds, mean, std, dtype=torch.float32) -> dict:
    """Trial-major tensors ``x`` (z-scored, NaN outside the mask), ``mask`` and ``inputs``.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = from_arrays(activity=[np.array([[0.0], [2.0]]), np.array([[4.0]])])
    >>> to_tensors(ds, np.array([2.0]), np.array([2.0]))["x"][:, :, 0].tolist()
    [[-1.0, 0.0], [1.0, nan]]
    """
    x = (ds["activity"].values - mean) / std
    out = {"x": torch.as_tensor(x, dtype=dtype), "mask": torch.as_tensor(ds["mask"].values)}
    if "inputs" in ds.data_vars:
        out["inputs"] = torch.as_tensor(np.nan_to_num(ds["inputs"].values), dtype=dtype)
    return out


def _check_fit_data(model, ds, n_obs, observation, tau, sequence_length):
    N = ds.sizes["unit"]
    if n_obs is not None and n_obs != N:
        raise ValueError(f"activity: has {N} channels (unit) but n_obs = {n_obs} observed channels were claimed")
    if observation == "identity" and N > model.n_units - model.n_relu:
        raise ValueError(f"observation='identity': N = {N} observed channels need N <= M - P linear units, "
                         f"but M = {model.n_units}, P = {model.n_relu}; use observation='linear'")
    K = ds.sizes.get("input", 0) if "inputs" in ds.data_vars else 0
    if K != model.n_inputs:
        raise ValueError(f"inputs: the data have {K} input channels, the model takes n_inputs = {model.n_inputs}")
    lengths = ds["mask"].values.sum(1)
    short = lengths <= tau
    if short.any():
        i = int(np.argmax(short))
        raise ValueError(f"activity: trial {ds['trial'].values[i].item()!r} has {lengths[i]} valid steps, shorter than "
                         f"the forcing interval plus one (tau + 1 = {tau + 1}); drop short trials or lower tau")
    if sequence_length is not None and sequence_length > lengths.max():
        raise ValueError(f"sequence_length: {sequence_length} exceeds the longest trial ({lengths.max()} steps)")


METRICS = ("n_step", "d_stsp", "d_h")


def _check_starts(free_run_starts, free_run_steps, n_trials: int | None = None) -> int:
    """``free_run_starts`` as an int, checked against ``free_run_steps`` and the validation trials."""
    if isinstance(free_run_starts, (bool, np.bool_)) or not isinstance(free_run_starts, (int, np.integer)):
        raise TypeError(f"free_run_starts: expected an integer >= 1, got {type(free_run_starts).__name__} "
                        f"{free_run_starts!r}")
    if free_run_starts < 1:
        raise ValueError(f"free_run_starts: expected an integer >= 1, got {free_run_starts}")
    if free_run_starts > 1 and free_run_steps is None:
        raise ValueError(f"free_run_starts: {free_run_starts} starts need free_run_steps set (without it "
                         "every validation trial already runs from its own first observation)")
    if free_run_steps is not None and n_trials is not None and free_run_starts > n_trials:
        raise ValueError(f"free_run_starts: {free_run_starts} free-run starts need as many validation trials, "
                         f"but there are {n_trials}")
    return int(free_run_starts)


def _start_trials(n_trials: int, n_starts: int) -> np.ndarray:
    """Indices of ``n_starts`` validation trials spread evenly from the first to the last."""
    _check_starts(n_starts, 0, n_trials)  # 0: any free_run_steps (only the trial count is checked here)
    return np.unique(np.linspace(0, n_trials - 1, n_starts).round().astype(int))


def make_evaluate(metrics=METRICS, *, n_ahead: int = 20, free_run_steps: int | None = None, transient: int = 0,
                  free_run_starts: int = 1, free_run_combine: str = "worst", n_bins: int = 30,
                  smoothing: float = 1e-5, sigma: float = 20.0, seed=0):
    """``evaluate(module, val) -> dict`` for the trainer, in z-scored units.

    Parameters
    ----------
    metrics : subset of ``METRICS``
        ``n_step``: the ``n_ahead``-step prediction error from every valid time point of the
        validation trials. ``d_stsp``/``d_h``: the divergence and spectrum distance of free runs
        (``n_bins``, ``smoothing``, ``seed``; ``sigma``). Diverged runs score ``inf``.
    free_run_steps : int, optional
        None: each trial's run from its first observation (driven by its inputs, as long as the
        trial) against the trials. Else free runs of this many steps, after dropping
        ``transient`` steps, against all validation steps in order (one long recording cut
        into windows).
    free_run_starts : int
        With ``free_run_steps``: the number of such runs, from the first observations of this
        many validation trials spread evenly from the first to the last (1: the first trial's),
        run as one batch. Why: a model may reach its chaotic attractor from one start and
        settle on a fixed point or cycle from another, so one start's score can mislead
        checkpoint selection.
    free_run_combine : {"worst", "median"}
        How ``d_stsp`` and ``d_h`` combine the runs' scores (a diverged run or a NaN score
        counts as ``inf``): the worst (a model must reach its attractor from every start)
        or the median (from most starts). Fitting Lorenz-63 (M = 20, P = 3, 40 seeds), where
        most checkpoints fall to a fixed point from one start or another, selection chose 14
        fits whose held-out run succeeds with 1 start, 3 with the worst of 4, 30 with the
        median of 8 and 31 by the held-out score itself; at P = 2 all rules did alike
        (``benchmarks/RESULTS.md``).

    Examples
    --------
    >>> evaluate = make_evaluate(("n_step",), n_ahead=5)   # then evaluate(fitted_module, val_tensors)
    >>> callable(evaluate)
    True
    >>> evaluate = make_evaluate(("d_stsp",), free_run_steps=1000, free_run_starts=8, free_run_combine="median")
    """
    from ..analysis.dsr import n_step_prediction_error, power_spectrum_error, state_space_divergences

    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"metrics: unknown {sorted(unknown)}; expected a subset of {METRICS}")
    free_run_starts = _check_starts(free_run_starts, free_run_steps)
    if free_run_combine not in ("worst", "median"):
        raise ValueError(f"free_run_combine: expected 'worst' or 'median', got {free_run_combine!r}")

    @torch.no_grad()  # evaluation needs no graph (and may be called outside the trainer)
    def evaluate(module, val):
        x = torch.where(val["mask"][..., None], val["x"], torch.full((), float("nan"), dtype=val["x"].dtype))
        x = x.cpu().numpy().astype(np.float64)
        s = val.get("inputs")
        model, obs = module.model, module.observation
        out = {}

        def run(x0, n, inputs):
            where = dict(dtype=model.A.dtype, device=model.A.device)
            x0 = torch.as_tensor(x0, **where)
            inputs = None if inputs is None else torch.as_tensor(inputs, **where)
            z = alrnn_scan(obs.init_state(x0), model.drive(inputs, len(x0), n).contiguous(), model.A, model.W,
                           model.n_relu, backend=model.backend)
            return obs.readout(z)

        if "n_step" in metrics:
            out["n_step"] = n_step_prediction_error(run, x, n=n_ahead, inputs=None if s is None else s.cpu().numpy())
        if "d_stsp" in metrics or "d_h" in metrics:
            if free_run_steps is None:
                gen = run(x[:, 0], x.shape[1] - 1, None if s is None else s[:, 1:]).cpu().numpy()
                gen = np.concatenate([x[:, :1], gen], axis=1)
                gen[~val["mask"].cpu().numpy()] = np.nan
                data, gens = x, gen[None]  # one "run": every trial from its first observation
                finite = np.array([np.isfinite(gen[~np.isnan(data).any(-1)]).all()])
            else:  # one batched run per start: (start, time, N)
                x0 = x[_start_trials(len(x), free_run_starts), 0]
                gens = run(x0, int(free_run_steps) + int(transient), None).cpu().numpy()[:, int(transient):]
                data = x[np.isfinite(x).all(2)]
                finite = np.isfinite(gens).all(axis=(1, 2))
            if not finite.any() or (free_run_combine == "worst" and not finite.all()):
                out.update({k: float("inf") for k in ("d_stsp", "d_h") if k in metrics})
                return out

            def combined(scores):  # a diverged run or a NaN score (no point in the data's range) counts as inf
                values = np.full(len(gens), np.inf)
                values[finite] = scores
                values[~np.isfinite(values)] = np.inf
                return float(values.max() if free_run_combine == "worst" else np.median(values))

            if "d_stsp" in metrics:  # the data binned once for all runs
                out["d_stsp"] = combined(state_space_divergences(data, gens[finite], n_bins, smoothing, seed=seed))
            if "d_h" in metrics:
                out["d_h"] = combined([power_spectrum_error(data if free_run_steps is None else data[: len(g)], g,
                                                            sigma) for g in gens[finite]])
        return {k: (float("inf") if not np.isfinite(v) else float(v)) for k, v in out.items()}

    return evaluate



def _split(ds, val, seed):
    if val is None or hasattr(val, "data_vars"):
        return ds, val
    if not (isinstance(val, float) and 0 < val < 1):
        raise ValueError(f"val: expected a TrialDataset, a fraction in (0, 1) or None, got {val!r}")
    n = ds.sizes["trial"]
    n_val = int(round(val * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"val: a fraction {val} of {n} trials leaves no training or no validation trial; "
                         "pass val=None or a TrialDataset")
    order = np.random.default_rng(seed).permutation(n)
    return ds.isel(trial=np.sort(order[n_val:])), ds.isel(trial=np.sort(order[:n_val]))

"""The estimators' input: :class:`Trials` views and arrays (X, y) read into a TrialDataset.

An array X is (trial, time, feature), or one trial (time, feature) when 2-D; NaN pads the
steps after a trial's end (every feature NaN from there on), and anything else that is not a
finite real number (NaN or inf inside a trial, complex, sparse, non-numeric input) is an error
naming X or y, with the trial and step where there is one. ``neuroalrnn.estimators``
re-exports :class:`Trials` and :func:`as_dataset`.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
import torch
import xarray as xr

from neuroalrnn.schema import from_arrays, validate

__all__ = ["Trials", "as_dataset"]


class Trials:
    """A TrialDataset indexable by trial, for scikit-learn's splitters and ``cross_validate``.

    ``Trials(ds)[indices]`` is ``Trials(ds.isel(trial=indices))``; ``len`` and ``shape``
    count trials.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = from_arrays(activity=np.zeros((4, 3, 2)), trial_coords={"session": [0, 0, 1, 1]})
    >>> t = Trials(ds)
    >>> len(t), len(t[np.array([0, 2])]), t.groups("session").tolist()
    (4, 2, [0, 0, 1, 1])
    """

    def __init__(self, ds: xr.Dataset):
        if isinstance(ds, Trials):
            ds = ds.ds
        self.ds = validate(ds)

    @property
    def shape(self) -> tuple[int]:
        return (self.ds.sizes["trial"],)

    def __len__(self) -> int:
        return self.ds.sizes["trial"]

    def __getitem__(self, key) -> "Trials":
        if isinstance(key, tuple):  # sklearn indexes arrays as X[key, ...]
            if len(key) != 2 or key[1] is not Ellipsis:
                raise IndexError("Trials: only trial indexing (trials[indices]) is supported")
            key = key[0]
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        if not isinstance(key, slice):
            key = np.asarray(key)
            if key.size == 0:
                key = key.astype(int)
            if key.dtype == bool:
                key = np.flatnonzero(key)
            if key.ndim != 1 or (key.size and not np.issubdtype(key.dtype, np.integer)):
                raise IndexError(f"Trials: expected integer or boolean trial indices, got dtype {key.dtype}")
        return Trials(self.ds.isel(trial=key))

    def groups(self, coord: str) -> np.ndarray:
        """The values of the trial coord ``coord`` (e.g. ``"session"``), for ``groups=``."""
        if coord not in self.ds.coords or self.ds[coord].dims[:1] != ("trial",):
            have = sorted(k for k, v in self.ds.coords.items() if v.dims[:1] == ("trial",) and k != "trial")
            raise ValueError(f"groups: {coord!r} is not a trial coord of the dataset; have {have}")
        return self.ds[coord].values

    def __repr__(self) -> str:
        return f"Trials(n_trials={len(self)}, variables={sorted(self.ds.data_vars)})"


def _as_float_array(value, name: str, what: str) -> np.ndarray:
    """``value`` (array-like or tensor) as a float ndarray, or a TypeError/ValueError naming ``name``."""
    if sp.issparse(value):
        raise TypeError(f"{name}: sparse input ({type(value).__name__}) is not supported; expected a dense "
                        f"{what} array (e.g. {name}.toarray())")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if value is None or isinstance(value, (str, bytes, os.PathLike, dict, xr.Dataset)):
        raise TypeError(f"{name}: expected a {what} array, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name}: cannot be read as a {what} array ({err})") from None
    if arr.dtype.kind == "c":  # casting would drop the imaginary part
        raise ValueError(f"{name}: Complex data not supported (dtype {arr.dtype}); expected real numbers")
    if arr.dtype.kind in "USV":
        raise TypeError(f"{name}: expected numbers, got dtype {arr.dtype}")
    try:
        return arr.astype(float, copy=False)
    except (TypeError, ValueError) as err:  # object arrays holding non-numbers
        raise type(err)(f"{name}: expected numbers ({err})") from None


def _as_trials(X) -> tuple[np.ndarray, bool]:
    """X as a (trial, time, feature) float array, and whether it was one 2-D (time, feature) trial."""
    x = _as_float_array(X, "X", "(trial, time, feature)")
    one_trial = x.ndim == 2
    if one_trial:
        x = x[None]
    elif x.ndim != 3:
        raise ValueError(f"X: expected a (trial, time, feature) array or one trial (time, feature), got shape "
                         f"{x.shape}. Reshape your data: X[:, None] is one trial of one feature")
    for axis, unit in enumerate(("trial(s)", "time step(s)", "feature(s)")):
        if x.shape[axis] == 0:
            shape = x.shape[1:] if one_trial else x.shape
            raise ValueError(f"X: found array with 0 {unit} (shape={shape}) while a minimum of 1 is required.")
    return x, one_trial


def _trial_lengths(x: np.ndarray) -> np.ndarray:
    """Each trial's steps before its NaN padding; a ValueError naming the trial and step for NaN/inf inside one."""
    inf = np.argwhere(np.isinf(x))
    if len(inf):
        i, t, f = inf[0]
        raise ValueError(f"X: inf in trial {i} at step {t} (feature {f}); values must be finite, and only NaN "
                         "pads the steps after a trial's end")
    nan = np.isnan(x)
    pad = nan.all(axis=2)  # (trial, time): every feature NaN
    lengths = np.where(pad.any(axis=1), pad.argmax(axis=1), x.shape[1])
    inside = np.arange(x.shape[1])[None, :] < lengths[:, None]
    bad = np.argwhere((inside & nan.any(axis=2)) | (~inside & ~pad))
    if len(bad):
        i, t = bad[0]
        step, where = ((t, f"features {np.flatnonzero(nan[i, t]).tolist()}") if inside[i, t]
                       else (lengths[i], f"every feature, but step {t} has values"))
        raise ValueError(f"X: NaN in the middle of trial {i} at step {step} ({where}); NaN may only pad a "
                         "trial's end (every feature NaN from that step on)")
    if (lengths < 1).any():
        raise ValueError(f"X: trial {int(np.argmin(lengths))} is NaN from its first step; every trial needs at "
                         "least one step")
    return lengths


def _as_targets(y, x: np.ndarray, one_trial: bool, lengths: np.ndarray) -> np.ndarray:
    """Targets y as (trial, time, output), finite on every step where X is, NaN after each trial's end."""
    what = "(time, output) or (time,)" if one_trial else "(trial, time, output)"
    t = _as_float_array(y, "y", what)
    shape = t.shape
    if one_trial and t.ndim in (1, 2):
        t = t.reshape(1, len(t), -1)
    if t.ndim != 3 or t.shape[:2] != x.shape[:2] or t.shape[2] == 0:
        n = f"{x.shape[1]} time steps" if one_trial else f"(trial, time) = {x.shape[:2]}"
        raise ValueError(f"y: expected targets {what} with {n} and at least one output, got shape {shape}")
    mask = np.arange(x.shape[1])[None, :] < lengths[:, None]
    bad = np.argwhere(mask[:, :, None] & ~np.isfinite(t))
    if len(bad):
        i, s, o = bad[0]
        raise ValueError(f"y: {t[i, s, o]} in trial {i} at step {s} (output {o}); targets must be finite on "
                         "every step where X has values")
    return np.where(mask[:, :, None], t, np.nan)


def _read(X, y=None, *, kind: str = "task") -> tuple[xr.Dataset, bool]:
    """:func:`as_dataset`, and whether X was one 2-D (time, feature) trial."""
    if isinstance(X, Trials):
        X = X.ds
    if isinstance(X, xr.Dataset):
        if y is not None and kind == "task":
            raise ValueError("y: must be None when X is a TrialDataset (its targets are inside)")
        var, use = ("inputs", "drive the model") if kind == "task" else ("activity", "fit")
        if var not in X.data_vars:
            raise ValueError(f"X: the TrialDataset has no {var!r} to {use}")
        return validate(X), False
    x, one_trial = _as_trials(X)
    lengths = _trial_lengths(x)
    if kind == "activity":
        return from_arrays(activity=x, lengths=lengths), one_trial
    if y is None:
        return from_arrays(inputs=x, lengths=lengths), one_trial
    return from_arrays(inputs=x, targets=_as_targets(y, x, one_trial, lengths), lengths=lengths), one_trial


def as_dataset(X, y=None, *, kind: str = "task") -> xr.Dataset:
    """A TrialDataset from ``X`` (TrialDataset, Trials or array) and optional targets ``y``.

    ``kind="task"``: arrays are inputs (trial, time, input) and ``y`` targets
    (trial, time, output). ``kind="activity"``: arrays are activity (trial, time, unit), and
    ``y`` is ignored. A 2-D array is one trial (time, feature), with targets (time, output) or
    (time,). NaN pads a trial's end (every feature NaN from there on); NaN or inf inside a
    trial, sparse and complex input are errors naming X (or y).

    Examples
    --------
    >>> x = np.ones((2, 4, 3))
    >>> x[1, 2:] = np.nan                        # the second trial ends after 2 steps
    >>> as_dataset(x, kind="activity")["mask"].values.sum(1).tolist()
    [4, 2]
    >>> x[0, 1, 0] = np.nan                      # a gap inside the first trial
    >>> as_dataset(x, kind="activity")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X: NaN in the middle of trial 0 at step 1 (features [0]); NaN may only pad ...
    """
    return _read(X, y, kind=kind)[0]

"""Operations over trials: selection, condition averages (PSTHs), re-alignment."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .._cf import time_attrs
from ..schema import is_missing, validate
from ._common import by_trial, get_dt, signal_names, trial_label

__all__ = ["select_trials", "condition_average", "align"]


def select_trials(ds: xr.Dataset, selection=None, **conditions) -> xr.Dataset:
    """Keep the trials that match a boolean selection and/or coord conditions.

    Parameters
    ----------
    ds : xarray.Dataset
        TrialDataset.
    selection : array of bool (trial,) or boolean DataArray on ``trial``, optional
        A DataArray with a ``trial`` coord is matched to the trials by label.
    **conditions
        ``coord=value`` keeps trials whose per-trial coord equals ``value``;
        ``coord=[v1, v2]`` keeps trials whose coord is any of the values.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = from_arrays(activity=np.zeros((4, 2, 1)), trial_coords={"context": list("abab"),
    ...                  "coh": [1, 2, 3, 4]})
    >>> select_trials(ds, context="a")["coh"].values.tolist()
    [1, 3]
    >>> select_trials(ds, ds["coh"] > 2, context=["a", "b"])["coh"].values.tolist()
    [3, 4]
    """
    _check(ds, "select_trials")
    keep = np.ones(ds.sizes["trial"], dtype=bool)
    if selection is not None:
        sel = np.asarray(by_trial(ds, selection, "selection"))
        if sel.dtype != bool or sel.shape != keep.shape:
            raise ValueError(f"selection: expected a boolean array of shape {keep.shape} (one per trial), "
                             f"got dtype {sel.dtype} and shape {sel.shape}")
        keep &= sel
    for name, value in conditions.items():
        values = _trial_coord(ds, name, "select_trials")
        if isinstance(value, (list, tuple, set, np.ndarray)):
            keep &= np.isin(values, list(value))
        else:
            keep &= values == value
    if not keep.any():
        raise ValueError(f"select_trials: no trial matches {conditions or 'the selection'}")
    return ds.isel(trial=np.flatnonzero(keep))


def condition_average(ds: xr.Dataset, by: str | Sequence[str], var: str | Sequence[str] | None = None
                      ) -> xr.Dataset:
    """Average trials within each combination of per-trial coords (PSTHs).

    Parameters
    ----------
    ds : xarray.Dataset
        TrialDataset.
    by : str or list of str
        Per-trial coords that define the conditions. Trials with a missing
        value in any of them (NaN, None, or ``''``, which tables and netCDF give
        for a missing string; see ``neuroalrnn.schema.is_missing``) are left out.
    var : str or list of str, optional
        Variables to average (default: every (trial, time, ...) signal).

    Returns
    -------
    xarray.Dataset
        Dims ``condition`` (sorted combinations) instead of ``trial``: each
        ``by`` coord is a coord on ``condition``, the averaged variables are
        NaN-aware means over the trials valid at each step, ``n_trials``
        (condition, time) counts them and ``mask`` is ``n_trials > 0``. Plain
        coords only (no MultiIndex), so it writes to netCDF; use
        ``out.set_index(condition=by)`` for label-based selection.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = from_arrays(activity=np.arange(8.0).reshape(4, 2, 1),
    ...                  trial_coords={"context": ["a", "b", "a", "b"]})
    >>> psth = condition_average(ds, "context")
    >>> psth["activity"].sel(unit=0).values.tolist(), psth["context"].values.tolist()
    ([[2.0, 3.0], [4.0, 5.0]], ['a', 'b'])
    """
    _check(ds, "condition_average")
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise ValueError("by: expected at least one per-trial coord name")
    frame = pd.DataFrame({name: _trial_coord(ds, name, "condition_average") for name in by})
    present = np.flatnonzero(~np.any([is_missing(frame[name].to_numpy()) for name in by], axis=0))
    groups = frame.iloc[present].groupby(by, sort=True).indices
    if not groups:
        raise ValueError(f"by: no trial has a value for every coord in {by}")
    groups = {k: present[idx] for k, idx in groups.items()}  # positions among all trials
    names = signal_names(ds) if var is None else ([var] if isinstance(var, str) else list(var))
    for name in names:
        if name not in ds.data_vars or ds[name].dims[:2] != ("trial", "time"):
            raise ValueError(f"var: {name!r} is not a (trial, time, ...) variable of the dataset")
    keys = list(groups)
    index = [groups[k] for k in keys]
    keys = [k if isinstance(k, tuple) else (k,) for k in keys]
    out = xr.Dataset(attrs=dict(ds.attrs, condition_by=by))
    mask = ds["mask"].values
    n_trials = np.stack([mask[idx].sum(axis=0) for idx in index])
    for name in names:
        values = ds[name].values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps give NaN
            means = np.stack([np.nanmean(values[idx], axis=0) for idx in index])
        out[name] = (("condition",) + ds[name].dims[1:], means, ds[name].attrs)
    out["n_trials"] = (("condition", "time"), n_trials.astype(np.int64))
    out["mask"] = (("condition", "time"), n_trials > 0, ds["mask"].attrs)
    coords = {name: c for name, c in ds.coords.items() if "trial" not in c.dims}
    coords.update({name: ("condition", np.array([k[j] for k in keys])) for j, name in enumerate(by)})
    coords["condition"] = np.arange(len(keys))
    return out.assign_coords(coords)


def align(ds: xr.Dataset, event: str, window: tuple[float, float] | None = None) -> xr.Dataset:
    """Re-align every trial to another per-trial event time.

    Parameters
    ----------
    ds : xarray.Dataset
        TrialDataset.
    event : str
        Name of a per-trial coord holding each trial's event time in seconds
        relative to the current ``attrs['align_event']`` (the frame of ``time``).
        Times are rounded to the nearest step of ``dt``; the largest rounding
        is stored in ``attrs['align_rounding']``. Each event must fall on one of
        its trial's valid steps.
    window : (t0, t1), optional
        Keep only steps with ``t0 <= time < t1`` (new frame); default keeps
        the union of all shifted trials.

    Returns
    -------
    xarray.Dataset
        Each trial shifted so that its event is at time 0, NaN-padded, with
        ``mask`` shifted the same way and ``attrs['align_event'] = event``
        (the old one kept as ``attrs['previous_align_event']``). Other
        per-trial time coords are left unchanged (they keep the old frame).

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = from_arrays(activity=np.arange(6.0).reshape(2, 3, 1), dt=1.0,
    ...                  trial_coords={"go": [0.0, 1.0]})
    >>> out = align(ds, "go")
    >>> out["time"].values.tolist(), out["activity"][:, :, 0].values.tolist()
    ([-1.0, 0.0, 1.0, 2.0], [[nan, 0.0, 1.0, 2.0], [3.0, 4.0, 5.0, nan]])
    """
    _check(ds, "align")
    dt = get_dt(ds, "align")
    times = np.asarray(_trial_coord(ds, event, "align"), dtype=float)
    if not np.isfinite(times).all():
        raise ValueError(f"{event}: trial {trial_label(ds, np.argmax(~np.isfinite(times)))!r} has no "
                         "event time (NaN); drop it first with select_trials")
    time = np.asarray(ds["time"].values, dtype=float)
    mask = ds["mask"].values
    shift = np.rint((times - time[0]) / dt).astype(np.int64)  # event step index in the old grid
    rounding = float(np.max(np.abs(time[0] + shift * dt - times))) if times.size else 0.0
    # the event must fall on one of the trial's own valid (recorded) steps
    first = np.argmax(mask, axis=1)
    last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
    outside = (shift < first) | (shift > last)
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"{event}: trial {trial_label(ds, i)!r} has its event at {times[i]} s, outside "
                         f"the trial's recorded time [{time[first[i]]}, {time[last[i]]}] s")
    lo, hi = -shift.max(), time.size - 1 - shift.min()  # new step range, relative to the event step
    new_time = dt * np.arange(lo, hi + 1)
    n_new = new_time.size
    cols = np.arange(time.size)[None, :] - shift[:, None] - lo  # new column of each old step
    rows = np.broadcast_to(np.arange(time.size)[None, :], cols.shape)
    trial_idx = np.broadcast_to(np.arange(mask.shape[0])[:, None], cols.shape)
    new_mask = np.zeros((mask.shape[0], n_new), dtype=bool)
    new_mask[trial_idx, cols] = mask
    names = signal_names(ds)
    out = ds.drop_vars(names + ["mask"]).drop_dims("time", errors="ignore").copy()
    units = ds["time"].attrs.get("units", "s")
    out = out.assign_coords(time=("time", new_time, {**ds["time"].attrs, **time_attrs(event, units)}))
    out["mask"] = (("trial", "time"), new_mask, ds["mask"].attrs)
    for name in names:
        da = ds[name]
        values = np.full((mask.shape[0], n_new) + da.shape[2:], np.nan, dtype=da.dtype)
        values[trial_idx, cols] = da.values[trial_idx, rows]
        out[name] = (da.dims, values, da.attrs)
    out.attrs = dict(ds.attrs, align_event=event, align_rounding=rounding)
    if "align_event" in ds.attrs:
        out.attrs["previous_align_event"] = ds.attrs["align_event"]
    if window is not None:
        t0, t1 = (float(v) for v in window)
        if not t0 < t1:
            raise ValueError(f"window: expected t0 < t1, got ({t0}, {t1})")
        keep = (new_time >= t0 - 1e-9 * dt) & (new_time < t1 - 1e-9 * dt)
        if not keep.any():
            raise ValueError(f"window: ({t0}, {t1}) holds no time step")
        out = out.isel(time=np.flatnonzero(keep))
        empty = ~out["mask"].values.any(axis=1)
        if empty.any():
            raise ValueError(f"window: trial {trial_label(out, np.argmax(empty))!r} has no valid step "
                             f"in ({t0}, {t1})")
    return validate(out)


def _check(ds, func):
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{func}: expected a TrialDataset (xarray.Dataset), got {type(ds).__name__}")
    validate(ds)
    if "mask" not in ds.data_vars and func != "select_trials":
        raise ValueError(f"{func}: the dataset has no time series (no 'mask')")


def _trial_coord(ds, name, func):
    if name not in ds.coords:
        raise ValueError(f"{func}: {name!r} is not a coord of the dataset "
                         f"(per-trial coords: {sorted(str(k) for k, c in ds.coords.items() if c.dims == ('trial',))})")
    coord = ds[name]
    if coord.dims != ("trial",):
        raise ValueError(f"{name}: expected a per-trial coord with dims ('trial',), got {coord.dims}")
    return coord.values

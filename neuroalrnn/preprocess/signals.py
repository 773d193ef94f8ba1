"""Operations along time and over trials: Gaussian smoothing, z-scoring, resampling.

All functions take a TrialDataset (or a (trial, time, ...) DataArray, whose
mask is "all features finite"), return a new object with coords and attrs
kept, and leave the input untouched. Steps outside ``mask`` stay NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy.ndimage import gaussian_filter1d

from ..schema import set_units, units_of
from ._common import as_dataset, by_trial, get_dt, signal_names, trial_label, unwrap

__all__ = ["gaussian_smooth", "zscore", "resample"]


def gaussian_smooth(ds, sigma: float, var: str = "activity", truncate: float = 4.0):
    """Smooth a signal along time with a Gaussian kernel, within each trial's mask.

    Uses normalized convolution: the signal (zero outside the mask) and the
    mask are both convolved with the kernel and divided, so NaN padding and
    the ends of a trial never leak into the result and near the edges the
    kernel is renormalized over the valid steps.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        TrialDataset (or a (trial, time, ...) DataArray).
    sigma : float
        Standard deviation of the kernel in seconds (converted with attrs['dt']).
    var : str
        Variable to smooth (Dataset input only); other variables are kept as they are.
    truncate : float
        Kernel half-width in standard deviations.

    Returns
    -------
    Same type as ``ds``, with ``var`` smoothed and ``attrs['smooth_sigma']`` = sigma.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> x = np.zeros((1, 41, 1)); x[0, 20, 0] = 1.0
    >>> out = gaussian_smooth(from_arrays(activity=x, dt=0.01), sigma=0.02)
    >>> round(float(out["activity"].sum()), 6)
    1.0
    """
    ds, var, wrapped = as_dataset(ds, var, "gaussian_smooth")
    if not isinstance(sigma, (int, float, np.integer, np.floating)) or not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma: expected a positive number of seconds, got {sigma!r}")
    steps = sigma / get_dt(ds, "gaussian_smooth")
    values = ds[var].values
    mask = ds["mask"].values.reshape(ds["mask"].shape + (1,) * (values.ndim - 2))
    valid = mask & np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    num = gaussian_filter1d(filled, steps, axis=1, mode="constant", cval=0.0, truncate=truncate)
    den = gaussian_filter1d(valid.astype(float), steps, axis=1, mode="constant", cval=0.0, truncate=truncate)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(valid, num / den, np.nan)
    result = ds.copy()
    result[var] = ds[var].copy(data=out)
    result.attrs["smooth_sigma"] = float(sigma)
    return unwrap(result, var, wrapped)


def zscore(ds, stats: xr.Dataset | None = None, train=None, var: str = "activity"):
    """Z-score each feature with mean and std from the training trials only.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        TrialDataset (NaN/inf inside the mask is rejected by ``validate``).
    stats : xarray.Dataset, optional
        Statistics returned by an earlier call (variables ``mean`` and ``std``
        on the feature dim); given, they are applied as they are (use this for
        test trials). Cannot be combined with ``train``.
    train : array of bool (trial,) or array of trial labels, optional
        Trials whose valid steps give the statistics (default: all trials).
    var : str
        Variable to z-score (Dataset input only).

    Returns
    -------
    ds_z : same type as ``ds``
        ``(x - mean) / std``; a feature with zero std is only centred (std taken as 1).
        ``var`` gets CF ``units='1'`` and a ``long_name`` that says it is z-scored
        (and names the units it had).
    stats : xarray.Dataset
        ``mean``, ``std`` (ddof 0) and ``n`` (valid samples) per feature; netCDF-storable.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = from_arrays(activity=np.arange(12.0).reshape(2, 3, 2))
    >>> z, stats = zscore(ds, train=[True, False])
    >>> stats["mean"].values.tolist()
    [2.0, 3.0]
    >>> z_test, _ = zscore(ds.isel(trial=[1]), stats=stats)
    >>> bool(np.allclose(z_test["activity"], z["activity"].isel(trial=[1])))
    True
    """
    ds, var, wrapped = as_dataset(ds, var, "zscore")
    values = ds[var].values
    feature_dims = ds[var].dims[2:]
    if stats is not None:
        if train is not None:
            raise ValueError("zscore: give either stats (to reuse) or train (to compute), not both")
        mean, std = _check_stats(stats, ds[var])
    else:
        trials = _train_index(ds, train)
        sub = values[trials]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            n = np.sum(np.isfinite(sub), axis=(0, 1))
            mean = np.nanmean(sub, axis=(0, 1))
            std = np.nanstd(sub, axis=(0, 1))
        if (n == 0).any():
            raise ValueError(f"train: feature index {int(np.argmax(n == 0))} has no valid step in the training trials")
        coords = {name: c for name, c in ds[var].coords.items() if set(c.dims) <= set(feature_dims)}
        stats = xr.Dataset({"mean": (feature_dims, mean), "std": (feature_dims, std),
                            "n": (feature_dims, n.astype(np.int64))}, coords=coords,
                           attrs={"var": var if not wrapped else "", "ddof": 0})
    scale = np.where(std > 0, std, 1.0)
    out = (values - mean) / scale
    result = ds.copy()
    result[var] = ds[var].copy(data=out)
    raw = units_of(ds, var) if not wrapped else ds[var].attrs.get("units")
    long_name = ds[var].attrs.get("long_name", var if not wrapped else "signal")
    result = set_units(result, var, "1", f"z-scored {long_name}" + (f" (was {raw})" if raw else ""))
    return unwrap(result, var, wrapped), stats


def _train_index(ds, train):
    n = ds.sizes["trial"]
    if train is None:
        return np.arange(n)
    if isinstance(train, xr.DataArray):  # a boolean DataArray on trial is matched by label
        train = by_trial(ds, train, "train") if train.dtype == bool else train.values
    train = np.asarray(train)
    if train.dtype == bool:
        if train.shape != (n,):
            raise ValueError(f"train: a boolean selection needs shape ({n},), got {train.shape}")
        idx = np.flatnonzero(train)
    else:
        labels = ds["trial"].values
        missing = ~np.isin(train, labels)
        if missing.any():
            raise ValueError(f"train: trial label {train[np.argmax(missing)]!r} is not in the dataset's trial coord")
        idx = np.flatnonzero(np.isin(labels, train))
    if idx.size == 0:
        raise ValueError("train: selects no trial")
    return idx


def _check_stats(stats, da):
    if not isinstance(stats, xr.Dataset) or "mean" not in stats or "std" not in stats:
        raise TypeError("stats: expected the xarray.Dataset with 'mean' and 'std' returned by zscore")
    feature_dims = da.dims[2:]
    if stats["mean"].dims != feature_dims:
        raise ValueError(f"stats: 'mean' has dims {stats['mean'].dims}, the data's features are {feature_dims}")
    for dim in feature_dims:
        if dim in stats.coords and dim in da.coords and not np.array_equal(stats[dim].values, da[dim].values):
            raise ValueError(f"stats: its {dim!r} labels differ from the data's (z-score with the same {dim}s)")
    mean, std = stats["mean"].values, stats["std"].values
    if mean.shape != da.shape[2:]:
        raise ValueError(f"stats: 'mean' has shape {mean.shape}, expected {da.shape[2:]}")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std >= 0).all()):
        raise ValueError("stats: 'mean' and 'std' must be finite and std >= 0")
    return mean, std


def resample(ds, new_dt: float, how: str = "mean"):
    """Change the time step of every time series (activity, inputs, targets, ...).

    Downsampling (``new_dt > dt``; ``new_dt / dt`` must be an integer ``f``)
    averages (``how="mean"``) or sums (``how="sum"``, e.g. spike counts) each
    block of ``f`` consecutive steps; a new step is valid only when all ``f``
    source steps are valid, and trailing steps that do not fill a block are
    dropped. The new ``time`` is each block's first time (a bin start).

    Upsampling (``new_dt < dt``) interpolates linearly between neighbouring
    valid samples, each taken at its ``time`` coordinate; a new step is valid
    when both neighbours (or the sample it falls on) are valid. ``how`` is
    ignored. ``attrs['dt']`` becomes ``new_dt``; ``attrs['resample']`` says which.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = from_arrays(activity=np.arange(8.0).reshape(1, 8, 1), dt=0.01)
    >>> resample(ds, 0.02)["activity"][0, :, 0].values.tolist()
    [0.5, 2.5, 4.5, 6.5]
    >>> resample(ds, 0.005).sizes["time"]
    15
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"resample: expected a TrialDataset (xarray.Dataset), got {type(ds).__name__}")
    ds, _, _ = as_dataset(ds, "mask", "resample")
    dt = get_dt(ds, "resample")
    if not isinstance(new_dt, (int, float, np.integer, np.floating)) or not np.isfinite(new_dt) or new_dt <= 0:
        raise ValueError(f"new_dt: expected a positive number of seconds, got {new_dt!r}")
    if how not in ("mean", "sum"):
        raise ValueError(f"how: expected 'mean' or 'sum', got {how!r}")
    ratio = new_dt / dt
    if np.isclose(ratio, 1.0, rtol=1e-9):
        return ds.copy()
    time = np.asarray(ds["time"].values, dtype=float)
    mask = ds["mask"].values
    names = signal_names(ds)
    if ratio > 1:
        f = int(round(ratio))
        if not np.isclose(ratio, f, rtol=1e-6):
            raise ValueError(f"new_dt: downsampling needs a whole multiple of dt={dt}, got new_dt={new_dt}")
        n_new = mask.shape[1] // f
        if n_new < 1:
            raise ValueError(f"new_dt: {new_dt} s is longer than the {mask.shape[1]} steps of the trials")
        new_mask = mask[:, : n_new * f].reshape(mask.shape[0], n_new, f).all(axis=2)
        new_time = time[: n_new * f : f]

        def convert(values):
            blocks = values[:, : n_new * f].reshape((values.shape[0], n_new, f) + values.shape[2:])
            return blocks.mean(axis=2) if how == "mean" else blocks.sum(axis=2)
        method = f"block {how} of {f} steps"
    else:
        n_new = int(np.floor((time.size - 1) * dt / new_dt + 1e-9)) + 1
        pos = np.arange(n_new) * (new_dt / dt)
        i0 = np.minimum(np.floor(pos + 1e-9).astype(int), time.size - 1)
        w = np.clip(pos - i0, 0.0, 1.0)
        w[w < 1e-9] = 0.0
        i1 = np.minimum(i0 + 1, time.size - 1)
        new_mask = mask[:, i0] & ((w == 0) | mask[:, i1])
        new_time = time[0] + new_dt * np.arange(n_new)

        def convert(values):
            shape = (1, n_new) + (1,) * (values.ndim - 2)
            ww = w.reshape(shape)
            a, b = values[:, i0], values[:, i1]
            return np.where(ww == 0, a, (1 - ww) * a + ww * b)
        method = "linear interpolation"
    empty = ~new_mask.any(axis=1)
    if empty.any():
        raise ValueError(f"new_dt: trial {trial_label(ds, np.argmax(empty))!r} has no whole valid step "
                         f"at the new time step {new_dt} s")
    # everything along time is rebuilt; other time-indexed coords are dropped
    out = ds.drop_vars(names + ["mask"]).drop_dims("time", errors="ignore").copy()
    out = out.assign_coords(time=("time", new_time, ds["time"].attrs))
    out["mask"] = (("trial", "time"), new_mask, ds["mask"].attrs)
    for name in names:
        da = ds[name]
        with np.errstate(invalid="ignore"):
            values = convert(da.values)
        keep = new_mask.reshape(new_mask.shape + (1,) * (values.ndim - 2))
        attrs = dict(da.attrs)
        if "long_name" in attrs:  # e.g. a count per bin is now a count per block of bins
            attrs["long_name"] = f"{attrs['long_name']}, resampled to {new_dt:g} s ({method})"
        out[name] = (da.dims, np.where(keep, values, np.nan), attrs)
    out.attrs = dict(ds.attrs, dt=float(new_dt), resample=method)
    return out

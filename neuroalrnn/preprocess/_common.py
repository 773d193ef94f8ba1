"""Shared checks for the preprocess functions (private)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..schema import SIGNALS, validate

_WRAPPED = "__dataarray__"


def as_dataset(data, var: str, func: str):
    """Return ``(ds, var, was_dataarray)`` for a TrialDataset or a (trial, time, ...) DataArray.

    A DataArray is wrapped in a Dataset with ``mask`` = all features finite, and
    ``dt`` taken from its attrs or from the spacing of its ``time`` coord.
    """
    if isinstance(data, xr.Dataset):
        validate(data)
        if var not in data.data_vars:
            raise ValueError(f"{func}: var={var!r} is not a variable of the dataset "
                             f"(has {sorted(map(str, data.data_vars))})")
        if data[var].dims[:2] != ("trial", "time"):
            raise ValueError(f"{var}: expected dims ('trial', 'time', ...), got {data[var].dims}")
        return data, var, False
    if isinstance(data, xr.DataArray):
        if data.dims[:2] != ("trial", "time") or data.ndim < 2:
            raise ValueError(f"{func}: a DataArray needs dims ('trial', 'time', ...), got {data.dims}")
        if not np.issubdtype(data.dtype, np.floating):
            raise ValueError(f"{func}: expected a floating DataArray (NaN padding), got {data.dtype}")
        values = data.values.reshape(data.shape[0], data.shape[1], -1)
        if np.isinf(values).any():
            raise ValueError(f"{func}: the DataArray contains inf")
        mask = np.isfinite(values).all(axis=2)
        attrs = dict(data.attrs)
        if "dt" not in attrs and "time" in data.coords and data.sizes["time"] > 1:
            attrs["dt"] = float(np.diff(np.asarray(data["time"].values, dtype=float)).mean())
        ds = xr.Dataset({_WRAPPED: data, "mask": (("trial", "time"), mask)}, attrs=attrs)
        return ds, _WRAPPED, True
    raise TypeError(f"{func}: expected an xarray Dataset (TrialDataset) or DataArray, got {type(data).__name__}")


def unwrap(ds: xr.Dataset, var: str, was_dataarray: bool, name=None):
    """Undo :func:`as_dataset`: return the DataArray (attrs from ``ds``) or the Dataset."""
    if not was_dataarray:
        return ds
    out = ds[var].copy()
    out.attrs = {**ds.attrs, **ds[var].attrs}  # the array's own attrs (units) win over the wrapper's
    out.name = name
    return out


def get_dt(ds: xr.Dataset, func: str) -> float:
    dt = ds.attrs.get("dt")
    if dt is None:
        raise ValueError(f"{func}: attrs['dt'] is missing (the time step in seconds is needed)")
    return float(dt)


def signal_names(ds: xr.Dataset):
    """Time-series variables of ``ds`` (dims starting with trial, time), mask excluded."""
    return [name for name, v in ds.data_vars.items()
            if name != "mask" and v.dims[:2] == ("trial", "time")]


def feature_dim(ds: xr.Dataset, var: str) -> str | None:
    dims = ds[var].dims
    return dims[2] if len(dims) > 2 else SIGNALS.get(var)


def trial_label(ds, i):
    """Readable label of trial index ``i`` (a plain Python value, for messages)."""
    value = ds["trial"].values[i]
    return value.item() if hasattr(value, "item") else value


def by_trial(ds, values, name):
    """``values`` in the dataset's trial order: a DataArray on ``trial`` is matched by label."""
    if not isinstance(values, xr.DataArray):
        return values
    if values.dims == ("trial",) and "trial" in values.coords:
        labels = ds["trial"].values
        if not np.isin(labels, values["trial"].values).all():
            raise ValueError(f"{name}: a DataArray on 'trial' must cover the dataset's trial labels")
        return values.sel(trial=labels).values
    return values.values

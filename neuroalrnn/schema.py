"""The TrialDataset: one ``xarray.Dataset`` layout for every source of trials.

Layout (see ``validate``):

=========== ======================= ===============================================
name        dims                    meaning
=========== ======================= ===============================================
activity    (trial, time, unit)     recorded signal; NaN where a trial has ended
inputs      (trial, time, input)    task inputs s_t (names as ``input`` coords)
targets     (trial, time, output)   desired outputs (names as ``output`` coords)
mask        (trial, time)           bool, valid steps, derived from trial lengths
loss_weight (trial, time[, output]) optional: where a task loss applies (NaN off-mask)
coords      trial / time / unit...  per-trial variables on ``trial``; ``time`` in s
attrs       dt, align_event, ...    dt in seconds; the event that time 0 marks
=========== ======================= ===============================================

A behaviour-only dataset (no time series) has only the ``trial`` dim and its
coords. Every signal is NaN-padded where ``mask`` is False. A missing per-trial
value is NaN (numbers) or the empty string ``''`` (strings: what the table
reader and a netCDF round trip give for None/NaN); see ``is_missing``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from neuroalrnn._cf import LONG_NAMES, check_cf_attrs, set_units, signal_attrs, time_attrs, units_of

__all__ = ["validate", "from_arrays", "to_arrays", "trial_lengths", "is_missing", "set_units", "units_of"]

SIGNALS = {"activity": "unit", "inputs": "input", "targets": "output"}
DIMS = ("trial", "time", "unit", "input", "output")
_ATTR_TYPES = (str, int, float, np.integer, np.floating)


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` follows the TrialDataset layout and return it unchanged.

    Raises a ``TypeError`` or ``ValueError`` whose message names the offending
    field and what was expected.

    Examples
    --------
    >>> import numpy as np
    >>> ds = from_arrays(activity=np.zeros((2, 5, 3)), dt=0.01)
    >>> validate(ds) is ds
    True
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"TrialDataset: expected an xarray.Dataset, got {type(ds).__name__}")
    # every check reads ds.variables (plain Variables): ds[name] builds a DataArray that carries all
    # coords sharing its dims, which made validate quadratic in the number of trial coords
    variables = ds.variables
    if "trial" not in ds.dims:
        raise ValueError("TrialDataset: missing the 'trial' dimension")
    _check_index(ds, "trial")
    signals = [name for name in SIGNALS if name in ds.data_vars]
    if signals:
        _check_time(ds)
        mask = _check_mask(ds)
        for name in signals:
            _check_signal(ds, name, mask)
        if "loss_weight" in ds.data_vars:
            _check_loss_weight(ds, mask)
    elif "mask" in ds.data_vars:
        raise ValueError("mask: present, but there is no 'activity', 'inputs' or 'targets' it could mask")
    for name in ds.coords:
        dims = variables[name].dims
        if "trial" in dims and dims[0] != "trial":
            raise ValueError(f"coordinate {name!r}: 'trial' must be its first dim, got dims {dims}")
    for name, var in variables.items():
        if var.dtype == object:
            _check_objects(ds, name, var.values)
        check_cf_attrs(ds, name, var.attrs)
    for key, value in ds.attrs.items():
        _check_attr(key, value)
    return ds


def _check_objects(ds, name, values):
    """Object arrays must hold str (None/NaN for missing; netCDF stores them as ''), not other objects."""
    for item in values.ravel():
        if not (isinstance(item, str) or item is None or (isinstance(item, float) and np.isnan(item))):
            kind = "coordinate" if name in ds.coords else "variable"
            raise TypeError(f"{kind} {name!r}: object dtype holding a {type(item).__name__} ({item!r:.40}); "
                            "expected str values (None/NaN for missing), numbers or bools, which netCDF can store")


def is_missing(values) -> np.ndarray:
    """Where per-trial ``values`` are missing: NaN/NaT, None, or the empty string ``''``.

    Examples
    --------
    >>> is_missing(np.array(["a", "", "b"])).tolist(), is_missing([1.0, np.nan]).tolist()
    ([False, True, False], [False, True])
    """
    values = np.asarray(values)
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind in "US":
        return np.char.str_len(values) == 0
    if values.dtype == object:
        # pd.isna knows None, NaN, NaT, pd.NA and pd.NaT
        flat = [(isinstance(v, (str, bytes)) and len(v) == 0) or (np.ndim(v) == 0 and bool(pd.isna(v)))
                for v in values.ravel()]
        return np.array(flat, dtype=bool).reshape(values.shape)
    return np.zeros(values.shape, dtype=bool)


def _check_index(ds, dim):
    if dim not in ds.coords:
        raise ValueError(f"{dim}: the dimension {dim!r} needs a coordinate of labels")
    values = ds.variables[dim].values
    if len(np.unique(values)) != len(values):
        raise ValueError(f"{dim}: coordinate labels must be unique")


def _check_time(ds):
    if "time" not in ds.dims:
        raise ValueError("time: signals are present but the 'time' dimension is missing")
    if "dt" not in ds.attrs:
        raise ValueError("attrs['dt']: missing; expected the bin width in seconds (a positive number)")
    dt = ds.attrs["dt"]
    if not isinstance(dt, (int, float, np.integer, np.floating)) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"attrs['dt']: expected a positive finite number, got {dt!r}")
    if not isinstance(ds.attrs.get("align_event"), str):
        raise ValueError("attrs['align_event']: expected a string naming the event at time 0 "
                         f"(e.g. 'stim_on'), got {ds.attrs.get('align_event')!r}")
    if "time" not in ds.coords:
        raise ValueError("time: missing coordinate; expected times in seconds relative to align_event")
    time = ds.variables["time"].values
    if time.dtype.kind not in "iuf":
        raise ValueError(f"time: expected seconds as numbers, got dtype {time.dtype}")
    time = time.astype(float)
    if not np.all(np.isfinite(time)):
        raise ValueError("time: coordinate contains NaN or inf")
    if time.size > 1 and not np.allclose(np.diff(time), dt, rtol=1e-6, atol=1e-9 * max(1.0, abs(time).max())):
        raise ValueError(f"time: coordinate must be evenly spaced by attrs['dt']={dt}")


def _check_mask(ds):
    if "mask" not in ds.data_vars:
        raise ValueError("mask: missing; expected a bool (trial, time) variable of valid steps")
    mask = ds.variables["mask"]
    if mask.dims != ("trial", "time"):
        raise ValueError(f"mask: expected dims ('trial', 'time'), got {mask.dims}")
    if mask.dtype != bool:
        raise ValueError(f"mask: expected dtype bool, got {mask.dtype}")
    empty = ~mask.values.any(axis=1)
    if empty.any():
        raise ValueError(f"mask: trial {_label(ds['trial'].values[np.argmax(empty)])!r} has no valid time step")
    return mask.values


def _check_signal(ds, name, mask):
    feature = SIGNALS[name]
    var = ds.variables[name]
    if var.dims != ("trial", "time", feature):
        raise ValueError(f"{name}: expected dims ('trial', 'time', {feature!r}), got {var.dims}")
    if not np.issubdtype(var.dtype, np.floating):
        raise ValueError(f"{name}: expected a floating dtype (NaN padding), got {var.dtype}")
    _check_index(ds, feature)
    values = var.values
    valid = np.isfinite(values)
    bad = mask[:, :, None] & ~valid
    if bad.any():
        trial, step, feat = np.argwhere(bad)[0]
        raise ValueError(f"{name}: NaN or inf inside the mask (trial {_label(ds['trial'].values[trial])!r}, "
                         f"time index {step}, {feature} {_label(ds[feature].values[feat])!r})")
    padded = ~mask[:, :, None] & ~np.isnan(values)
    if padded.any():
        trial, step, _ = np.argwhere(padded)[0]
        raise ValueError(f"{name}: expected NaN outside the mask (trial {_label(ds['trial'].values[trial])!r}, "
                         f"time index {step})")


def _check_loss_weight(ds, mask):
    weight = ds.variables["loss_weight"]
    if weight.dims not in (("trial", "time"), ("trial", "time", "output")):
        raise ValueError(f"loss_weight: expected dims ('trial', 'time') or ('trial', 'time', 'output'), "
                         f"got {weight.dims}")
    values = weight.values if weight.ndim == 3 else weight.values[:, :, None]
    inside = values[mask]
    if not np.isfinite(inside).all() or (inside < 0).any():
        raise ValueError("loss_weight: expected finite non-negative weights inside the mask")


def _label(value):
    """A numpy scalar as a plain Python value, for readable messages."""
    return value.item() if isinstance(value, np.generic) else value


def _check_attr(key, value):
    ok = isinstance(value, _ATTR_TYPES) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, (list, tuple, np.ndarray)):
        items = np.asarray(value)
        ok = items.ndim == 1 and items.dtype.kind in "iufU"
    if not ok:
        raise TypeError(f"attrs[{key!r}]: expected a str, number or 1-D list of them (netCDF-storable), "
                        f"got {type(value).__name__}")


def from_arrays(activity=None, inputs=None, targets=None, *, dt: float = 1.0,
                lengths: Sequence[int] | None = None, align_event: str = "trial_start",
                t_start: float = 0.0, trial=None, trial_coords: Mapping | None = None,
                unit=None, input_names=None, output_names=None, attrs: Mapping | None = None,
                units: Mapping[str, str] | None = None,
                long_names: Mapping[str, str] | None = None) -> xr.Dataset:
    """Build a validated TrialDataset from (trial, time, feature) arrays.

    Each signal is an array (trial, time, feature) or a list of (time_i, feature)
    arrays of different lengths; ragged trials are NaN-padded and ``mask`` is
    derived from the true lengths (``lengths`` or the list's lengths; a dense
    array without ``lengths`` is taken as all valid).

    Parameters
    ----------
    activity, inputs, targets : array or list of arrays, optional
    dt : float
        Bin width in seconds.
    lengths : sequence of int, optional
        True number of steps per trial for dense arrays.
    align_event : str
        Name of the event at time ``t_start`` of every trial.
    t_start : float
        Time (s) of the first bin relative to ``align_event``.
    trial : array, optional
        Trial labels (default 0..n-1).
    trial_coords : mapping or pandas.DataFrame, optional
        Per-trial variables (context, choice, session, ...).
    unit, input_names, output_names : array or mapping, optional
        Labels of the feature dims; a mapping gives several coords on that dim
        (its entry named like the dim gives the labels).
    attrs : mapping, optional
        Extra attributes (source, provenance). A legacy ``activity_units``
        entry becomes the units of ``activity`` (unless ``units`` gives them).
    units, long_names : mapping of signal name to str, optional
        CF ``units`` (e.g. ``{"activity": "Hz"}``) and ``long_name`` of the
        signals, stored on each variable; ``time`` always gets ``units='s'``
        (or ``attrs['time_unit']``) and a long name that names ``align_event``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = from_arrays(activity=[np.ones((4, 2)), np.ones((3, 2))], dt=0.05,
    ...                  trial_coords={"context": ["motion", "color"]})
    >>> ds["mask"].sum("time").values.tolist()
    [4, 3]
    >>> ds["time"].attrs["units"], ds["time"].attrs["long_name"]
    ('s', 'time from trial_start')
    """
    if isinstance(dt, (bool, np.bool_)) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise TypeError(f"dt: expected a positive number of seconds, got {type(dt).__name__}")
    given = {k: v for k, v in (("activity", activity), ("inputs", inputs), ("targets", targets)) if v is not None}
    padded, n_steps = {}, None
    for name, value in given.items():
        array, lens = _pad(name, value)
        first = next(iter(padded.values()), None)
        if first is not None and array.shape[:2] != first.shape[:2]:
            raise ValueError(f"{name}: shape {array.shape[:2]} (trial, time) differs from the other signals")
        if lens is not None and n_steps is not None and not np.array_equal(n_steps, lens):
            raise ValueError(f"{name}: trial lengths differ from the other signals")
        padded[name], n_steps = array, (lens if lens is not None else n_steps)
    n_trials = _n_trials(padded, trial, trial_coords)
    coords = {"trial": np.arange(n_trials) if trial is None else np.asarray(trial)}
    data_vars = {}
    if padded:
        T = next(iter(padded.values())).shape[1]
        if lengths is not None:
            lens = np.asarray(lengths)
            if lens.shape != (n_trials,) or not np.issubdtype(lens.dtype, np.integer):
                raise ValueError(f"lengths: expected {n_trials} integers, got {lengths!r}")
            if (lens < 1).any() or (lens > T).any():
                raise ValueError(f"lengths: expected values in [1, {T}]")
            if n_steps is not None and not np.array_equal(n_steps, lens):
                raise ValueError("lengths: disagree with the lengths of the ragged trial list")
            n_steps = lens
        if n_steps is None:  # dense arrays without lengths: every step is valid
            n_steps = np.full(n_trials, T)
        mask = np.arange(T)[None, :] < np.asarray(n_steps)[:, None]
        data_vars["mask"] = (("trial", "time"), mask, {"long_name": LONG_NAMES["mask"]})
        time_unit = (attrs or {}).get("time_unit", "s")
        coords["time"] = ("time", t_start + dt * np.arange(T), time_attrs(align_event, time_unit))
        var_attrs = signal_attrs(padded, units, long_names, attrs)
        for name, array in padded.items():
            array = np.where(mask[:, :, None], array, np.nan)
            data_vars[name] = (("trial", "time", SIGNALS[name]), array, var_attrs[name])
            labels = {"activity": unit, "inputs": input_names, "targets": output_names}[name]
            coords.update(_feature_coords(SIGNALS[name], labels, array.shape[2]))
    for key, value in _trial_items(trial_coords):
        value = np.asarray(value)
        if value.shape[:1] != (n_trials,):
            raise ValueError(f"trial_coords[{key!r}]: expected length {n_trials} (one per trial), "
                             f"got shape {value.shape}")
        coords[key] = (("trial",) + tuple(f"{key}_dim_{i}" for i in range(1, value.ndim)), value)
    ds_attrs = {"dt": float(dt), "align_event": align_event} if padded else {}
    ds_attrs.update(attrs or {})
    if "activity" in padded:
        ds_attrs.pop("activity_units", None)  # now on the variable (see signal_attrs)
    return validate(xr.Dataset(data_vars, coords=coords, attrs=ds_attrs))


def _check_numeric(name, dtype, where=""):
    if dtype.kind in "mM":  # numpy counts timedelta64 as an integer type: it would pass as numbers
        raise TypeError(f"{name}: {where}expected real numbers, got {dtype} (times/durations); convert them "
                        "to seconds first, e.g. values / np.timedelta64(1, 's')")


def _pad(name, value):
    if isinstance(value, (list, tuple)):
        arrays = [np.asarray(v) for v in value]
        for i, a in enumerate(arrays):
            _check_numeric(name, a.dtype, f"trial {i}: ")
            if a.dtype == bool or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
                raise TypeError(f"{name}: trial {i}: expected real numbers, got dtype {a.dtype}")
        arrays = [a.astype(float) for a in arrays]
        if not arrays:
            raise ValueError(f"{name}: empty list of trials")
        if any(a.ndim != 2 for a in arrays):
            raise ValueError(f"{name}: expected each trial as a (time, feature) array")
        n_feat = {a.shape[1] for a in arrays}
        if len(n_feat) != 1:
            raise ValueError(f"{name}: trials have different feature counts {sorted(n_feat)}")
        lens = np.array([a.shape[0] for a in arrays])
        if (lens < 1).any():
            raise ValueError(f"{name}: trial {int(np.argmin(lens))} has no time steps")
        out = np.full((len(arrays), lens.max(), n_feat.pop()), np.nan)
        for i, a in enumerate(arrays):
            out[i, : len(a)] = a
        return out, lens
    array = np.asarray(value)
    if array.ndim != 3:
        raise ValueError(f"{name}: expected a (trial, time, feature) array, got shape {array.shape}")
    _check_numeric(name, array.dtype)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name}: expected real numbers, got dtype {array.dtype}")
    return array.astype(np.result_type(array.dtype, np.float32)), None


def _n_trials(padded, trial, trial_coords):
    if padded:
        return next(iter(padded.values())).shape[0]
    if trial is not None:
        return len(trial)
    items = list(_trial_items(trial_coords))
    if not items:
        raise ValueError("from_arrays: give at least one signal, `trial` or `trial_coords`")
    return len(np.asarray(items[0][1]))


def _trial_items(trial_coords):
    if trial_coords is None:
        return []
    if hasattr(trial_coords, "columns"):  # a pandas DataFrame
        return [(str(c), trial_coords[c].to_numpy()) for c in trial_coords.columns]
    return list(trial_coords.items())


def _feature_coords(dim, labels, n):
    if labels is None:
        return {dim: np.arange(n)}
    if isinstance(labels, Mapping):
        out = {}
        for key, value in labels.items():
            value = np.asarray(value)
            if value.shape != (n,):
                raise ValueError(f"{dim} coordinate {key!r}: expected {n} values, got shape {value.shape}")
            out[key] = (dim, value)
        out.setdefault(dim, np.arange(n))
        return out
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{dim}: expected {n} labels, got shape {labels.shape}")
    return {dim: labels}


def to_arrays(ds: xr.Dataset, fill_value: float = np.nan) -> dict:
    """Return the signals of a TrialDataset as plain numpy arrays.

    The result holds ``activity``/``inputs``/``targets`` (trial, time, feature)
    where present, with ``fill_value`` outside the mask, plus ``mask`` and
    ``lengths`` (valid steps per trial).

    Examples
    --------
    >>> import numpy as np
    >>> ds = from_arrays(inputs=[np.ones((3, 1)), np.ones((2, 1))])
    >>> to_arrays(ds, fill_value=0.0)["inputs"][1, :, 0].tolist()
    [1.0, 1.0, 0.0]
    """
    validate(ds)
    out = {}
    for name in SIGNALS:
        if name in ds.data_vars:
            values = ds[name].values
            out[name] = values if np.isnan(fill_value) else np.where(np.isnan(values), fill_value, values)
    if "mask" in ds.data_vars:
        out["mask"] = ds["mask"].values.copy()
        out["lengths"] = trial_lengths(ds).values
    return out


def trial_lengths(ds: xr.Dataset) -> xr.DataArray:
    """Number of valid steps per trial, as a DataArray on ``trial``.

    Examples
    --------
    >>> import numpy as np
    >>> trial_lengths(from_arrays(activity=[np.ones((3, 1)), np.ones((1, 1))])).values.tolist()
    [3, 1]
    """
    if "mask" not in ds.data_vars:
        raise ValueError("mask: missing; this dataset has no time series")
    return ds["mask"].sum("time").rename("length")

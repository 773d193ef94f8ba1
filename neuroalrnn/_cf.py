"""CF attributes of a TrialDataset: ``units`` and ``long_name`` on each variable and coordinate.

Tools such as cf-xarray and pint-xarray read units from the variable they describe
(CF conventions), so every builder and reader puts them there: ``time`` has
``units='s'`` (``standard_name='time'``, ``axis='T'``), ``activity`` the units of
its source (``'count'`` per bin, ``'Hz'``, ``'1'`` once z-scored, a recording's
own units, ...). Datasets written before this carried the activity units only in
a dataset attribute ``activity_units``; :func:`migrate_units` moves it onto the
variable when such a dataset is built or read.
"""

from __future__ import annotations

import xarray as xr

CF_ATTRS = ("units", "long_name", "standard_name")
LONG_NAMES = {"activity": "recorded activity", "inputs": "task inputs", "targets": "target outputs",
              "mask": "valid time step"}
# the unit strings of earlier versions -> (units readable by UDUNITS/pint, long_name)
_LEGACY = {"spikes/bin": ("count", "spike count per bin"), "spikes/s": ("Hz", "firing rate"),
           "z-score": ("1", "z-scored activity")}


def time_attrs(align_event: str, units: str = "s") -> dict:
    """CF attributes of the ``time`` coordinate: seconds (or ``units``) from ``align_event``."""
    return {"units": units, "standard_name": "time", "axis": "T", "long_name": f"time from {align_event}"}


def units_attrs(units: str | None, long_name: str | None = None) -> dict:
    """``{'units': ..., 'long_name': ...}`` for a signal, translating the unit strings of earlier versions."""
    if units in _LEGACY:
        units, default = _LEGACY[units]
        long_name = long_name or default
    out = {} if units is None else {"units": str(units)}
    if long_name is not None:
        out["long_name"] = str(long_name)
    return out


def set_units(ds: xr.Dataset, name: str, units: str | None = None, long_name: str | None = None) -> xr.Dataset:
    """Return a copy of ``ds`` whose variable ``name`` carries ``units`` and ``long_name``.

    A value of ``None`` leaves that attribute as it is. ``ds`` is not changed.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> ds = set_units(from_arrays(activity=np.ones((1, 2, 1))), "activity", "Hz", "firing rate")
    >>> ds["activity"].attrs["units"], ds["activity"].attrs["long_name"]
    ('Hz', 'firing rate')
    """
    out = ds.copy()
    if name not in out.variables:
        raise ValueError(f"{name}: not a variable of the dataset (has {sorted(map(str, out.variables))})")
    attrs = dict(out.variables[name].attrs)  # a shallow copy shares attrs dicts with ds: replace, not update
    attrs.update(units_attrs(units, long_name))
    out.variables[name].attrs = attrs
    return out


def units_of(ds: xr.Dataset, name: str = "activity") -> str | None:
    """Units of variable ``name`` (its ``units`` attribute; for activity, the legacy ``activity_units``).

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> units_of(from_arrays(activity=np.ones((1, 2, 1)), units={"activity": "Hz"}))
    'Hz'
    """
    units = ds.variables[name].attrs.get("units") if name in ds.variables else None
    if units is None and name == "activity" and "activity_units" in ds.attrs:
        units = units_attrs(ds.attrs["activity_units"]).get("units")
    return units


def migrate_units(ds: xr.Dataset) -> xr.Dataset:
    """Move a legacy ``attrs['activity_units']`` onto ``activity`` (unless it has units); fill ``time``'s.

    Returns ``ds`` itself when there is nothing to do, else a shallow copy.
    """
    legacy = "activity" in ds.data_vars and "activity_units" in ds.attrs
    bare_time = "time" in ds.coords and "units" not in ds.variables["time"].attrs \
        and isinstance(ds.attrs.get("align_event"), str)
    if not (legacy or bare_time):
        return ds
    out = ds.copy()
    if legacy:
        old = out.attrs.pop("activity_units")
        attrs = dict(out.variables["activity"].attrs)
        for key, value in units_attrs(old).items():
            attrs.setdefault(key, value)
        out.variables["activity"].attrs = attrs
    if bare_time:
        out.variables["time"].attrs = {**time_attrs(out.attrs["align_event"]), **out.variables["time"].attrs}
    return out


def check_cf_attrs(ds, name, attrs) -> None:
    """CF attributes, when present, are strings."""
    for key in CF_ATTRS:
        if key in attrs and not isinstance(attrs[key], str):
            kind = "coordinate" if name in ds.coords else "variable"
            raise TypeError(f"{kind} {name!r}: attrs[{key!r}] expected a string (CF conventions), "
                            f"got {type(attrs[key]).__name__} ({attrs[key]!r:.40})")


def signal_attrs(padded, units, long_names, attrs) -> dict:
    """CF attrs of each signal in ``padded`` from the ``units``/``long_names`` mappings of from_arrays."""
    units, long_names = dict(units or {}), dict(long_names or {})
    for given, what in ((units, "units"), (long_names, "long_names")):
        for key, value in given.items():
            if key not in padded:
                raise ValueError(f"{what}: {key!r} is not a signal of this dataset (has {sorted(padded)})")
            if not isinstance(value, str):
                raise TypeError(f"{what}[{key!r}]: expected a string, got {type(value).__name__}")
    if "activity_units" in (attrs or {}):
        units.setdefault("activity", str(attrs["activity_units"]))
    out = {}
    for name in padded:
        out[name] = units_attrs(units.get(name), long_names.get(name))
        out[name].setdefault("long_name", LONG_NAMES[name])
    return out

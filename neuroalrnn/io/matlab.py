"""MATLAB files (v5 via scipy, v7.3 via h5py) mapped to a TrialDataset by a spec.

Labs store trials in many struct layouts. A :class:`MatSpec` says which field
is the activity, which are the inputs/targets, which are per-trial variables,
how the arrays are oriented, and what the struct-array index and the cell
index (segments/trials inside one struct element) are called. Both file
versions are first converted to the same plain form (dicts for structs, object
arrays for cells and struct arrays, numeric arrays in MATLAB's own shape), so
one spec reads a lab's v5 and v7.3 files alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import xarray as xr

from neuroalrnn.io import _columns
from neuroalrnn.io._matfile import _variables, load_mat_variable
from neuroalrnn.io._sniff import as_path, naming

__all__ = ["MatSpec", "KOPPE2014_SPEC", "read_mat", "load_mat_variable"]
from neuroalrnn.schema import from_arrays, validate


@dataclass(frozen=True)
class MatSpec:
    """Where a lab's MATLAB struct keeps each part of a TrialDataset.

    Parameters
    ----------
    variable : str
        Top-level variable: a struct, a struct array, or a cell array of structs.
    activity, inputs, targets : str, optional
        Field names of the signals. Each field holds one 2-D array per element,
        or a cell array of 2-D arrays (one per segment).
    orientation : {'feature_time', 'time_feature'}
        Axis order of every 2-D signal array: ``'feature_time'`` is features
        (ROIs, units, input channels) by time, as in ``X{k}`` = 20 ROIs x 72 TRs.
    element_dim : str
        Trial-coord name for the index of the struct array (e.g. ``'subject'``).
    segment_dim : str, optional
        Trial-coord name for the cell index inside each element (e.g.
        ``'segment'``); ``None`` when each element is a single trial.
    trial_vars : sequence of str
        Fields that become trial coords: a scalar per element (broadcast to its
        segments), or a cell/vector with one scalar per segment.
    time_vars : mapping of str to str
        Extra (trial, time, k) signals, e.g. phase labels: field -> variable name;
        the last dim is called ``<name>_index``.
    input_names, unit_names, output_names : str or sequence of str, optional
        Field holding the names (a cell of strings; integer labels when the file
        lacks that field), or the names themselves.
    dt : float
        Time step in seconds (or in TRs when ``time_unit='TR'``).
    time_unit : str
        Stored as ``attrs['time_unit']`` and as the ``units`` of ``time``.
    align_event : str
        Name of the event at time 0 of each trial.
    activity_units, activity_long_name : str, optional
        CF ``units`` (e.g. ``'Hz'``, ``'count'``, ``'1'`` for arbitrary units)
        and ``long_name`` of ``activity``; no ``units`` attribute when unknown.
    """

    variable: str
    activity: str | None = None
    inputs: str | None = None
    targets: str | None = None
    orientation: str = "feature_time"
    element_dim: str = "element"
    segment_dim: str | None = None
    trial_vars: Sequence[str] = ()
    time_vars: dict = field(default_factory=dict)
    input_names: str | Sequence[str] | None = None
    unit_names: str | Sequence[str] | None = None
    output_names: str | Sequence[str] | None = None
    dt: float = 1.0
    time_unit: str = "s"
    align_event: str = "segment_start"
    activity_units: str | None = None
    activity_long_name: str | None = None


#: Koppe et al. (2014) fMRI: ``Data`` is a 1 x 26 cell of subject structs, each with
#: ``X`` (1 x 5 cell of 20 ROIs x 72 TRs BOLD), ``Inp`` (1 x 5 cell of 5 x 72 binary
#: inputs named by ``Inpcodes``) and ``C_`` (1 x 5 cell of 5 x 72 one-hot phase labels,
#: kept as the ``phase`` variable). Gives 130 trials (subject x segment), dt = 1 TR.
KOPPE2014_SPEC = MatSpec(variable="Data", activity="X", inputs="Inp", orientation="feature_time",
                         element_dim="subject", segment_dim="segment", time_vars={"C_": "phase"},
                         input_names="Inpcodes", dt=1.0, time_unit="TR", align_event="segment_start",
                         activity_units="1", activity_long_name="BOLD signal (arbitrary units)")


def read_mat(path: str | os.PathLike, spec: MatSpec | None = None, *, dt: float | None = None,
             **spec_fields) -> xr.Dataset:
    """Read a MATLAB v5 or v7.3 file into a TrialDataset following ``spec``.

    Parameters
    ----------
    path : str or path-like
    spec : MatSpec, optional
        The layout; its fields may also be given as keywords (they override the
        spec's), e.g. ``read_mat(p, variable='S', activity='rates')``.
    dt : float, optional
        Time step, overriding ``spec.dt``.

    Returns
    -------
    xarray.Dataset
        One trial per (element, segment), with ``element_dim`` and
        ``segment_dim`` as integer trial coords (0-based).

    Examples
    --------
    >>> import numpy as np, scipy.io, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "lab.mat")
    >>> S = np.zeros((1, 2), dtype=[("rates", object), ("ctx", object)])
    >>> S[0, 0] = (np.ones((3, 10)), 1.0); S[0, 1] = (np.zeros((3, 8)), 2.0)
    >>> scipy.io.savemat(path, {"S": S})
    >>> ds = read_mat(path, variable="S", activity="rates", element_dim="trial_index",
    ...               trial_vars=["ctx"], dt=0.05)
    >>> dict(ds.sizes), ds["ctx"].values.tolist()
    ({'trial': 2, 'time': 10, 'unit': 3}, [1.0, 2.0])

    A variable without signals is a table of trials: a struct of per-trial
    vectors, or a struct array with one element per trial.

    >>> scipy.io.savemat(path, {"trials": {"choice": np.array([1, -1, 1]), "rt": np.array([[.3, .5, .4]]),
    ...                                    "subject": "rat1"}})
    >>> ds = read_mat(path, variable="trials")
    >>> ds["choice"].values.tolist(), ds.attrs["subject"]
    ([1, -1, 1], 'rat1')
    """
    path = as_path(path)
    with naming(path):
        return _read_mat(path, spec, dt, spec_fields)


def _read_mat(path, spec, dt, spec_fields):
    table_options = {k: spec_fields.pop(k) for k in ("columns", "exclude") if k in spec_fields}
    if spec is None:
        if "variable" not in spec_fields:
            raise TypeError(f"a MATLAB file needs a MatSpec (`spec=`) or at least `variable=` (and a signal "
                            f"field, unless the variable is a table of trials); the file holds {_variables(path)}")
        spec = MatSpec(**spec_fields)  # an unknown keyword is a TypeError that naming() prefixes
    elif spec_fields:
        spec = MatSpec(**{**spec.__dict__, **spec_fields})
    if spec.orientation not in ("feature_time", "time_feature"):
        raise ValueError(f"orientation: expected 'feature_time' or 'time_feature', got {spec.orientation!r}")
    if not any((spec.activity, spec.inputs, spec.targets)):
        return _read_table(path, spec.variable, **table_options)
    if table_options:
        raise TypeError("columns/exclude select the fields of a table of trials; with signals, "
                        "name the per-trial fields with trial_vars=[...]")
    top = load_mat_variable(path, spec.variable)
    elements = _elements(top, spec.variable)
    signals, coords, names = {}, {spec.element_dim: []}, {}
    if spec.segment_dim:
        coords[spec.segment_dim] = []
    per_trial = {name: [] for name in spec.trial_vars}
    fields = {"activity": spec.activity, "inputs": spec.inputs, "targets": spec.targets,
              **{f"time_var:{v}": k for k, v in spec.time_vars.items()}}
    for i, element in enumerate(elements):
        counts = set()
        segs = {}
        for role, fname in fields.items():
            if fname is None:
                continue
            segs[role] = _segments(_field(element, fname, i, spec), fname, i, spec)
            counts.add(len(segs[role]))
        if len(counts) != 1:
            raise ValueError(f"{spec.variable}[{i}]: the signal fields {[f for f in fields.values() if f]} "
                             f"have different segment counts {sorted(counts)}")
        n_seg = counts.pop()
        for role, arrays in segs.items():
            signals.setdefault(role, []).extend(arrays)
        coords[spec.element_dim].extend([i] * n_seg)
        if spec.segment_dim:
            coords[spec.segment_dim].extend(range(n_seg))
        for name in spec.trial_vars:
            per_trial[name].extend(_trial_var(_field(element, name, i, spec), name, i, n_seg))
    for role in ("inputs", "activity", "targets"):
        label_source = {"inputs": spec.input_names, "activity": spec.unit_names,
                        "targets": spec.output_names}[role]
        names[role] = _names(label_source, elements[0], signals.get(role), role, spec)
    coords.update(per_trial)
    attrs = {"source": path.name, "source_format": "MATLAB", "time_unit": spec.time_unit,
             "mat_variable": spec.variable}
    cf = {"units": {"activity": spec.activity_units}, "long_names": {"activity": spec.activity_long_name}}
    cf = {k: {n: v for n, v in d.items() if v is not None and n in signals} for k, d in cf.items()}
    ds = from_arrays(activity=signals.get("activity"), inputs=signals.get("inputs"),
                     targets=signals.get("targets"), dt=float(spec.dt if dt is None else dt),
                     align_event=spec.align_event, trial_coords={k: np.asarray(v) for k, v in coords.items()},
                     unit=names["activity"], input_names=names["inputs"], output_names=names["targets"],
                     attrs=attrs, **cf)
    for role in fields:
        if role.startswith("time_var:") and role in signals:
            var = role.split(":", 1)[1]
            padded = np.full(ds["mask"].shape + (signals[role][0].shape[1],), np.nan)
            for t, a in enumerate(signals[role]):
                if len(a) != int(ds["mask"][t].sum()):
                    raise ValueError(f"{var}: trial {t} has {len(a)} steps, the signals have "
                                     f"{int(ds['mask'][t].sum())}")
                padded[t, : len(a)] = a
            ds[var] = (("trial", "time", f"{var}_index"), padded)
    return validate(ds)


# ---------------------------------------------------------------- tables of trials

def _read_table(path, variable, columns=None, exclude=()):
    """A struct of per-trial vectors, or a struct array of one element per trial, as a table."""
    from neuroalrnn.io.tables import from_table

    top = load_mat_variable(path, variable)
    if isinstance(top, dict):
        fields = _columns.select(top, columns, exclude)
        table = {name: _vector(value, name) for name, value in fields.items()}
    elif isinstance(top, np.ndarray) and top.dtype == object and top.size and \
            all(isinstance(e, dict) for e in top.ravel()):
        elements = list(top.ravel(order="F"))
        fields = _columns.select({k: None for k in elements[0]}, columns, exclude)
        table = {name: _per_element(elements, name) for name in fields}
    else:
        raise ValueError(f"{variable}: without activity/inputs/targets, expected a table of trials (a struct "
                         f"of per-trial vectors, or a struct array with one element per trial), got "
                         f"{getattr(top, 'shape', type(top).__name__)}")
    ds = from_table(table, source=path.name)
    ds.attrs.update(source_format="MATLAB", mat_variable=variable)
    return ds


def _vector(value, name):
    """A struct field as a table column: MATLAB's 1 x n / n x 1 vectors become 1-D, 1 x 1 a single value."""
    if isinstance(value, dict):
        raise TypeError(f"field {name!r}: a struct inside the table; read it with variable=... on its own "
                        f"(or exclude=[{name!r}])")
    if isinstance(value, str):
        return np.array(value)
    value = np.asarray(value)
    if value.dtype == object:  # a cell: one string or number per trial
        return np.array([_cell_item(v, name) for v in value.ravel(order="F")], dtype=object)
    if value.ndim == 2 and 1 in value.shape:
        return value.ravel(order="F") if value.size != 1 else value.reshape(())
    return value


def _per_element(elements, name):
    """One value per struct-array element; empty values ([]) are missing."""
    items = [_cell_item(e.get(name), name) for e in elements]
    present = [v for v in items if v is not None]
    if present and all(isinstance(v, (int, float, bool, np.number, np.bool_)) for v in present):
        return np.array([np.nan if v is None else v for v in items],
                        dtype=float if len(present) < len(items) else None)
    return np.array(items, dtype=object)


def _cell_item(value, name):
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, dict):
        raise TypeError(f"field {name!r}: holds structs; exclude=[{name!r}] or read it with variable=...")
    value = np.asarray(value)
    if value.size == 0:
        return None
    if value.size != 1 or value.dtype == object:
        raise ValueError(f"field {name!r}: holds a {value.shape} array per trial, not one value; name it as a "
                         f"signal (activity=..., with a spec) or leave it out with exclude=[{name!r}]")
    if value.dtype.kind == "c":
        raise TypeError(f"field {name!r}: complex values; per-trial variables are real numbers or text")
    return value.ravel()[0].item()


# ---------------------------------------------------------------- spec helpers

def _elements(top, variable):
    if isinstance(top, dict):
        return [top]
    if isinstance(top, np.ndarray) and top.dtype == object:
        items = list(top.ravel(order="F"))  # MATLAB's column-major element order
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"{variable}[{i}]: expected a struct, got {type(item).__name__}")
        return items
    raise ValueError(f"{variable}: expected a struct, struct array or cell array of structs, "
                     f"got {type(top).__name__}")


def _field(element, name, i, spec):
    if name not in element:
        raise ValueError(f"{spec.variable}[{i}]: missing field {name!r}; the fields are {sorted(element)}")
    return element[name]


def _segments(value, fname, i, spec):
    if isinstance(value, np.ndarray) and value.dtype == object:
        arrays = list(value.ravel(order="F"))
        if spec.segment_dim is None and len(arrays) != 1:
            raise ValueError(f"{fname}: element {i} is a cell of {len(arrays)} arrays; "
                             "set `segment_dim` to name the cell index")
    else:
        arrays = [value]
    out = []
    for k, a in enumerate(arrays):
        if isinstance(a, np.ndarray) and a.dtype.kind == "c":
            raise TypeError(f"{fname}: element {i} segment {k}: complex values; a TrialDataset signal is real "
                            "(store the real and imaginary parts, or magnitude and phase, as two fields)")
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype.kind not in "biuf":
            raise ValueError(f"{fname}: element {i} segment {k}: expected a 2-D numeric array, "
                             f"got {getattr(a, 'shape', type(a).__name__)}")
        a = a.astype(float)
        out.append(a.T if spec.orientation == "feature_time" else a)  # -> (time, feature)
    return out


def _trial_var(value, name, i, n_seg):
    if isinstance(value, np.ndarray) and value.dtype == object:
        items = [_scalar(v, name, i) for v in value.ravel(order="F")]
    elif isinstance(value, str):
        items = [value]
    else:
        items = [_scalar(v, name, i) for v in np.asarray(value).ravel(order="F")]
    if len(items) == 1:
        return items * n_seg
    if len(items) != n_seg:
        raise ValueError(f"{name}: element {i} has {len(items)} values, expected 1 or one per segment ({n_seg})")
    return items


def _scalar(v, name, i):
    if isinstance(v, str):
        return v
    v = np.asarray(v)
    if v.dtype.kind == "c":
        raise TypeError(f"{name}: element {i}: a complex value; per-trial variables are real numbers or text")
    if v.size != 1:
        raise ValueError(f"{name}: element {i}: expected a scalar per segment, got shape {v.shape}")
    return v.ravel()[0]


def _names(source, element, arrays, role, spec):
    if arrays is None or source is None:
        return None
    n = arrays[0].shape[1]
    names = element.get(source) if isinstance(source, str) else source
    if names is None:  # a names field that this file lacks: integer labels
        return None
    if isinstance(names, np.ndarray) and names.dtype == object:
        names = [str(_scalar(v, source, 0)) for v in names.ravel(order="F")]
    elif isinstance(names, str):
        names = [names]
    names = [str(s) for s in names]
    if len(names) != n:
        raise ValueError(f"{role} names: {len(names)} names for {n} channels")
    return np.asarray(names)

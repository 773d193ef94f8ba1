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
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from neuroalrnn.io._sniff import FORMATS, sniff
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
        Stored as ``attrs['time_unit']``.
    align_event : str
        Name of the event at time 0 of each trial.
    activity_units : str
        Stored as ``attrs['activity_units']``.
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
    activity_units: str = "a.u."


#: Koppe et al. (2014) fMRI: ``Data`` is a 1 x 26 cell of subject structs, each with
#: ``X`` (1 x 5 cell of 20 ROIs x 72 TRs BOLD), ``Inp`` (1 x 5 cell of 5 x 72 binary
#: inputs named by ``Inpcodes``) and ``C_`` (1 x 5 cell of 5 x 72 one-hot phase labels,
#: kept as the ``phase`` variable). Gives 130 trials (subject x segment), dt = 1 TR.
KOPPE2014_SPEC = MatSpec(variable="Data", activity="X", inputs="Inp", orientation="feature_time",
                         element_dim="subject", segment_dim="segment", time_vars={"C_": "phase"},
                         input_names="Inpcodes", dt=1.0, time_unit="TR", align_event="segment_start",
                         activity_units="BOLD (a.u.)")


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
    """
    if spec is None:
        if "variable" not in spec_fields:
            raise TypeError(f"{path}: a MATLAB file needs a MatSpec (`spec=`) or at least `variable=` and "
                            f"a signal field; the file holds {_variables(Path(path))}")
        spec = MatSpec(**spec_fields)
    elif spec_fields:
        spec = MatSpec(**{**spec.__dict__, **spec_fields})
    if spec.orientation not in ("feature_time", "time_feature"):
        raise ValueError(f"orientation: expected 'feature_time' or 'time_feature', got {spec.orientation!r}")
    if not any((spec.activity, spec.inputs, spec.targets)):
        raise ValueError("spec: name at least one of `activity`, `inputs`, `targets`")
    path = Path(path)
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
             "activity_units": spec.activity_units, "mat_variable": spec.variable}
    ds = from_arrays(activity=signals.get("activity"), inputs=signals.get("inputs"),
                     targets=signals.get("targets"), dt=float(spec.dt if dt is None else dt),
                     align_event=spec.align_event, trial_coords={k: np.asarray(v) for k, v in coords.items()},
                     unit=names["activity"], input_names=names["inputs"], output_names=names["targets"],
                     attrs=attrs)
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


# ---------------------------------------------------------------- spec helpers

def _variables(path):
    try:
        if sniff(path) == "mat5":
            import scipy.io

            return [name for name, _, _ in scipy.io.whosmat(path)]
        import h5py

        with h5py.File(path, "r") as f:
            return [k for k in f if not k.startswith("#")]
    except Exception:  # only used to enrich an error message
        return "(unreadable)"


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
        items = list(np.asarray(value).ravel(order="F"))
    if len(items) == 1:
        return items * n_seg
    if len(items) != n_seg:
        raise ValueError(f"{name}: element {i} has {len(items)} values, expected 1 or one per segment ({n_seg})")
    return items


def _scalar(v, name, i):
    if isinstance(v, str):
        return v
    v = np.asarray(v)
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


# ------------------------------------------------------------ file -> plain form

def load_mat_variable(path: str | os.PathLike, variable: str):
    """Read one variable of a v5 or v7.3 MAT-file as plain Python/numpy objects.

    Structs become dicts, cell arrays and struct arrays become object arrays (in
    MATLAB's shape), numeric arrays keep MATLAB's shape, char arrays become str.

    Examples
    --------
    >>> import numpy as np, scipy.io, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.mat")
    >>> scipy.io.savemat(path, {"x": np.arange(6).reshape(2, 3)})
    >>> load_mat_variable(path, "x").shape
    (2, 3)
    """
    path = Path(path)
    kind = sniff(path)
    if kind == "mat5":
        return _load_v5(path, variable)
    if kind in ("mat73", "hdf5"):
        return _load_v73(path, variable)
    raise ValueError(f"{path}: expected a MATLAB MAT-file (v5 or v7.3), but the file is {FORMATS[kind]}")


def _load_v5(path, variable):
    import scipy.io

    try:
        contents = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True, variable_names=[variable])
    except Exception as err:  # scipy raises many types for corrupt files
        raise ValueError(f"{path}: expected {FORMATS['mat5']}, but it cannot be read "
                         f"(truncated or corrupt?): {type(err).__name__}: {err}") from None
    if variable not in contents:
        names = [k for k in scipy.io.whosmat(path)]
        raise ValueError(f"{path}: no variable {variable!r}; the file holds {[n[0] for n in names]}")
    return _from_v5(contents[variable])


def _from_v5(value):
    if isinstance(value, np.ndarray):
        if value.dtype.names:  # struct (array)
            items = np.empty(value.shape, dtype=object)
            for idx in np.ndindex(value.shape):
                items[idx] = {name: _from_v5(value[idx][name]) for name in value.dtype.names}
            return items[0, 0] if items.size == 1 and items.ndim == 2 else items
        if value.dtype == object:  # cell
            out = np.empty(value.shape, dtype=object)
            for idx in np.ndindex(value.shape):
                out[idx] = _from_v5(value[idx])
            return out
        if value.dtype.kind == "U":
            return "".join(value.ravel().tolist()) if value.size <= 1 else [str(s) for s in value.ravel()]
        return value
    return value


def _load_v73(path, variable):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if variable not in f:
                raise ValueError(f"{path}: no variable {variable!r}; the file holds "
                                 f"{[k for k in f if not k.startswith('#')]}")
            return _from_h5(f[variable], f)
    except OSError as err:
        raise ValueError(f"{path}: expected {FORMATS['mat73']}, but HDF5 cannot read it: {err}") from None


def _mclass(obj):
    cls = obj.attrs.get("MATLAB_class", b"")
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def _from_h5(obj, f):
    import h5py

    cls = _mclass(obj)
    if isinstance(obj, h5py.Group):
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in obj.attrs.get("MATLAB_fields", [])]
        names = ["".join(c.decode() if isinstance(c, bytes) else str(c) for c in np.ravel(n)) for n in names] \
            if names and not isinstance(names[0], str) else names
        keys = [k for k in (names or list(obj.keys())) if k in obj]
        fields = {k: obj[k] for k in keys}
        array_like = [d for d in fields.values() if isinstance(d, h5py.Dataset)
                      and d.dtype == h5py.ref_dtype and _mclass(d) != "cell"]
        if array_like and len(array_like) == len(fields):  # struct array: each field holds refs per element
            shape = array_like[0].shape[::-1]
            out = np.empty(shape, dtype=object)
            for idx in np.ndindex(shape):
                out[idx] = {k: _from_h5(f[d[idx[::-1]]], f) for k, d in fields.items()}
            return out[0, 0] if out.size == 1 and out.ndim == 2 else out
        return {k: _from_h5(d, f) for k, d in fields.items()}
    if obj.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = obj[()]
    if cls == "cell" or obj.dtype == h5py.ref_dtype:
        data = np.asarray(data).T
        out = np.empty(data.shape, dtype=object)
        for idx in np.ndindex(data.shape):
            out[idx] = _from_h5(f[data[idx]], f)
        return out
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel(order="F"))
    if data.dtype.names and {"real", "imag"} <= set(data.dtype.names):
        raise TypeError(f"{obj.name}: complex MATLAB arrays are not supported as TrialDataset fields")
    data = np.asarray(data).T  # HDF5 holds MATLAB's column-major arrays transposed
    return data.astype(bool) if cls == "logical" else data

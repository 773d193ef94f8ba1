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

from neuroalrnn.io._matfile import _variables, load_mat_variable

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

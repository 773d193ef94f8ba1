"""Per-trial tables (pandas DataFrame, CSV, NPZ of arrays) -> TrialDataset.

Each column with one value per trial becomes a trial coord; the arrays of a
lab's export (scalars, (n, k) per-trial arrays, trial counts per session)
follow the rules of :mod:`neuroalrnn.io._columns`. Optional signals:

- ``activity``/``inputs``/``targets``: a (trial, time, feature) array (an NPZ
  key or a mapping entry), a ragged layout (a (sum of lengths, feature) array
  plus ``<name>_lengths``), a DataFrame column whose entries are (time,
  feature) arrays, or, for inputs and targets, an (n, k) per-trial array
  taken as one time step of k channels;
- ``spikes``: one array of session spike times per unit (or NPZ keys
  ``spike_times`` + ``spike_clusters``), binned around ``align_event`` with
  :func:`neuroalrnn.preprocess.bin_spike_times`.

NPZ files are read with ``allow_pickle=False``: a key that holds pickled
objects is refused with a ``ValueError``.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import xarray as xr

from neuroalrnn.io import _columns
from neuroalrnn.io._sniff import FORMATS, as_path, naming, sniff
from neuroalrnn.io._tablefile import read_csv, read_npz
from neuroalrnn.schema import from_arrays

SESSION_COLUMNS = ("session_date", "session_id", "eid", "session_name")
_ROLES = ("activity", "inputs", "targets")


def read_table(path: str | os.PathLike, format: str | None = None, *, encoding: str | None = None,
               dtype=None, na_values=None, **options) -> xr.Dataset:
    """Read a CSV or NPZ per-trial table into a TrialDataset.

    Parameters
    ----------
    path : str or path-like
    format : {'csv', 'npz'}, optional
        Checked against the file's content (found by sniffing when omitted).
    encoding : str, optional
        CSV text encoding. By default UTF-8; a file that is not UTF-8 is read as
        Windows-1252 (Latin-1) with a warning.
    dtype, na_values : optional
        Passed to ``pandas.read_csv`` (CSV only), e.g. ``dtype={'subject': str}``
        keeps a column of mostly numbers as text (otherwise a non-number among
        numbers is an error naming its row), ``na_values=['-']`` marks missing cells.
    **options
        Passed to :func:`from_table` (``columns=``/``exclude=`` choose the
        columns). An NPZ may carry a 0-d ``dt`` key.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.npz")
    >>> np.savez(path, choice=np.array([1, -1]), session_date=np.array(["2020-01-01"] * 2))
    >>> read_table(path)["session"].values.tolist()
    ['2020-01-01', '2020-01-01']
    """
    path = as_path(path)
    kind = sniff(path)
    if format is not None and kind != format:
        raise ValueError(f"{path}: expected {FORMATS.get(format, format)}, but the file is {FORMATS[kind]}")
    if kind == "npz":
        if encoding is not None or dtype is not None or na_values is not None:
            raise TypeError(f"{path}: encoding, dtype and na_values are CSV options; this file is {FORMATS[kind]}")
        columns = read_npz(path)
    elif kind == "csv":
        columns = read_csv(path, encoding=encoding, dtype=dtype, na_values=na_values)
    else:
        raise ValueError(f"{path}: expected a CSV or NPZ table, but the file is {FORMATS[kind]}")
    if "dt" in columns and np.ndim(columns["dt"]) == 0:
        columns = dict(columns)
        dt = columns.pop("dt")
        if np.asarray(dt).dtype.kind not in "iuf":
            raise ValueError(f"{path}: key 'dt': expected the time step in seconds, got {dt!r}")
        options.setdefault("dt", float(dt))
    options.setdefault("source", path.name)
    with naming(path):
        return from_table(columns, **options)


def from_table(table, *, activity: str | Sequence[str] | None = None,
               inputs: str | Sequence[str] | None = None, targets: str | Sequence[str] | None = None,
               dt: float | None = None, spikes=None,
               align_event: str | None = None, window: tuple[float, float] | None = None,
               bin_size: float | None = None, stop_event: str | None = None,
               session: str | None = "auto", unit=None, source: str = "table",
               columns: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> xr.Dataset:
    """Build a TrialDataset from a per-trial table.

    Parameters
    ----------
    table : pandas.DataFrame or mapping of str to array
        One row (entry) per trial. Mapping values may be (trial, time, feature)
        arrays or ragged ``(sum(lengths), feature)`` arrays with ``<name>_lengths``;
        single values become attributes, (n, k) arrays k columns ``name_0``...,
        and a vector of trial counts per session (summing to n) a ``session``
        coord (see :mod:`neuroalrnn.io._columns`).
    activity, inputs, targets : str or list of str, optional
        Column(s)/key(s) holding that signal (several are joined along the
        feature dim). Keys named ``activity``/``inputs``/``targets`` are used
        without being named. An (n, k) array named as ``inputs``/``targets`` is
        one time step of k channels per trial (labels ``name_0``...).
    dt : float, optional
        Time step (s) of the signals; required with them.
    spikes : sequence of 1-D arrays or str, optional
        Session spike times per unit (s), or the name of a column whose entries
        are per-trial lists of per-unit spike times relative to ``align_event``
        (spikes outside ``window`` are not counted).
        A mapping with ``spike_times`` and ``spike_clusters`` is used when
        ``spikes`` is omitted.
    align_event : str, optional
        Column of per-trial event times the spikes are aligned to (required with spikes).
    window : (t0, t1), bin_size : float
        Binning grid around the event, as in :func:`~neuroalrnn.preprocess.bin_spike_times`.
    stop_event : str, optional
        Column of trial end times (session times, like ``align_event``); bins
        past it are masked. Not used with per-trial spike lists.
    session : str or None
        Column copied to a ``session`` trial coord; ``'auto'`` uses the first of
        ``session_date``, ``session_id``, ``eid``, ``session_name`` present.
    unit : array, optional
        Unit labels.
    source : str
        Stored in ``attrs['source']``.
    columns, exclude : list of str, optional
        Keep only these columns / leave these out (before any other rule).

    Examples
    --------
    >>> import pandas as pd
    >>> ds = from_table(pd.DataFrame({"choice": [1, -1, 1], "rt": [0.3, 0.5, 0.4]}))
    >>> dict(ds.sizes), ds["rt"].values.tolist()
    ({'trial': 3}, [0.3, 0.5, 0.4])
    >>> import numpy as np
    >>> lab = {"y": np.array([1, 2, 2]), "s_a": np.zeros((3, 2)), "dayLength": np.array([2, 1]),
    ...        "name": np.array("rat1")}
    >>> ds = from_table(lab)
    >>> ds["session"].values.tolist(), ds.attrs["name"], sorted(ds.coords)
    ([0, 0, 1], 'rat1', ['s_a_0', 's_a_1', 'session', 'trial', 'y'])
    """
    columns, file_attrs = _columns.split_scalars(_columns.select(_as_columns(table), columns, exclude))
    if not columns:
        raise ValueError("table: no columns; expected one column per trial variable")
    roles = {"activity": activity, "inputs": inputs, "targets": targets}
    for role in _ROLES:
        value = columns.get(role)
        if roles[role] is None and value is not None and (np.ndim(value) >= 2 or f"{role}_lengths" in columns
                                                          or getattr(value, "dtype", None) == object):
            roles[role] = role
            if np.ndim(columns[role]) == 2 and f"{role}_lengths" not in columns:
                raise ValueError(f"{role}: a 2-D array of shape {np.shape(columns[role])}; expected (trial, time, "
                                 f"feature). Reshape it: x[:, :, None] for (trial, time) of one feature, "
                                 f"x[:, None, :] for one time step of k features")
    consumed = set()
    if spikes is None and "spike_times" in columns and "spike_clusters" in columns:
        spikes = _split_clusters(columns["spike_times"], columns["spike_clusters"])
        consumed |= {"spike_times", "spike_clusters"}
    signal_values, labels = {}, {}
    for role, names in roles.items():
        if names is None:
            continue
        signal_values[role], labels[role], used = _signal(columns, role, names)
        consumed |= used
    spike_column = spikes if isinstance(spikes, str) else None
    if spike_column is not None:
        consumed.add(spike_column)
    sized = dict(signal_values, **({spike_column: columns[spike_column]} if spike_column else {}))
    hint = len(next(iter(sized.values()))) if sized else None
    n, ref = _columns.n_trials({k: v for k, v in columns.items() if k not in consumed} or sized, hint)
    for key, value in sized.items():
        if len(value) != n:
            raise ValueError(f"column {key!r} (signal): has {len(value)} trials, expected {n} (the length of "
                             f"{ref!r}); every column needs one value per trial")
    if n == 0:
        raise ValueError("table: has no rows; expected at least one trial")
    coords = _columns.trial_columns({k: v for k, v in columns.items() if k not in consumed}, n, ref)
    if session == "auto":
        session = next((c for c in SESSION_COLUMNS if c in coords), None) if "session" not in coords else None
    if session is not None:
        if session not in coords:
            raise ValueError(f"session: no column {session!r}; the columns are {sorted(coords)}")
        coords["session"] = coords[session]
    attrs = {**file_attrs, "source": str(source), "source_format": "table"}
    units = {}
    if spikes is not None:
        from neuroalrnn.preprocess.spikes import spike_units

        if signal_values.get("activity") is not None:
            raise ValueError("spikes: give either spikes or an activity column, not both")
        signal_values["activity"], dt, t_start, lengths = _bin(columns, coords, spikes, align_event,
                                                               window, bin_size, stop_event, n)
        attrs["bin_size"] = float(dt)
        units["activity"] = spike_units("counts", dt)
    else:
        t_start, lengths = 0.0, None
        if align_event is not None and not signal_values:
            raise ValueError("align_event: only used with signals or spikes")
    if signal_values and dt is None:
        raise ValueError("dt: the time step (s) of the per-trial signals is needed (give dt=...)")
    kwargs = dict(dt=float(dt), align_event=align_event or "trial_start", t_start=t_start,
                  lengths=lengths) if signal_values else {}
    trial = np.arange(n)
    if "trial" in coords:  # a column of trial labels: use it when the labels are unique
        if len(np.unique(coords["trial"])) == n:
            trial = coords.pop("trial")
        else:
            coords["trial_label"] = coords.pop("trial")
    if labels.get("activity") is not None:
        unit = labels["activity"]
    return from_arrays(**signal_values, trial_coords=coords, trial=trial, unit=unit,
                       input_names=labels.get("inputs"), output_names=labels.get("targets"), attrs=attrs,
                       units={k: v[0] for k, v in units.items()},
                       long_names={k: v[1] for k, v in units.items()}, **kwargs)


def _as_columns(table):
    if hasattr(table, "columns") and hasattr(table, "to_dict"):  # DataFrame
        return {str(c): table[c].to_numpy() for c in table.columns}
    if isinstance(table, Mapping):
        return {str(k): v for k, v in table.items()}
    raise TypeError(f"table: expected a pandas DataFrame or a mapping of columns, got {type(table).__name__}")


def _signal(columns, role, names):
    """(values, feature labels or None, columns used) of a signal given by one or several column names."""
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        if name not in columns:
            raise ValueError(f"{role}: no column {name!r}; the columns are {sorted(columns)}")
    parts = [_one_signal(columns, role, name) for name in names]
    used = set(names) | {f"{name}_lengths" for name in names}
    if len(parts) == 1:
        return parts[0][0], parts[0][1], used
    if any(isinstance(values, list) for values, _ in parts) or len({v.shape[:2] for v, _ in parts}) != 1:
        raise ValueError(f"{role}: the columns {names} need the same (trial, time) shape to be joined, got "
                         f"{[np.shape(v) if not isinstance(v, list) else 'ragged' for v, _ in parts]}")
    labels = [lab if lab is not None else [f"{name}_{j}" for j in range(v.shape[2])]
              for (v, lab), name in zip(parts, names)]
    return np.concatenate([v for v, _ in parts], axis=2), np.concatenate(labels), used


def _one_signal(columns, role, name):
    value = columns[name]
    lengths_key = f"{name}_lengths"
    if lengths_key in columns:
        lengths = np.asarray(columns[lengths_key])
        flat = np.asarray(value)
        if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer) or (lengths < 1).any():
            raise ValueError(f"{lengths_key}: expected positive integers, one per trial")
        if flat.ndim != 2 or flat.shape[0] != lengths.sum():
            raise ValueError(f"{name}: with {lengths_key}, expected a ({lengths.sum()}, feature) array "
                             f"(trials stacked along time), got shape {flat.shape}")
        return np.split(flat, np.cumsum(lengths)[:-1]), None
    value = np.asarray(value) if not (isinstance(value, np.ndarray) and value.dtype == object) else value
    if value.dtype == object:  # a column of per-trial (time, feature) arrays; from_arrays checks them
        return [np.asarray(v) for v in value], None
    if value.ndim == 2 and role != "activity":  # per-trial channels (e.g. two stimuli): one time step
        return value[:, None, :], np.array([f"{name}_{j}" for j in range(value.shape[1])])
    if value.ndim != 3:
        hint = (" (a 2-D activity is ambiguous: reshape it, x[:, :, None] for (trial, time) of one unit or "
                "x[:, None, :] for one step of k units)") if value.ndim == 2 else ""
        raise ValueError(f"{name}: expected a (trial, time, feature) array, a column of (time, feature) "
                         f"arrays, or a ragged array with {lengths_key}; got shape {value.shape}{hint}")
    return value, None


def _split_clusters(times, clusters):
    times, clusters = np.asarray(times, dtype=float), np.asarray(clusters)
    if times.shape != clusters.shape or times.ndim != 1:
        raise ValueError(f"spike_clusters: expected the shape of spike_times {times.shape}, got {clusters.shape}")
    order = np.argsort(clusters, kind="stable")  # stable: keeps each unit's time order
    ids, starts = np.unique(clusters[order], return_index=True)
    return dict(zip(ids.tolist(), np.split(times[order], starts[1:])))


def _bin(columns, coords, spikes, align_event, window, bin_size, stop_event, n):
    from neuroalrnn.preprocess import bin_spike_times, spikes_to_dataset
    from neuroalrnn.schema import trial_lengths

    if window is None or bin_size is None:
        raise ValueError("window, bin_size: both are needed to bin spikes (e.g. window=(-0.5, 1.0), bin_size=0.01)")
    if isinstance(spikes, str):  # per-trial lists of per-unit spike times relative to the event
        if stop_event is not None:
            raise ValueError(f"stop_event: not supported with per-trial spike lists ({spikes!r}); mask "
                             "the trials afterwards, or give session spike times with an align_event column")
        return _bin_per_trial(columns[spikes], spikes, window, bin_size, bin_spike_times)
    if align_event is None or align_event not in coords:
        raise ValueError(f"align_event: expected a column of per-trial event times (s), got {align_event!r}")
    if stop_event is not None and stop_event not in coords:
        raise ValueError(f"stop_event: expected a column of per-trial end times (s), got {stop_event!r}; "
                         f"the columns are {sorted(coords)}")
    if isinstance(spikes, Mapping):
        spikes = list(spikes.values())
    align = np.asarray(coords[align_event], dtype=float)
    stop = None if stop_event is None else np.asarray(coords[stop_event], dtype=float)
    binned = spikes_to_dataset(spikes, align, window, bin_size, stop)  # checks stop vs. the first bin
    lengths = None if stop is None else trial_lengths(binned).values
    return binned["activity"].values, float(bin_size), float(binned["time"].values[0]), lengths


def _bin_per_trial(column, name, window, bin_size, bin_spike_times):
    trials = [[np.asarray(t, dtype=float) for t in trial] for trial in column]
    # bin_spike_times wants times >= 0: shift every trial by the same amount so that the
    # earliest spike and the window start are >= 0; spikes outside the window are not counted
    finite = [t[np.isfinite(t)] for trains in trials for t in trains]
    low = min([float(window[0])] + [float(t.min()) for t in finite if t.size])
    shift = max(0.0, -low)
    out, starts = [], None
    for i, trains in enumerate(trials):
        try:
            counts, starts = bin_spike_times([t + shift for t in trains], np.array([shift]), window, bin_size)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name}: trial {i}: {err}") from None
        out.append(counts[0])
    if len({c.shape[1] for c in out}) > 1:
        raise ValueError(f"{name}: trials list different numbers of units")
    return np.stack(out), float(bin_size), float(starts[0]), None

"""Per-trial tables (pandas DataFrame, CSV, NPZ of arrays) -> TrialDataset.

Each column with one value per trial becomes a trial coord. Optional signals:

- ``activity``/``inputs``/``targets``: a (trial, time, feature) array (an NPZ
  key or a mapping entry), a ragged layout (a (sum of lengths, feature) array
  plus ``<name>_lengths``), or a DataFrame column whose entries are (time,
  feature) arrays;
- ``spikes``: one array of session spike times per unit (or NPZ keys
  ``spike_times`` + ``spike_clusters``), binned around ``align_event`` with
  :func:`neuroalrnn.preprocess.bin_spike_times`.

NPZ files are read with ``allow_pickle=False``: a key that holds pickled
objects is refused with a ``ValueError``.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np
import xarray as xr

from neuroalrnn.io._sniff import FORMATS, sniff
from neuroalrnn.schema import from_arrays

SESSION_COLUMNS = ("session_date", "session_id", "eid", "session_name")


def read_table(path: str | os.PathLike, format: str | None = None, **options) -> xr.Dataset:
    """Read a CSV or NPZ per-trial table into a TrialDataset.

    Parameters
    ----------
    path : str or path-like
    format : {'csv', 'npz'}, optional
        Checked against the file's content (found by sniffing when omitted).
    **options
        Passed to :func:`from_table`. An NPZ may carry a 0-d ``dt`` key.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.npz")
    >>> np.savez(path, choice=np.array([1, -1]), session_date=np.array(["2020-01-01"] * 2))
    >>> read_table(path)["session"].values.tolist()
    ['2020-01-01', '2020-01-01']
    """
    path = Path(path)
    kind = sniff(path)
    if format is not None and kind != format:
        raise ValueError(f"{path}: expected {FORMATS.get(format, format)}, but the file is {FORMATS[kind]}")
    if kind == "npz":
        columns = _read_npz(path)
    elif kind == "csv":
        columns = _read_csv(path)
    else:
        raise ValueError(f"{path}: expected a CSV or NPZ table, but the file is {FORMATS[kind]}")
    if "dt" in columns and np.ndim(columns["dt"]) == 0:
        options.setdefault("dt", float(columns.pop("dt")))
    options.setdefault("source", path.name)
    try:
        return from_table(columns, **options)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{path}: {err}") from None


def _read_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: expected {FORMATS['npz']}, but it cannot be opened "
                         f"(truncated or corrupt?): {err}") from None
    columns = {}
    with archive:
        for key in archive.files:
            try:
                columns[key] = archive[key]
            except ValueError as err:
                if "pickle" in str(err):
                    raise ValueError(f"{path}: key {key!r} holds pickled Python objects; refused "
                                     "(pickles can run code; save plain numeric/string arrays)") from None
                raise ValueError(f"{path}: key {key!r} cannot be read: {err}") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise ValueError(f"{path}: key {key!r} is truncated or corrupt: {err}") from None
    if not columns:
        raise ValueError(f"{path}: the NPZ archive holds no arrays; expected one array per trial column")
    return columns


def _read_csv(path):
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: expected {FORMATS['csv']}, but it cannot be parsed: {err}") from None
    return frame


def from_table(table, *, activity: str | None = None, inputs: str | None = None,
               targets: str | None = None, dt: float | None = None, spikes=None,
               align_event: str | None = None, window: tuple[float, float] | None = None,
               bin_size: float | None = None, stop_event: str | None = None,
               session: str | None = "auto", unit=None, source: str = "table") -> xr.Dataset:
    """Build a TrialDataset from a per-trial table.

    Parameters
    ----------
    table : pandas.DataFrame or mapping of str to array
        One row (entry) per trial. Mapping values may be (trial, time, feature)
        arrays or ragged ``(sum(lengths), feature)`` arrays with ``<name>_lengths``.
    activity, inputs, targets : str, optional
        Column/key holding that signal. Keys named ``activity``/``inputs``/
        ``targets`` with 3 dims (or ragged lengths) are used without being named.
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

    Examples
    --------
    >>> import pandas as pd
    >>> ds = from_table(pd.DataFrame({"choice": [1, -1, 1], "rt": [0.3, 0.5, 0.4]}))
    >>> dict(ds.sizes), ds["rt"].values.tolist()
    ({'trial': 3}, [0.3, 0.5, 0.4])
    """
    columns = _columns(table)
    if not columns:
        raise ValueError("table: no columns; expected one column per trial variable")
    roles = {"activity": activity, "inputs": inputs, "targets": targets}
    for role in roles:
        if roles[role] is None and role in columns and (np.ndim(columns[role]) == 3 or f"{role}_lengths" in columns):
            roles[role] = role
    consumed = set()
    if spikes is None and "spike_times" in columns and "spike_clusters" in columns:
        spikes = _split_clusters(columns["spike_times"], columns["spike_clusters"])
        consumed |= {"spike_times", "spike_clusters"}
    signal_values = {}
    for role, name in roles.items():
        if name is None:
            continue
        if name not in columns:
            raise ValueError(f"{role}: no column {name!r}; the columns are {sorted(columns)}")
        signal_values[role] = _signal(columns, name)
        consumed |= {name, f"{name}_lengths"}
    spike_column = spikes if isinstance(spikes, str) else None
    if spike_column is not None:
        consumed.add(spike_column)
    coords = _trial_columns({k: v for k, v in columns.items() if k not in consumed})
    sized = dict(signal_values, **({spike_column: columns[spike_column]} if spike_column else {}))
    n = _n_rows(columns, consumed, sized, coords)
    if session == "auto":
        session = next((c for c in SESSION_COLUMNS if c in coords), None) if "session" not in coords else None
    if session is not None:
        if session not in coords:
            raise ValueError(f"session: no column {session!r}; the columns are {sorted(coords)}")
        coords["session"] = coords[session]
    attrs = {"source": str(source), "source_format": "table"}
    if spikes is not None:
        if signal_values.get("activity") is not None:
            raise ValueError("spikes: give either spikes or an activity column, not both")
        signal_values["activity"], dt, t_start, lengths = _bin(columns, coords, spikes, align_event,
                                                               window, bin_size, stop_event, n)
        attrs.update(activity_units="spikes/bin", bin_size=float(dt))
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
    return from_arrays(**signal_values, trial_coords=coords, trial=trial, unit=unit, attrs=attrs, **kwargs)


def _columns(table):
    if hasattr(table, "columns") and hasattr(table, "to_dict"):  # DataFrame
        return {str(c): table[c].to_numpy() for c in table.columns}
    if isinstance(table, Mapping):
        return {str(k): v for k, v in table.items()}
    raise TypeError(f"table: expected a pandas DataFrame or a mapping of columns, got {type(table).__name__}")


def _signal(columns, name):
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
        return np.split(flat, np.cumsum(lengths)[:-1])
    value = np.asarray(value) if not (isinstance(value, np.ndarray) and value.dtype == object) else value
    if value.dtype == object:  # a column of per-trial (time, feature) arrays; from_arrays checks them
        return [np.asarray(v) for v in value]
    if value.ndim != 3:
        raise ValueError(f"{name}: expected a (trial, time, feature) array, a column of (time, feature) "
                         f"arrays, or a ragged array with {lengths_key}; got shape {value.shape}")
    return value


def _trial_columns(columns):
    coords = {}
    for key, value in columns.items():
        value = np.asarray(value) if not isinstance(value, np.ndarray) else value
        if value.ndim == 0:
            raise ValueError(f"column {key!r}: a single value, expected one value per trial")
        if value.dtype == object:
            value = _object_column(key, value)
        coords[key] = value
    return coords


def _object_column(key, value):
    items = value.ravel()
    is_str = np.array([isinstance(v, str) for v in items], dtype=bool)
    is_missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in items], dtype=bool)
    if (is_str | is_missing).all():
        return np.array(["" if m else v for v, m in zip(items, is_missing)], dtype=str).reshape(value.shape)
    if all(isinstance(v, (bool, np.bool_)) for v in items):
        return value.astype(bool)
    raise TypeError(f"column {key!r}: holds Python objects ({type(items[~(is_str | is_missing)][0]).__name__}); "
                    "expected numbers, strings or bools (name it as `activity`/`spikes` if it holds arrays)")


def _n_rows(columns, consumed, signal_values, coords):
    ref = next(iter(coords), None)
    lengths = {k: len(v) for k, v in coords.items()}
    lengths.update({f"{k} (signal)": len(v) for k, v in signal_values.items()})
    if ref is None:
        ref = next(iter(lengths))
    n = lengths[ref]
    for key, length in lengths.items():
        if length != n:
            raise ValueError(f"column {key!r}: has {length} values, expected {n} (the length of {ref!r}); "
                             "every column needs one value per trial")
    if n == 0:
        raise ValueError("table: has no rows; expected at least one trial")
    return n


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

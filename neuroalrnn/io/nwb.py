"""NWB files (pynwb) -> trial-aligned TrialDataset.

Reads the ``trials`` table (start/stop times and condition columns become
trial coords), the ``units`` table (spike times binned around a trial event
with :func:`neuroalrnn.preprocess.bin_spike_times`; unit columns such as the
electrode group and its location become coords on ``unit``) and TimeSeries from
``acquisition`` and processing modules (averaged onto the same bins).
"""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
import xarray as xr

from neuroalrnn.io._sniff import FORMATS, as_path, naming, reading, sniff
from neuroalrnn.preprocess.spikes import check_grid_size, spike_units
from neuroalrnn.schema import from_arrays, validate

_SKIP_UNIT_COLUMNS = {"spike_times", "obs_intervals", "electrodes", "waveform_mean", "waveform_sd",
                      "waveforms", "spike_amplitudes"}
_SKIP_SERIES = ("ElectricalSeries", "ImageSeries", "TwoPhotonSeries", "OnePhotonSeries")


def read_nwb(path: str | os.PathLike, *, align_event: str = "start_time",
             window: tuple[float, float] | None = None, bin_size: float = 0.01,
             stop_event: str | None = "stop_time", output: str = "counts",
             activity: str | Sequence[str] = "units", inputs: Sequence[str] = (),
             behavior: Sequence[str] | None = None) -> xr.Dataset:
    """Read an NWB file into a TrialDataset aligned to a trial event.

    Parameters
    ----------
    path : str or path-like
    align_event : str
        Column of the ``trials`` table whose times mark time 0 (e.g.
        ``'stim_on_time'``; default the trial start).
    window : (t0, t1), optional
        Window (s) relative to the event; default ``(0, longest trial)``
        measured from the event to ``stop_event``, rounded up to whole bins.
    bin_size : float
        Bin width (s); becomes ``attrs['dt']``.
    stop_event : str or None
        Column of trial end times: bins ending after it are outside ``mask``
        (NaN). ``None`` keeps the whole window for every trial.
    output : {'counts', 'rates'}
        Spike counts per bin, or spikes/s.
    activity : 'units', str or sequence of str
        ``'units'`` bins the units table; a list of TimeSeries names uses them instead.
    inputs : sequence of str
        TimeSeries that become ``inputs`` (e.g. a stimulus trace).
    behavior : sequence of str, optional
        TimeSeries kept as a ``behavior`` (trial, time, behavior_channel)
        variable; default: every other non-imaging, non-electrical series.

    Returns
    -------
    xarray.Dataset
        TrialDataset; trial labels are the NWB trial ids and unit labels the unit ids.

    Notes
    -----
    A TimeSeries is averaged over the finite samples inside each bin; a bin
    holding none gets the linear interpolation at its centre (NaN samples,
    such as tracking dropouts, count as missing). Events outside the
    recording (from the session start, 0 s, to the last spike or series
    sample), trials whose stop
    precedes their start, negative or unsorted spike times and series whose
    samples do not cover a trial's window raise a ``ValueError``.

    Examples
    --------
    >>> ds = read_nwb("session.nwb", align_event="stim_on_time",
    ...               window=(-0.5, 1.0), bin_size=0.02)  # doctest: +SKIP
    """
    from pynwb import NWBHDF5IO

    path = as_path(path)
    kind = sniff(path)
    if kind != "nwb":
        raise ValueError(f"{path}: expected {FORMATS['nwb']}, but the file is {FORMATS[kind]}")
    if output not in ("counts", "rates"):
        raise ValueError(f"output: expected 'counts' or 'rates', got {output!r}")
    with warnings.catch_warnings():  # the format was found from the content; any extension is fine
        warnings.filterwarnings("ignore", message="The file path provided", category=UserWarning)
        with reading(path, "nwb"):
            io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        with io, reading(path, "nwb"):  # _read_contents only reads (lazily loaded) file content
            contents = _read_contents(io.read(), path)
    # a single series name is one name, not a sequence of characters
    activity, inputs, behavior = ([v] if isinstance(v, str) and v != "units" else v
                                  for v in (activity, inputs, behavior))
    with naming(path):
        return _build(contents, path, align_event, window, bin_size, stop_event, output, activity,
                      list(inputs), behavior)


# ------------------------------------------------------------- reading (file open)

def _read_contents(nwb, path):
    if nwb.trials is None:
        raise ValueError(f"{path}: no 'trials' table; expected one with start_time/stop_time per trial")
    trials = {"id": np.asarray(nwb.trials.id[:])}
    for name in nwb.trials.colnames:
        values = _scalar_column(nwb.trials, name)
        if values is not None:
            trials[name] = values
    units = None
    if nwb.units is not None and len(nwb.units) > 0:
        ids = np.asarray(nwb.units.id[:])
        index = nwb.units.spike_times_index  # one read of the flat times and the per-unit ends
        ends = np.asarray(index.data[:], dtype=np.int64)
        spikes = np.split(np.asarray(index.target.data[:], dtype=float), ends[:-1])
        meta = {}
        for name in nwb.units.colnames:
            if name in _SKIP_UNIT_COLUMNS:
                continue
            if name == "electrode_group":
                groups = nwb.units["electrode_group"][:]
                meta["electrode_group"] = np.array([g.name for g in groups], dtype=str)
                meta.setdefault("location", np.array([g.location for g in groups], dtype=str))
                continue
            values = _scalar_column(nwb.units, name)
            if values is not None:
                meta[name] = values
        meta.update({k: v for k, v in _electrode_meta(nwb).items() if k not in meta})
        units = {"id": ids, "spikes": spikes, "meta": meta}
    series = {}
    for where, obj in _all_series(nwb):
        if type(obj).__name__ in _SKIP_SERIES:
            continue
        data = np.asarray(obj.data[:], dtype=float) * obj.conversion + getattr(obj, "offset", 0.0)
        if obj.timestamps is not None:
            times = np.asarray(obj.timestamps[:], dtype=float)
        else:
            times = obj.starting_time + np.arange(len(data)) / obj.rate
        name = obj.name if obj.name not in series else where
        series[name] = {"times": times, "data": data.reshape(len(data), -1), "unit": str(obj.unit)}
    return {"trials": trials, "units": units, "series": series,
            "identifier": str(nwb.identifier), "session_id": str(nwb.session_id or "")}


def _electrode_meta(nwb):
    """Location and group of each unit's first electrode (units table ``electrodes`` column)."""
    if "electrodes" not in nwb.units.colnames or nwb.electrodes is None:
        return {}
    index = nwb.units.electrodes_index
    ends = np.asarray(index.data[:], dtype=np.int64)
    rows = np.asarray(index.target.data[:], dtype=np.int64)
    starts = np.r_[0, ends[:-1]]
    if (ends <= starts).any():
        return {}  # a unit without electrodes: no single value per unit
    first = rows[starts]
    meta = {"electrode": np.asarray(nwb.electrodes.id[:])[first]}
    for column, name in (("location", "location"), ("group_name", "electrode_group")):
        if column in nwb.electrodes.colnames:
            values = _scalar_column(nwb.electrodes, column)
            if values is not None:
                meta[name] = values[first]
    return meta


def _scalar_column(table, name):
    from hdmf.common import VectorIndex

    column = table[name]
    if isinstance(column, VectorIndex) or name in ("timeseries", "tags"):
        return None  # ragged columns have no single value per row
    values = np.asarray(column.data[:])
    if values.ndim != 1:
        return None
    if values.dtype.kind == "S" or (values.dtype == object and all(isinstance(v, bytes) for v in values)):
        return np.array([v.decode() for v in values], dtype=str)
    if values.dtype == object:
        if all(isinstance(v, str) for v in values):
            return values.astype(str)
        return None
    return values


def _all_series(nwb):
    from pynwb import TimeSeries

    for name, obj in nwb.acquisition.items():
        yield from _unpack(f"acquisition/{name}", obj, TimeSeries)
    for mod_name, module in nwb.processing.items():
        for name, obj in module.data_interfaces.items():
            yield from _unpack(f"{mod_name}/{name}", obj, TimeSeries)


def _unpack(where, obj, TimeSeries):
    if isinstance(obj, TimeSeries):
        yield where, obj
        return
    for attr in ("time_series", "spatial_series"):  # BehavioralTimeSeries, Position, ...
        inner = getattr(obj, attr, None)
        if isinstance(inner, dict):
            for name, ts in inner.items():
                yield f"{where}/{name}", ts


# ------------------------------------------------------------ building (file closed)

def _build(contents, path, align_event, window, bin_size, stop_event, output, activity, inputs, behavior):
    trials, units, series = contents["trials"], contents["units"], contents["series"]
    ids = trials["id"]
    start, stop = trials["start_time"].astype(float), trials["stop_time"].astype(float)
    for field, times in (("start_time", start), ("stop_time", stop)):
        missing = ~np.isfinite(times)
        if missing.any():  # NaN would pass the stop-before-start check below
            raise ValueError(f"trials: {field} is NaN or inf for trial(s) {ids[missing].tolist()}; "
                             "expected a finite time (s) for every trial")
    bad = stop < start
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"trials: trial {ids[i]} has stop_time {stop[i]} s before its start_time {start[i]} s")
    for event in (align_event, stop_event):
        if event is not None and event not in trials:
            raise ValueError(f"{event!r}: not a column of the trials table; expected one of "
                             f"{sorted(k for k in trials if k != 'id')}")
    align = trials[align_event].astype(float)
    if not np.isfinite(align).all():
        i = int(np.argmax(~np.isfinite(align)))
        raise ValueError(f"{align_event}: trial {ids[i]} has no event time ({align[i]})")
    end = None if stop_event is None else trials[stop_event].astype(float)
    _check_extent(align, ids, align_event, units, series)
    if isinstance(bin_size, (bool, np.bool_)) or not isinstance(bin_size, (int, float, np.integer, np.floating)) \
            or not bin_size > 0:
        raise ValueError(f"bin_size: expected a positive number of seconds, got {bin_size!r}")
    if window is None:
        if end is None:
            raise ValueError("window: needed when stop_event is None")
        longest = float(np.max(end - align))
        window = (0.0, np.ceil(longest / bin_size - 1e-9) * bin_size)
    t0, t1 = (float(v) for v in window)
    n_bins = int(np.floor((t1 - t0) / bin_size + 1e-9))
    if n_bins < 1:
        raise ValueError(f"window: ({t0}, {t1}) is shorter than one bin of {bin_size} s")
    n_features = len(units["spikes"]) if activity == "units" and units is not None else \
        sum(series[n]["data"].shape[1] for n in series)
    check_grid_size(len(ids), n_bins, n_features, bin_size)
    starts = t0 + bin_size * np.arange(n_bins)
    lengths = np.full(len(ids), n_bins)
    if end is not None:
        lengths = (align[:, None] + starts[None, :] + bin_size <= end[:, None] + 1e-9 * bin_size).sum(1)
        if (lengths < 1).any():
            i = int(np.argmin(lengths))
            raise ValueError(f"{stop_event}: trial {ids[i]} ends at {end[i]} s, before the first bin "
                             f"of its window ends ({align[i] + t0 + bin_size} s)")
    edges = align[:, None] + t0 + bin_size * np.arange(n_bins + 1)[None, :]
    signals, names = {}, {}
    unit_coords = None
    if activity == "units":
        if units is None:
            raise ValueError(f"{path}: no units table; pass activity=[TimeSeries names] to use series instead")
        signals["activity"] = _bin_units(units, align, (t0, t1), bin_size, output)
        unit_coords = {"unit": units["id"], **units["meta"]}
    elif activity:
        signals["activity"], names["activity"] = _series_block(series, list(activity), edges, lengths,
                                                               "activity", ids)
        unit_coords = names["activity"]
    if inputs:
        signals["inputs"], names["inputs"] = _series_block(series, inputs, edges, lengths, "inputs", ids)
    used = set(inputs) | (set(activity) if activity != "units" else set())
    if behavior is None:
        behavior = [name for name in series if name not in used]
    behavior_block = None
    if behavior:
        behavior_block = _series_block(series, list(behavior), edges, lengths, "behavior", ids)
    if not signals:
        raise ValueError(f"{path}: nothing to put in the dataset (no units, no activity or inputs series)")
    coords = {k: v for k, v in trials.items() if k != "id"}
    attrs = {"source": path.name, "source_format": "NWB", "identifier": contents["identifier"],
             "bin_size": float(bin_size)}
    if contents["session_id"]:
        attrs["session_id"] = contents["session_id"]
    cf = {"activity": spike_units(output, bin_size) if activity == "units" else _series_units(series, activity)}
    if inputs:
        cf["inputs"] = _series_units(series, inputs)
    ds = from_arrays(**signals, dt=float(bin_size), lengths=lengths, align_event=align_event,
                     t_start=float(starts[0]), trial=ids, trial_coords=coords, unit=unit_coords,
                     input_names=names.get("inputs"), attrs=attrs,
                     units={k: u for k, (u, _) in cf.items() if u is not None},
                     long_names={k: name for k, (_, name) in cf.items()})
    for name in coords:  # NWB times are seconds from the session start
        if name.endswith("_time"):
            ds.variables[name].attrs = {"units": "s", "long_name": f"{name} (from the session start)"}
    if behavior_block is not None:
        values, labels = behavior_block
        values = np.where(ds["mask"].values[:, :, None], values, np.nan)
        units, long_name = _series_units(series, behavior)
        ds = ds.assign_coords(behavior_channel=labels).assign(
            behavior=(("trial", "time", "behavior_channel"), values,
                      {"long_name": long_name, **({"units": units} if units else {})}))
    return validate(ds)


def _series_units(series, names):
    """CF (units, long_name) of TimeSeries: their common unit (None when they differ) and their names."""
    found = {series[n]["unit"] for n in names}
    units = found.pop() if len(found) == 1 else None
    long_name = ", ".join(names) if units is not None or not names else \
        "; ".join(f"{n} ({series[n]['unit']})" for n in names)
    return units, long_name


def _check_extent(align, ids, align_event, units, series):
    lows, highs = [], []
    if units is not None:
        for uid, s in zip(units["id"], units["spikes"]):
            if s.size:
                if not np.isfinite(s).all():
                    raise ValueError(f"units: unit {uid} has NaN or inf spike times")
                if s[0] < 0 or s.min() < 0:
                    raise ValueError(f"units: unit {uid} has a negative spike time {s.min()} s "
                                     "(expected times >= 0 from the session start)")
                if (np.diff(s) < 0).any():
                    k = int(np.argmax(np.diff(s) < 0))
                    raise ValueError(f"units: unit {uid} spike times are not sorted ascending "
                                     f"(index {k + 1}: {s[k + 1]} < {s[k]})")
                lows.append(s[0]), highs.append(s[-1])
    for name, ts in series.items():
        t = ts["times"]
        if t.size:
            if (np.diff(t) < 0).any() or not np.isfinite(t).all():
                raise ValueError(f"{name}: timestamps are not finite and sorted ascending")
            lows.append(t[0]), highs.append(t[-1])
    if not lows:
        return
    lo, hi = min(0.0, min(lows)), max(highs)  # NWB times count from the session start (0 s)
    out = (align < lo) | (align > hi)
    if out.any():
        i = int(np.argmax(out))
        raise ValueError(f"{align_event}: trial {ids[i]} at {align[i]} s lies outside the recording "
                         f"({lo} s to {hi} s: session start to the last spike or sample)")


def _bin_units(units, align, window, bin_size, output):
    from neuroalrnn.preprocess import bin_spike_times

    counts, _ = bin_spike_times(units["spikes"], align, window, bin_size)
    return counts / bin_size if output == "rates" else counts


def _series_block(series, wanted, edges, lengths, role, ids):
    blocks, labels = [], []
    for name in wanted:
        if name not in series:
            raise ValueError(f"{role}: no TimeSeries named {name!r}; the file has {sorted(series)}")
        ts = series[name]
        blocks.append(_resample(name, ts["times"], ts["data"], edges, lengths, ids))
        k = ts["data"].shape[1]
        labels += [name] if k == 1 else [f"{name}_{j}" for j in range(k)]
    return np.concatenate(blocks, axis=2), np.array(labels, dtype=str)


def _resample(name, times, data, edges, lengths, ids):
    """Mean of the samples in each bin; empty bins get the interpolation at their centre."""
    n_trials, n_edges = edges.shape
    if times.size < 2:
        raise ValueError(f"{name}: needs at least 2 samples to resample, has {times.size}")
    half = 0.5 * np.median(np.diff(times)) if times.size > 1 else 0.0
    valid_end = edges[np.arange(n_trials), lengths]
    tol = 1e-9 * max(1.0, float(np.abs(times).max()))  # bin edges and sample times carry rounding
    early = edges[:, 0] < times[0] - half - tol
    late = valid_end > times[-1] + half + tol
    if (early | late).any():
        i = int(np.argmax(early | late))
        raise ValueError(f"{name}: samples cover {times[0]} s to {times[-1]} s, but trial {ids[i]}'s window "
                         f"needs {edges[i, 0]} s to {valid_end[i]} s (event outside this recording)")
    idx = np.searchsorted(times, edges.ravel(), side="left").reshape(edges.shape)
    finite = np.isfinite(data)  # NaN/inf samples (e.g. tracking dropouts) count as missing
    csum = np.vstack([np.zeros((1, data.shape[1])), np.cumsum(np.where(finite, data, 0.0), axis=0)])
    ccount = np.vstack([np.zeros((1, data.shape[1]), np.int64), np.cumsum(finite, axis=0)])
    sums = csum[idx[:, 1:]] - csum[idx[:, :-1]]
    counts = ccount[idx[:, 1:]] - ccount[idx[:, :-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts
    centres = 0.5 * (edges[:, 1:] + edges[:, :-1])
    for c in range(data.shape[1]):
        empty = counts[:, :, c] == 0
        if empty.any():
            ok = finite[:, c]
            if ok.sum() < 2:
                raise ValueError(f"{name}: needs at least 2 finite samples to resample, has {int(ok.sum())}")
            out[:, :, c][empty] = np.interp(centres[empty], times[ok], data[ok, c])
    return out

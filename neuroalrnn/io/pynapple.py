"""pynapple objects <-> TrialDataset.

:func:`from_pynapple` cuts a session's spike trains (``TsGroup``) or signals
(``TsdFrame``/``Tsd``) into trials given by an ``IntervalSet`` and an alignment
event; :func:`to_pynapple` lays a TrialDataset back on the session's time axis.
pynapple is optional (``pip install neuroalrnn[pynapple]``) and imported only here.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from neuroalrnn.preprocess._common import trial_label
from neuroalrnn.schema import from_arrays, trial_lengths, validate

__all__ = ["from_pynapple", "to_pynapple"]

_BOUNDS = ("start", "end")  # the IntervalSet's own columns, kept as trial coords (session time, s)


def _pynapple():
    try:
        import pynapple
    except ImportError:
        raise ImportError("pynapple interop needs the pynapple package: pip install neuroalrnn[pynapple]") from None
    return pynapple


def from_pynapple(data, epochs, *, align: str | None = None, window: tuple[float, float] | None = None,
                  bin_size: float | None = None, output: str = "counts",
                  units: str | None = None) -> xr.Dataset:
    """Cut pynapple data into trials: one per interval of ``epochs``, aligned on an event.

    Parameters
    ----------
    data : pynapple.TsGroup, TsdFrame or Tsd
        Spike trains (binned to counts or rates with
        :func:`neuroalrnn.preprocess.bin_spike_times`; TsGroup metadata such as
        ``location`` become ``unit`` coords) or continuous signals (averaged
        over the samples in each bin).
    epochs : pynapple.IntervalSet
        One interval per trial; its ``start``/``end`` and metadata columns
        become trial coords. Bins ending after a trial's ``end`` are masked.
    align : str, optional
        Metadata column of per-trial event times (s, session time) that marks
        time 0; default the interval starts (``align_event='start'``).
    window : (t0, t1), optional
        Window (s) around the event; default from 0 to the longest trial end.
    bin_size : float, optional
        Bin width (s); required for spike trains, default the sampling
        interval of a TsdFrame.
    output : {'counts', 'rates'}
        Spike counts per bin or spikes/s (TsGroup only).
    units : str, optional
        CF units of a TsdFrame's values (pynapple does not store them).

    Examples
    --------
    >>> import numpy as np, pynapple as nap
    >>> spikes = nap.TsGroup({0: nap.Ts(np.array([0.15, 1.25, 1.35]))})
    >>> trials = nap.IntervalSet(start=[0.0, 1.0], end=[0.5, 1.5], metadata={"choice": [1, -1]})
    >>> ds = from_pynapple(spikes, trials, window=(0.0, 0.4), bin_size=0.2)
    >>> ds["activity"][:, :, 0].values.tolist(), ds["choice"].values.tolist()
    ([[1.0, 0.0], [0.0, 2.0]], [1, -1])
    """
    nap = _pynapple()
    if not isinstance(epochs, nap.IntervalSet):
        raise TypeError(f"epochs: expected a pynapple IntervalSet of trials, got {type(epochs).__name__}")
    if len(epochs) == 0:
        raise ValueError("epochs: the IntervalSet holds no interval (no trial)")
    if output not in ("counts", "rates"):
        raise ValueError(f"output: expected 'counts' or 'rates', got {output!r}")
    start, end = np.asarray(epochs.start, dtype=float), np.asarray(epochs.end, dtype=float)
    meta = {str(k): epochs.metadata[k].to_numpy() for k in epochs.metadata_columns}
    clash = [k for k in _BOUNDS if k in meta]
    if clash:
        raise ValueError(f"epochs: metadata column {clash[0]!r} has the name of the interval bounds")
    if align is None:
        align_event, align_times = "start", start
    elif align in meta:
        align_event, align_times = align, np.asarray(meta[align], dtype=float)
    else:
        raise ValueError(f"align: {align!r} is not a metadata column of epochs (has {sorted(meta)})")
    coords = {"start": start, "end": end, **meta}
    if isinstance(data, nap.TsGroup):
        ds = _from_spikes(data, align_event, align_times, end, window, bin_size, output, coords)
    elif isinstance(data, (nap.TsdFrame, nap.Tsd)):
        if output != "counts":
            raise ValueError("output: 'rates' is for spike trains (a TsGroup); a TsdFrame is averaged per bin")
        ds = _from_signals(data, align_event, align_times, end, window, bin_size, units, coords)
    else:
        raise TypeError(f"data: expected a pynapple TsGroup, TsdFrame or Tsd, got {type(data).__name__}")
    for name in _BOUNDS:
        ds.variables[name].attrs = {"units": "s", "long_name": f"trial {name} (session time)"}
    return ds


def _window(window, align, end, bin_size):
    if window is None:  # from the event to the latest trial end, in whole bins
        longest = float(np.max(end - align))
        if not longest > 0:
            raise ValueError("window: every trial ends before its align event; give window=(t0, t1)")
        return 0.0, float(np.ceil(longest / bin_size - 1e-9) * bin_size)
    return tuple(float(v) for v in window)


def _from_spikes(group, align_event, align, end, window, bin_size, output, coords):
    from neuroalrnn.preprocess import spikes_to_dataset

    if bin_size is None:
        raise ValueError("bin_size: needed to bin spike trains (e.g. bin_size=0.01)")
    window = _window(window, align, end, bin_size)
    trains = [np.asarray(group[k].t, dtype=float) for k in group.index]
    # bin_spike_times counts from the session start (times >= 0); pynapple allows any origin
    low = min([0.0, float(np.min(align)) + window[0]] + [float(t[0]) for t in trains if t.size])
    meta = {str(k): group.metadata[k].to_numpy() for k in group.metadata_columns if k != "rate"}
    unit = {"unit": np.asarray(group.index), **{k: v for k, v in meta.items() if k != "unit"}}
    return spikes_to_dataset([t - low for t in trains], align - low, window, bin_size, end - low,
                             output=output, align_event=align_event, trial_coords=coords, unit=unit,
                             attrs={"source_format": "pynapple"})


def _from_signals(frame, align_event, align, end, window, bin_size, units, coords):
    from neuroalrnn.io.nwb import _resample
    from neuroalrnn.preprocess.spikes import check_grid_size

    times = np.asarray(frame.t, dtype=float)
    values = np.asarray(frame.values, dtype=float).reshape(len(times), -1)
    if bin_size is None:
        if times.size < 2:
            raise ValueError("bin_size: needed for a signal with fewer than 2 samples")
        bin_size = float(np.median(np.diff(times)))
    window = _window(window, align, end, bin_size)
    t0, t1 = window
    n_bins = int(np.floor((t1 - t0) / bin_size + 1e-9))
    if n_bins < 1:
        raise ValueError(f"window: ({t0}, {t1}) is shorter than one bin of {bin_size} s")
    check_grid_size(len(align), n_bins, values.shape[1], bin_size)
    starts = t0 + bin_size * np.arange(n_bins)
    lengths = (align[:, None] + starts[None, :] + bin_size <= end[:, None] + 1e-9 * bin_size).sum(1)
    if (lengths < 1).any():
        i = int(np.argmin(lengths))
        raise ValueError(f"epochs: trial {i} ends at {end[i]} s, before the first bin of its window ends")
    edges = align[:, None] + t0 + bin_size * np.arange(n_bins + 1)[None, :]
    binned = _resample("data", times, values, edges, lengths, np.arange(len(align)))
    columns = getattr(frame, "columns", None)
    labels = np.asarray(columns) if columns is not None else np.arange(values.shape[1])
    return from_arrays(activity=binned, dt=float(bin_size), lengths=lengths, align_event=align_event,
                       t_start=float(t0), trial_coords=coords, unit=labels,
                       units={"activity": units} if units else None,
                       attrs={"source_format": "pynapple", "bin_size": float(bin_size)})


def to_pynapple(ds: xr.Dataset, var: str = "activity", *, spikes: bool = False):
    """Lay a TrialDataset on the session's time axis as pynapple objects.

    Parameters
    ----------
    ds : xarray.Dataset
        TrialDataset. Trials are placed at the session time of their align
        event (the per-trial coord named by ``attrs['align_event']``, as
        :func:`from_pynapple` keeps it); without one, one after another from
        0 s, one step apart.
    var : str
        The (trial, time, feature) variable to convert.
    spikes : bool
        Give spike counts back as a TsGroup (each count as spikes at its bin
        centre), which :func:`from_pynapple` bins to the same counts.

    Returns
    -------
    data : pynapple.TsdFrame or TsGroup
        The valid steps of every trial, time-stamped at bin centres.
    trials : pynapple.IntervalSet
        One interval per trial (``start``/``end`` coords when present, else the
        valid steps' extent) with the per-trial coords as metadata.

    Examples
    --------
    >>> import numpy as np
    >>> ds = from_arrays(activity=np.arange(6.0).reshape(2, 3, 1), dt=0.5, trial_coords={"ctx": ["a", "b"]})
    >>> data, trials = to_pynapple(ds)
    >>> data.t.tolist(), trials.start.tolist(), "".join(trials.metadata["ctx"])
    ([0.25, 0.75, 1.25, 2.25, 2.75, 3.25], [0.0, 2.0], 'ab')
    """
    nap = _pynapple()
    validate(ds)
    if var not in ds.data_vars or ds[var].dims[:2] != ("trial", "time") or ds[var].ndim != 3:
        raise ValueError(f"var: expected a (trial, time, feature) variable, got {var!r}")
    dt, time = float(ds.attrs["dt"]), np.asarray(ds["time"].values, dtype=float)
    mask = ds["mask"].values
    align = _session_align(ds, time, dt)
    first, last = np.argmax(mask, axis=1), mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
    start = ds["start"].values.astype(float) if "start" in ds.coords else align + time[first]
    end = ds["end"].values.astype(float) if "end" in ds.coords else align + time[last] + dt
    trial_idx, step = np.nonzero(mask)
    stamps = align[trial_idx] + time[step] + dt / 2
    if np.any(np.diff(stamps) <= 0):
        k = int(np.argmax(np.diff(stamps) <= 0))
        raise ValueError(f"{var}: trials {trial_label(ds, trial_idx[k])!r} and {trial_label(ds, trial_idx[k + 1])!r} "
                         "overlap in session time; pynapple needs one sorted time axis (use a shorter window)")
    if np.any(start[1:] < end[:-1]) or np.any(end <= start):
        raise ValueError("trials: the intervals overlap or are empty; an IntervalSet would merge them")
    values = ds[var].values[trial_idx, step]
    meta = {str(k): c.values.tolist() for k, c in ds.coords.items()  # lists: plain str, not np.str_
            if c.dims == ("trial",) and k not in _BOUNDS}
    trials = nap.IntervalSet(start=start, end=end, metadata=meta)
    feature = ds[var].dims[2]
    if not spikes:
        return nap.TsdFrame(t=stamps, d=values, columns=list(ds[feature].values)), trials
    if np.any(values < 0) or np.any(values != np.round(values)):
        raise ValueError(f"{var}: spikes=True needs whole non-negative counts per bin")
    labels = ds[feature].values
    keys = labels if labels.dtype.kind in "iu" else np.arange(labels.size)
    units = {int(k): nap.Ts(t=np.repeat(stamps, values[:, u].astype(np.int64))) for u, k in enumerate(keys)}
    unit_meta = {str(k): c.values for k, c in ds[var].coords.items() if c.dims == (feature,) and k != feature}
    if labels.dtype.kind not in "iu":
        unit_meta[feature] = labels
    return nap.TsGroup(units, metadata=unit_meta or None), trials


def _session_align(ds, time, dt):
    """Session time of each trial's align event: its coord, or trials placed one after another.

    Placed trials are one step apart: an IntervalSet takes touching intervals for overlapping ones.
    """
    event = ds.attrs.get("align_event")
    if event in ds.coords and ds[event].dims == ("trial",) and ds[event].dtype.kind in "iuf":
        return ds[event].values.astype(float)
    lengths = trial_lengths(ds).values
    first = np.argmax(ds["mask"].values, axis=1)
    onsets = np.concatenate([[0.0], np.cumsum((lengths + 1) * dt)[:-1]])
    return onsets - time[first]


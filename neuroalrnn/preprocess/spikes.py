"""Spike times to binned counts or rates on a trial-aligned grid.

Bins are half-open, ``[edge_k, edge_k+1)``, with the absolute edges of trial
``i`` computed as ``align_times[i] + (t0 + k * bin_size)``; a spike exactly on
the window's right edge is outside the window. The kernel is a compiled
(numba) loop over trials and the spikes inside each trial's window, so it
never builds per-spike index arrays and its memory is the output array plus
one contiguous copy of the spike times.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numba
import numpy as np
import xarray as xr

from ..schema import from_arrays

__all__ = ["bin_spike_times", "spikes_to_dataset"]


def bin_spike_times(spike_times: Sequence[np.ndarray], align_times: np.ndarray,
                    window: tuple[float, float], bin_size: float,
                    stop_times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Count each unit's spikes in bins around per-trial alignment times.

    Parameters
    ----------
    spike_times : sequence of 1-D arrays
        One array per unit of spike times in seconds, sorted ascending, finite
        and non-negative (empty units are allowed).
    align_times : array (trial,)
        Time (s) of the alignment event in each trial.
    window : (t0, t1)
        Window relative to the alignment event, ``t0 < t1``. It holds
        ``n = floor((t1 - t0) / bin_size)`` whole bins (tolerating rounding).
    bin_size : float
        Bin width in seconds, > 0.
    stop_times : array (trial,), optional
        End of each trial (s). A bin whose right edge lies past it is NaN.
        Must not precede the window start ``align_times + t0``.

    Returns
    -------
    counts : ndarray (trial, time, unit), float64
        Spike counts per bin; NaN for bins past a trial's stop time.
    bin_starts : ndarray (time,)
        Left edge of each bin relative to the alignment event (s).

    Examples
    --------
    >>> import numpy as np
    >>> counts, starts = bin_spike_times([np.array([0.05, 0.15, 1.12])],
    ...                                  align_times=np.array([0.0, 1.0]),
    ...                                  window=(0.0, 0.2), bin_size=0.1)
    >>> counts[:, :, 0].tolist(), starts.round(2).tolist()
    ([[1.0, 1.0], [0.0, 1.0]], [0.0, 0.1])
    """
    align, t0, t1, bin_size = _check_grid(align_times, window, bin_size)
    n_bins = int(np.floor((t1 - t0) / bin_size + 1e-9))
    if n_bins < 1:
        raise ValueError(f"window: ({t0}, {t1}) is shorter than one bin of bin_size={bin_size}")
    stop = None if stop_times is None else _check_stop(stop_times, align, t0)
    spikes, offsets = _check_spikes(spike_times)
    n_trials, n_units = align.size, offsets.size - 1
    check_grid_size(n_trials, n_bins, n_units, bin_size)
    rel_edges = t0 + bin_size * np.arange(n_bins + 1)
    counts = np.zeros((n_trials, n_bins, n_units))
    if n_trials and n_units:
        _bin_kernel(spikes, offsets, align, rel_edges, counts)
    if stop is not None:
        ends = align[:, None] + rel_edges[None, 1:]
        past = ends > stop[:, None] + 1e-9 * bin_size
        counts[past] = np.nan
    return counts, rel_edges[:-1].copy()


@numba.njit(cache=True, nogil=True)
def _bin_kernel(spikes, offsets, align, rel_edges, out):  # pragma: no cover - compiled
    n_trials, n_bins, n_units = out.shape
    for i in range(n_trials):
        a = align[i]
        left = a + rel_edges[0]
        right = a + rel_edges[n_bins]
        for u in range(n_units):
            s = spikes[offsets[u]:offsets[u + 1]]
            j = np.searchsorted(s, left)  # first spike >= left
            stop = np.searchsorted(s, right)  # first spike >= right
            for jj in range(j, stop):
                x = s[jj]
                k = int((x - left) / (rel_edges[1] - rel_edges[0]))
                if k > n_bins - 1:
                    k = n_bins - 1
                if k < 0:
                    k = 0
                # exact correction against the same float edges np.histogram would use
                while k > 0 and x < a + rel_edges[k]:
                    k -= 1
                while k < n_bins - 1 and x >= a + rel_edges[k + 1]:
                    k += 1
                out[i, k, u] += 1.0


def spike_units(output: str, bin_size: float) -> tuple[str, str]:
    """CF ``(units, long_name)`` of binned spikes: ``'count'`` per bin or ``'Hz'``."""
    if output == "rates":
        return "Hz", "firing rate"
    return "count", f"spike count per {bin_size:g} s bin"


def check_grid_size(n_trials: int, n_bins: int, n_units: int, bin_size: float) -> None:
    """Refuse a (trial, time, unit) float64 grid larger than this machine's memory, before allocating it."""
    need = 8.0 * n_trials * n_bins * max(n_units, 1)
    limit = _physical_memory()
    if need > limit:
        raise ValueError(f"bin_size: {bin_size} s gives {n_trials} trials x {n_bins} bins x {n_units} units, "
                         f"{_bytes(need)} of float64 counts, more than this machine's memory ({_bytes(limit)}); "
                         "use a larger bin_size or a shorter window")


def _physical_memory():
    import os

    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume a large workstation
        return float(2 ** 36)


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def _check_grid(align_times, window, bin_size):
    align = np.asarray(align_times, dtype=float)
    if align.ndim != 1:
        raise ValueError(f"align_times: expected a 1-D array (one time per trial), got shape {align.shape}")
    if not np.all(np.isfinite(align)):
        bad = int(np.argmax(~np.isfinite(align)))
        raise ValueError(f"align_times: trial {bad} is {align[bad]} (expected finite times in seconds)")
    try:
        t0, t1 = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window: expected two numbers (t0, t1) relative to the align event, got {window!r}")
    if not (np.isfinite(t0) and np.isfinite(t1) and t0 < t1):
        raise ValueError(f"window: expected finite t0 < t1, got ({t0}, {t1})")
    if isinstance(bin_size, (bool, np.bool_)) or not isinstance(bin_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"bin_size: expected a positive number of seconds, got {type(bin_size).__name__}")
    if not np.isfinite(bin_size) or bin_size <= 0:
        raise ValueError(f"bin_size: expected a positive finite number of seconds, got {bin_size}")
    return align, t0, t1, float(bin_size)


def _check_spikes(spike_times):
    if isinstance(spike_times, np.ndarray) and spike_times.dtype != object:
        raise TypeError("spike_times: expected a list with one 1-D array of spike times per unit, "
                        f"got a single {spike_times.ndim}-D array")
    if isinstance(spike_times, (str, bytes, Mapping)) or not hasattr(spike_times, "__len__"):
        raise TypeError("spike_times: expected a list with one 1-D array of spike times per unit, "
                        f"got {type(spike_times).__name__}")
    trains = []
    for u, train in enumerate(spike_times):
        arr = np.asarray(train)
        if arr.dtype == object or arr.dtype.kind in "mM" or not (np.issubdtype(arr.dtype, np.number) or arr.size == 0):
            raise TypeError(f"spike_times[{u}] (unit {u}): expected numbers, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(f"spike_times[{u}] (unit {u}): expected real numbers, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"spike_times[{u}] (unit {u}): expected a 1-D array, got shape {arr.shape}")
        trains.append(arr)
    offsets = np.zeros(len(trains) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([t.size for t in trains])
    spikes = np.concatenate(trains).astype(float, copy=False) if trains else np.zeros(0)
    spikes = np.ascontiguousarray(spikes, dtype=float)
    code, index = _first_bad_spike(spikes, offsets)  # one compiled pass instead of isfinite/diff temporaries
    if code:
        u = int(np.searchsorted(offsets, index, side="right") - 1)
        k = int(index - offsets[u])
        what = {1: f"contains NaN or inf (index {k})",
                2: f"negative spike time {spikes[index]} at index {k} (expected times >= 0 s)",
                3: f"not sorted ascending (index {k}: {spikes[index]} < {spikes[index - 1]})"}[code]
        raise ValueError(f"spike_times[{u}] (unit {u}): {what}")
    return spikes, offsets


@numba.njit(cache=True, nogil=True)
def _first_bad_spike(spikes, offsets):  # pragma: no cover - compiled
    """Return (code, index) of the first invalid spike: 1 non-finite, 2 negative, 3 unsorted."""
    for u in range(offsets.size - 1):
        for j in range(offsets[u], offsets[u + 1]):
            x = spikes[j]
            if not np.isfinite(x):
                return 1, j
            if x < 0:
                return 2, j
            if j > offsets[u] and x < spikes[j - 1]:
                return 3, j
    return 0, 0


def _check_stop(stop_times, align, t0):
    stop = np.asarray(stop_times, dtype=float)
    if stop.shape != align.shape:
        raise ValueError(f"stop_times: expected shape {align.shape} (one per trial), got {stop.shape}")
    if np.isnan(stop).any():
        raise ValueError(f"stop_times: trial {int(np.argmax(np.isnan(stop)))} is NaN")
    early = stop < align + t0
    if early.any():
        i = int(np.argmax(early))
        raise ValueError(f"stop_times: trial {i} stops at {stop[i]} s, before its window starts at "
                         f"{align[i] + t0} s (align_times + window[0]); a trial's stop must follow its start")
    return stop


def spikes_to_dataset(spike_times: Sequence[np.ndarray], align_times: np.ndarray,
                      window: tuple[float, float], bin_size: float,
                      stop_times: np.ndarray | None = None, *, output: str = "counts",
                      align_event: str = "align", trial=None, trial_coords=None, unit=None,
                      attrs: Mapping | None = None) -> xr.Dataset:
    """Bin spike times into a TrialDataset of counts or rates.

    Parameters
    ----------
    spike_times, align_times, window, bin_size, stop_times
        As in :func:`bin_spike_times`.
    output : {"counts", "rates"}
        Spike counts per bin, or rates in spikes/s (counts / bin_size).
    align_event : str
        Name of the event at time 0 (stored in ``attrs["align_event"]``).
    trial, trial_coords, unit, attrs
        Passed to :func:`neuroalrnn.schema.from_arrays`.

    Returns
    -------
    xarray.Dataset
        TrialDataset with ``activity`` (trial, time, unit), ``mask`` (bins
        before each stop time), ``time`` = bin starts and attrs ``dt``,
        ``align_event``; ``activity`` has CF ``units`` ``'count'`` or ``'Hz'``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = spikes_to_dataset([np.array([0.05, 0.15, 1.12])], np.array([0.0, 1.0]),
    ...                        window=(0.0, 0.2), bin_size=0.1, output="rates")
    >>> ds["activity"].sel(unit=0).values.tolist()
    [[10.0, 10.0], [0.0, 10.0]]
    """
    if output not in ("counts", "rates"):
        raise ValueError(f"output: expected 'counts' or 'rates', got {output!r}")
    counts, starts = bin_spike_times(spike_times, align_times, window, bin_size, stop_times)
    lengths = None
    if stop_times is not None:
        align = np.asarray(align_times, dtype=float)
        ends = align[:, None] + (starts + bin_size)[None, :]
        lengths = (ends <= np.asarray(stop_times, dtype=float)[:, None] + 1e-9 * bin_size).sum(axis=1)
        if (lengths < 1).any():
            i = int(np.argmin(lengths))
            raise ValueError(f"stop_times: trial {i} ends before its first whole bin "
                             f"(stop {stop_times[i]} s, first bin ends {ends[i, 0]} s)")
    if output == "rates":
        counts /= bin_size
    extra = {"bin_size": float(bin_size)}
    extra.update(attrs or {})
    units, long_name = spike_units(output, bin_size)
    return from_arrays(activity=counts, dt=float(bin_size), lengths=lengths, align_event=align_event,
                       units={"activity": units}, long_names={"activity": long_name},
                       t_start=float(starts[0]), trial=trial, trial_coords=trial_coords, unit=unit,
                       attrs=extra)

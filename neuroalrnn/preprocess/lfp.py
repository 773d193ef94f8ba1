"""LFP/field signals per trial with neurodsp: filtering and band power.

The sampling rate is ``fs = 1 / attrs['dt']``. Each trial is processed on its
valid (masked) steps only, one unit (channel) at a time. neurodsp (and
scipy.signal under it) is imported on first use, so importing
``neuroalrnn.preprocess`` stays light.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..schema import units_of
from ._common import as_dataset, get_dt, trial_label, unwrap

__all__ = ["filter_signal", "band_power"]


def filter_signal(ds, pass_type: str, f_range, var: str = "activity", edges: str = "nan",
                  filter_type: str | None = None, **filter_kwargs):
    """Filter each trial and unit with ``neurodsp.filt.filter_signal``.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        TrialDataset (or (trial, time, ...) DataArray) of field signals.
    pass_type : {"bandpass", "bandstop", "lowpass", "highpass"}
    f_range : tuple of (float or None)
        Cutoff frequencies in Hz, as in neurodsp.
    var : str
        Variable to filter (Dataset input only).
    edges : {"nan", "reflect"}
        Edge handling, explicit because neurodsp's FIR filter sets half a
        filter length at each end of the signal to NaN:

        * ``"nan"``: keep neurodsp's behaviour; those steps become NaN and are
          marked invalid in ``mask`` (shared by every variable of the dataset,
          so the other signals are NaN-ed there too).
        * ``"reflect"``: pad each trial's valid segment by reflection (one filter
          length per side), filter, and cut back; no step is lost, the edges are
          an estimate from the mirrored signal.
    filter_type : {"fir", "iir"}, optional
        neurodsp's choice (FIR unless ``butterworth_order`` is given). IIR
        filters leave no NaN edges, so ``edges`` only matters for FIR.
    **filter_kwargs
        Passed on to neurodsp (``n_cycles``, ``n_seconds``, ``butterworth_order``).

    Returns
    -------
    Same type as ``ds``, with ``attrs['filter']`` describing the filter.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> t = np.arange(1000) / 500
    >>> ds = from_arrays(activity=np.sin(2 * np.pi * 10 * t)[None, :, None], dt=1 / 500)
    >>> out = filter_signal(ds, "bandpass", (8, 12), edges="nan")
    >>> bool(out["mask"].values[0, 0]), bool(out["mask"].values[0, 500])
    (False, True)
    """
    from neurodsp.filt import filter_signal as _nd_filter_signal
    from neurodsp.filt.fir import design_fir_filter

    if edges not in ("nan", "reflect"):
        raise ValueError(f"edges: expected 'nan' or 'reflect', got {edges!r}")
    ds, var, wrapped = as_dataset(ds, var, "filter_signal")
    fs = 1.0 / get_dt(ds, "filter_signal")
    values = ds[var].values
    mask = ds["mask"].values
    flat = values.reshape(values.shape[0], values.shape[1], -1)
    out = np.full_like(flat, np.nan, dtype=float)
    is_fir = filter_type == "fir" or (filter_type is None and "butterworth_order" not in filter_kwargs)
    pad = 0
    if edges == "reflect" and is_fir:
        coefs = design_fir_filter(fs, pass_type, f_range, filter_kwargs.get("n_cycles"),
                                  filter_kwargs.get("n_seconds"))
        pad = len(coefs)
    for i in range(flat.shape[0]):
        steps = np.flatnonzero(mask[i])
        if steps.size and steps[-1] - steps[0] + 1 != steps.size:
            raise ValueError(f"mask: trial {trial_label(ds, i)!r} has gaps; filtering needs one contiguous "
                             "valid segment per trial")
        for u in range(flat.shape[2]):
            seg = flat[i, steps, u]
            sig = np.pad(seg, pad, mode="reflect") if pad else seg
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # neurodsp's transition-band notes
                    filt = _nd_filter_signal(sig, fs, pass_type, f_range, filter_type=filter_type,
                                             **filter_kwargs)
            except ValueError as err:
                raise ValueError(f"filter_signal: trial {trial_label(ds, i)!r} ({steps.size} valid steps at "
                                 f"fs={fs:g} Hz): {err}") from err
            out[i, steps, u] = filt[pad: pad + seg.size] if pad else filt
    out = out.reshape(values.shape)
    result = ds.copy()
    result[var] = ds[var].copy(data=out)
    if edges == "nan":
        valid = np.isfinite(out).reshape(out.shape[0], out.shape[1], -1).all(axis=2) & mask
        empty = ~valid.any(axis=1)
        if empty.any():
            raise ValueError(f"filter_signal: trial {trial_label(ds, np.argmax(empty))!r} has no step left "
                             "after neurodsp's NaN edges; use edges='reflect' or a shorter filter (n_seconds)")
        if not np.array_equal(valid, mask):
            result["mask"] = ds["mask"].copy(data=valid)
            for name, da in result.data_vars.items():
                if name != "mask" and da.dims[:2] == ("trial", "time"):
                    keep = valid.reshape(valid.shape + (1,) * (da.ndim - 2))
                    result[name] = da.where(keep)
    result.attrs["filter"] = f"neurodsp {pass_type} {list(f_range)} Hz, edges={edges}"
    return unwrap(result, var, wrapped)


def band_power(ds, band, var: str = "activity", method: str = "welch", **spectrum_kwargs) -> xr.DataArray:
    """Power in a frequency band per trial and unit, from ``neurodsp.spectral.compute_spectrum``.

    The band power is the power spectral density integrated over
    ``band[0] <= f <= band[1]`` (sum of PSD x frequency step), i.e. the
    signal variance carried by that band (a sine of amplitude ``a`` gives
    about ``a**2 / 2`` when the band holds its peak).

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        TrialDataset of field signals; only each trial's valid steps are used.
    band : (f_lo, f_hi)
        Band in Hz.
    var : str
        Variable (Dataset input only).
    method : str
        neurodsp spectrum method ("welch", "wavelet", "medfilt", "multitaper").
    **spectrum_kwargs
        Passed to neurodsp; for Welch, ``nperseg`` defaults to
        ``min(valid steps, fs)`` (1 s windows, or the whole trial when shorter).

    Returns
    -------
    xarray.DataArray (trial, unit)
        With the trial and unit coords of ``ds`` and attrs ``band``, ``method``.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroalrnn.schema import from_arrays
    >>> t = np.arange(2000) / 500
    >>> ds = from_arrays(activity=2 * np.sin(2 * np.pi * 10 * t)[None, :, None], dt=1 / 500)
    >>> round(float(band_power(ds, (8, 12))[0, 0]), 1)
    2.0
    """
    from neurodsp.spectral import compute_spectrum

    ds, var, wrapped = as_dataset(ds, var, "band_power")
    try:
        lo, hi = (float(v) for v in band)
    except (TypeError, ValueError):
        raise ValueError(f"band: expected (f_lo, f_hi) in Hz, got {band!r}")
    fs = 1.0 / get_dt(ds, "band_power")
    if not (0 <= lo < hi <= fs / 2):
        raise ValueError(f"band: expected 0 <= f_lo < f_hi <= fs/2 = {fs / 2:g} Hz, got ({lo}, {hi})")
    da = ds[var]
    values = da.values.reshape(da.shape[0], da.shape[1], -1)
    mask = ds["mask"].values
    power = np.empty((values.shape[0], values.shape[2]))
    for i in range(values.shape[0]):
        steps = np.flatnonzero(mask[i])
        kwargs = dict(spectrum_kwargs)
        if method == "welch":
            kwargs.setdefault("nperseg", int(min(steps.size, round(fs))))
        for u in range(values.shape[2]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                freqs, psd = compute_spectrum(values[i, steps, u], fs, method=method, **kwargs)
            inside = (freqs >= lo) & (freqs <= hi)
            if not inside.any():
                raise ValueError(f"band: ({lo}, {hi}) Hz holds no frequency of the spectrum of trial "
                                 f"{trial_label(ds, i)!r} (resolution {freqs[1] - freqs[0]:g} Hz)")
            df = freqs[1] - freqs[0] if freqs.size > 1 else 1.0
            power[i, u] = psd[inside].sum() * df
    dims = ("trial",) + da.dims[2:]
    power = power.reshape((values.shape[0],) + da.shape[2:])
    coords = {name: c for name, c in da.coords.items() if set(c.dims) <= set(dims)}
    units = (units_of(ds, var) if not wrapped else da.attrs.get("units")) or "signal units"
    return xr.DataArray(power, dims=dims, coords=coords, name="band_power",
                        attrs={"band": [lo, hi], "method": method, "units": f"({units})^2",
                               "dt": get_dt(ds, "band_power")})

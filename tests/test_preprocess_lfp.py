"""Tests for neuroalrnn.preprocess.lfp: neurodsp filtering with explicit edges, band power."""

import numpy as np
import pytest
import xarray as xr
from neurodsp.filt import filter_signal as nd_filter_signal
from neurodsp.filt.fir import design_fir_filter

from neuroalrnn.preprocess import band_power, filter_signal
from neuroalrnn.schema import from_arrays, validate

FS = 250.0


def _sines(lengths=(750, 600), freqs=(10.0, 40.0), amps=(1.0, 0.5)):
    trials = []
    for n in lengths:
        t = np.arange(n) / FS
        trials.append(np.stack([a * np.sin(2 * np.pi * f * t) for f, a in zip(freqs, amps)], axis=1))
    return from_arrays(activity=trials, dt=1 / FS, align_event="stim_on",
                       trial_coords={"context": ["a", "b"][: len(lengths)]},
                       unit={"unit": ["ch1", "ch2"]}, attrs={"activity_units": "uV"})


def test_filter_nan_edges_match_neurodsp_and_are_masked():
    ds = _sines()
    out = filter_signal(ds, "bandpass", (8, 12), n_seconds=0.5)
    validate(out)
    for i, n in enumerate((750, 600)):
        ref = nd_filter_signal(ds["activity"].values[i, :n, 0], FS, "bandpass", (8, 12), n_seconds=0.5)
        np.testing.assert_array_equal(np.isnan(out["activity"].values[i, :n, 0]), np.isnan(ref))
        np.testing.assert_allclose(out["activity"].values[i, :n, 0][~np.isnan(ref)], ref[~np.isnan(ref)])
        np.testing.assert_array_equal(out["mask"].values[i, :n], ~np.isnan(ref))
    n_edge = int(np.ceil(len(design_fir_filter(FS, "bandpass", (8, 12), n_seconds=0.5)) / 2))
    assert out["mask"].values[0].tolist() == [False] * n_edge + [True] * (750 - 2 * n_edge) + [False] * n_edge
    assert out["mask"].values[1].sum() == 600 - 2 * n_edge
    # the 10 Hz channel passes, the 40 Hz channel is removed
    valid = out["mask"].values[0]
    assert np.std(out["activity"].values[0, valid, 0]) > 0.6
    assert np.std(out["activity"].values[0, valid, 1]) < 0.02
    # the other signals are NaN where the mask was cut
    assert np.isnan(out["activity"].values[~out["mask"].values]).all()


def test_filter_reflect_keeps_every_step():
    ds = _sines()
    out = filter_signal(ds, "bandpass", (8, 12), edges="reflect", n_seconds=0.5)
    validate(out)
    xr.testing.assert_equal(out["mask"], ds["mask"])
    x = ds["activity"].values[0, :750, 0]
    y = out["activity"].values[0, :750, 0]
    assert np.isfinite(y).all()
    # a pure in-band sine survives away from the edges
    np.testing.assert_allclose(y[200:550], x[200:550], atol=0.05)
    # wherever the NaN-edge filter is defined, the reflect result is the same filter output...
    ref = filter_signal(ds, "bandpass", (8, 12), n_seconds=0.5)
    inner = ref["mask"].values
    np.testing.assert_allclose(out["activity"].values[inner], ref["activity"].values[inner], atol=1e-12)
    # ...and the extra edge steps are an estimate from the mirrored trial (here within the amplitude)
    edge = ds["mask"].values & ~inner
    assert edge.sum() > 0 and np.abs(out["activity"].values[edge][:, 0]).max() < 1.05
    assert out.attrs["filter"].endswith("edges=reflect") and out["activity"].attrs["units"] == "uV"


def test_filter_dataarray_and_bad_input():
    ds = _sines()
    da = filter_signal(ds["activity"].isel(trial=[0]), "lowpass", (None, 20), n_seconds=0.3)
    assert isinstance(da, xr.DataArray) and np.isnan(da.values[0, 0]).all()
    with pytest.raises(ValueError, match="edges"):
        filter_signal(ds, "lowpass", (None, 20), edges="zero")
    short = _sines(lengths=(40, 30))
    with pytest.raises(ValueError, match="trial 0"):
        filter_signal(short, "bandpass", (8, 12), n_seconds=1.0)


def test_band_power_of_pure_sine_in_and_out_of_band():
    ds = _sines(lengths=(1000, 750))
    alpha = band_power(ds, (8, 12))
    gamma = band_power(ds, (35, 45))
    assert alpha.dims == ("trial", "unit") and alpha["context"].values.tolist() == ["a", "b"]
    assert alpha["unit"].values.tolist() == ["ch1", "ch2"] and alpha.attrs["units"] == "(uV)^2"
    # amplitude a -> power a^2 / 2 in the band that holds the sine, ~0 elsewhere
    np.testing.assert_allclose(alpha.values[:, 0], 0.5, rtol=0.05)
    np.testing.assert_allclose(gamma.values[:, 1], 0.125, rtol=0.05)
    assert (alpha.values[:, 1] < 1e-3 * 0.125).all() and (gamma.values[:, 0] < 1e-3 * 0.5).all()


def test_band_power_bad_band():
    ds = _sines()
    with pytest.raises(ValueError, match="band"):
        band_power(ds, (12, 8))
    with pytest.raises(ValueError, match="band"):
        band_power(ds, (10, 500))
    with pytest.raises(ValueError, match="band"):
        band_power(ds, "alpha")

"""Tests for neuroalrnn.preprocess.signals: smoothing, z-scoring, resampling."""

import numpy as np
import pytest
import xarray as xr

from neuroalrnn.preprocess import gaussian_smooth, resample, zscore
from neuroalrnn.schema import from_arrays, validate


def _ragged(rng, lengths=(30, 22, 30, 15), n_units=3, dt=0.01):
    return from_arrays(activity=[rng.normal(size=(n, n_units)) for n in lengths], dt=dt, t_start=-0.1,
                       align_event="stim_on", trial_coords={"context": ["a", "b", "a", "b"][: len(lengths)]},
                       unit={"unit": np.arange(n_units) + 5, "area": ["x"] * n_units},
                       attrs={"activity_units": "spikes/s"})


# ---------------------------------------------------------------- smoothing

def test_smooth_delta_gives_gaussian():
    dt, sigma = 0.01, 0.03
    x = np.zeros((1, 101, 1))
    x[0, 50, 0] = 1.0
    out = gaussian_smooth(from_arrays(activity=x, dt=dt), sigma=sigma)
    t = (np.arange(101) - 50) * dt
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel[np.abs(t) > 4 * sigma + 1e-12] = 0
    np.testing.assert_allclose(out["activity"].values[0, :, 0], kernel / kernel.sum(), atol=1e-12)


def test_smooth_constant_stays_constant_and_padding_does_not_leak(rng):
    ds = from_arrays(activity=[np.full((20, 2), 3.0), np.full((8, 2), 3.0)], dt=0.01)
    out = gaussian_smooth(ds, sigma=0.05)
    validate(out)
    np.testing.assert_allclose(out["activity"].values[ds["mask"].values], 3.0)
    assert np.isnan(out["activity"].values[1, 8:]).all()
    assert out["mask"].equals(ds["mask"])


def test_smooth_keeps_coords_attrs_and_input(rng):
    ds = _ragged(rng)
    before = ds.copy(deep=True)
    out = gaussian_smooth(ds, 0.02)
    xr.testing.assert_identical(ds, before)
    assert out["activity"].attrs["units"] == "Hz" and out.attrs["smooth_sigma"] == 0.02
    assert out["area"].values.tolist() == ["x"] * 3 and out["context"].values.tolist() == ["a", "b", "a", "b"]


def test_smooth_dataarray():
    x = np.zeros((1, 41, 1))  # the delta is more than 4 sigma from both ends
    x[0, 20, 0] = 1.0
    da = from_arrays(activity=x, dt=0.01)["activity"]
    out = gaussian_smooth(da, 0.02)
    assert isinstance(out, xr.DataArray) and out.dims == da.dims
    assert np.isclose(out.sum(), 1.0)
    assert out.attrs["smooth_sigma"] == 0.02


def test_smooth_renormalizes_at_trial_end():
    # a ramp ending inside the array: the last valid value is a weighted mean of valid steps only
    ds = from_arrays(activity=[np.ones((10, 1)), np.ones((4, 1))], dt=0.01)
    out = gaussian_smooth(ds, 0.02)
    np.testing.assert_allclose(out["activity"].values[1, :4, 0], 1.0)


@pytest.mark.parametrize("sigma", [0, -1.0, np.nan, "1"])
def test_smooth_bad_sigma(rng, sigma):
    with pytest.raises(ValueError, match="sigma"):
        gaussian_smooth(_ragged(rng), sigma)


# ---------------------------------------------------------------- z-scoring

def test_zscore_uses_train_trials_only(rng):
    ds = _ragged(rng)
    train = np.array([True, True, False, False])
    z, stats = zscore(ds, train=train)
    x = ds["activity"].values
    pooled = np.concatenate([x[i][ds["mask"].values[i]] for i in (0, 1)])
    np.testing.assert_allclose(stats["mean"].values, pooled.mean(0))
    np.testing.assert_allclose(stats["std"].values, pooled.std(0))
    assert stats["n"].values.tolist() == [52, 52, 52]
    assert stats["unit"].values.tolist() == [5, 6, 7]
    # the test trials are z-scored with the training statistics
    z_test, stats2 = zscore(ds.isel(trial=[2, 3]), stats=stats)
    expected = (x[2:] - pooled.mean(0)) / pooled.std(0)
    np.testing.assert_allclose(z_test["activity"].values, expected)
    np.testing.assert_allclose(z["activity"].values[2:], expected)
    assert stats2 is stats and z_test["activity"].attrs["units"] == "1"
    assert z_test["activity"].attrs["long_name"] == "z-scored firing rate (was Hz)"
    validate(z_test)


def test_zscore_train_by_labels_and_default(rng):
    ds = _ragged(rng)
    _, by_label = zscore(ds, train=[0, 1])
    _, by_bool = zscore(ds, train=[True, True, False, False])
    xr.testing.assert_equal(by_label, by_bool)
    z, _ = zscore(ds)
    vals = z["activity"].values[ds["mask"].values]
    np.testing.assert_allclose(vals.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(vals.std(0), 1)


def test_zscore_stats_roundtrip_netcdf(rng, tmp_path):
    ds = _ragged(rng)
    _, stats = zscore(ds)
    stats.to_netcdf(tmp_path / "stats.nc")
    back = xr.load_dataset(tmp_path / "stats.nc")
    a, _ = zscore(ds, stats=back)
    b, _ = zscore(ds, stats=stats)
    xr.testing.assert_allclose(a, b)


def test_zscore_constant_unit_is_centred():
    ds = from_arrays(activity=np.ones((2, 4, 1)))
    z, stats = zscore(ds)
    assert stats["std"].item() == 0 and np.all(z["activity"].values == 0)


def test_zscore_bad_input(rng):
    ds = _ragged(rng)
    bad = ds.copy(deep=True)
    bad["activity"][0, 0, 0] = np.nan  # NaN inside the mask
    with pytest.raises(ValueError, match="activity.*NaN"):
        zscore(bad)
    with pytest.raises(ValueError, match="train"):
        zscore(ds, train=[True, False])
    with pytest.raises(ValueError, match="train.*label"):
        zscore(ds, train=[0, 99])
    with pytest.raises(ValueError, match="train.*no trial"):
        zscore(ds, train=np.zeros(4, bool))
    _, stats = zscore(ds)
    with pytest.raises(ValueError, match="not both"):
        zscore(ds, stats=stats, train=[0])
    with pytest.raises(ValueError, match="stats.*unit"):
        zscore(ds.assign_coords(unit=[1, 2, 3]), stats=stats)
    with pytest.raises(TypeError, match="stats"):
        zscore(ds, stats={"mean": 0})
    with pytest.raises(TypeError, match="zscore"):
        zscore(np.zeros((2, 3, 4)))


# ---------------------------------------------------------------- resampling

def test_resample_halving_preserves_sums_and_means(rng):
    ds = from_arrays(activity=[rng.poisson(3, size=(40, 2)).astype(float),
                               rng.poisson(3, size=(31, 2)).astype(float)], dt=0.01, t_start=-0.2)
    summed = resample(ds, 0.02, how="sum")
    mean = resample(ds, 0.02, how="mean")
    validate(summed), validate(mean)
    x = ds["activity"].values
    # trial 0: 40 steps -> 20; trial 1: 31 steps -> 15 whole blocks (the last step is dropped)
    assert summed["mask"].sum("time").values.tolist() == [20, 15]
    np.testing.assert_allclose(summed["activity"].values[0].sum(0), x[0].sum(0))
    np.testing.assert_allclose(summed["activity"].values[1, :15].sum(0), x[1, :30].sum(0))
    np.testing.assert_allclose(mean["activity"].values[0].mean(0), x[0].mean(0))
    np.testing.assert_allclose(mean["activity"].values[0, 3], x[0, 6:8].mean(0))
    np.testing.assert_allclose(summed["time"].values, -0.2 + 0.02 * np.arange(20))
    assert summed.attrs["dt"] == 0.02 and "sum" in summed.attrs["resample"]


def test_resample_upsampling_interpolates_linearly():
    ds = from_arrays(activity=[np.array([[0.0], [2.0], [4.0]]), np.array([[1.0], [3.0]])], dt=0.1)
    up = resample(ds, 0.05)
    validate(up)
    assert up["mask"].sum("time").values.tolist() == [5, 3]
    np.testing.assert_allclose(up["activity"].values[0, :, 0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(up["activity"].values[1, :3, 0], [1, 2, 3])
    assert up.attrs["resample"] == "linear interpolation"


def test_resample_all_signals_and_bad_input(rng):
    ds = from_arrays(activity=rng.normal(size=(2, 10, 2)), inputs=rng.normal(size=(2, 10, 3)), dt=0.01)
    out = resample(ds, 0.05)
    assert out["inputs"].shape == (2, 2, 3)
    np.testing.assert_allclose(out["inputs"].values[:, 1], ds["inputs"].values[:, 5:].mean(1))
    with pytest.raises(ValueError, match="new_dt.*multiple"):
        resample(ds, 0.025)
    with pytest.raises(ValueError, match="new_dt"):
        resample(ds, -1)
    with pytest.raises(ValueError, match="how"):
        resample(ds, 0.02, how="max")
    short = from_arrays(activity=[np.ones((10, 1)), np.ones((1, 1))], dt=0.01)
    with pytest.raises(ValueError, match="trial 1"):
        resample(short, 0.02)

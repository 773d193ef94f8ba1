"""Tests for neuroalrnn.analysis.regions: P-bit region codes and their statistics."""

import numpy as np
import pytest
import torch
import xarray as xr

from neuroalrnn.analysis.regions import (bits_to_codes, codes_to_bits, region_codes, region_occupancy,
                                         region_transitions, regions_by_group, unit_flips)


def _reference_codes(z, P):
    """Plain-Python reference: bit i = latent unit M-P+i > 0."""
    M = z.shape[-1]
    flat = z.reshape(-1, M)
    out = [sum(int(row[M - P + i] > 0) << i for i in range(P)) for row in flat]
    return np.array(out, dtype=np.int64).reshape(z.shape[:-1])


def test_region_codes_known_answer():
    z = np.array([[0.3, -1.0, 2.0], [0.1, 1.0, -2.0], [-5.0, 1.0, 1.0], [9.0, 0.0, -0.0]])
    # ReLU units are the last two; bit 0 is unit 1, bit 1 is unit 2; zero counts as off
    assert region_codes(z, 2).tolist() == [2, 1, 3, 0]
    assert region_codes(z, 3).tolist() == [5, 3, 6, 1]
    assert region_codes(z, 0).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("P", [1, 7, 16, 33, 62])
def test_region_codes_match_reference(rng, P):
    z = rng.normal(size=(5, 7, 64))
    np.testing.assert_array_equal(region_codes(z, P), _reference_codes(z, P))
    np.testing.assert_array_equal(codes_to_bits(region_codes(z, P), P), z[..., 64 - P:] > 0)


def test_bits_codes_round_trip(rng):
    bits = rng.integers(0, 2, size=(100, 62)).astype(bool)
    np.testing.assert_array_equal(codes_to_bits(bits_to_codes(bits), 62), bits)


def test_region_codes_nan_mask_and_torch(rng):
    z = rng.normal(size=(2, 4, 5))
    z[0, 1, 0] = np.nan
    mask = np.ones((2, 4), bool)
    mask[1, 3] = False
    codes = region_codes(z, 2, mask=mask)
    assert codes[0, 1] == -1 and codes[1, 3] == -1
    assert (codes[mask & ~np.isnan(z).any(-1)] >= 0).all()
    np.testing.assert_array_equal(region_codes(torch.from_numpy(z), 2, mask=mask), codes)


def test_region_codes_dataarray_keeps_coords(rng):
    z = xr.DataArray(rng.normal(size=(3, 4, 5)), dims=("trial", "time", "latent"),
                     coords={"trial": [10, 11, 12], "context": ("trial", ["a", "b", "a"]),
                             "time": np.arange(4) * 0.1, "latent": np.arange(5)})
    codes = region_codes(z.transpose("latent", "trial", "time"), 3)
    assert codes.dims == ("trial", "time") and codes.name == "region"
    assert list(codes.context.values) == ["a", "b", "a"] and "latent" not in codes.coords
    np.testing.assert_array_equal(codes.values, _reference_codes(z.values, 3))


def test_region_codes_bad_input():
    with pytest.raises(ValueError, match="n_relu"):
        region_codes(np.zeros((3, 2)), 3)
    with pytest.raises(TypeError, match="n_relu"):
        region_codes(np.zeros((3, 2)), 1.0)
    with pytest.raises(ValueError, match="latent"):
        region_codes(xr.DataArray(np.zeros((3, 2)), dims=("time", "unit")), 1)
    with pytest.raises(ValueError, match="n_relu"):
        region_codes(np.zeros((3, 70)), 63)


def _codes_da():
    codes = np.array([[0, 0, 1, 1, 0, -1], [3, 3, 3, 0, 1, 1]])
    return xr.DataArray(codes, dims=("trial", "time"),
                        coords={"trial": [5, 6], "context": ("trial", ["x", "y"]),
                                "epoch": (("trial", "time"), [["s", "s", "s", "d", "d", "d"]] * 2)})


def test_occupancy_counts_and_fractions():
    da = _codes_da()
    occ = region_occupancy(da)
    assert occ.region.values.tolist() == [0, 1, 3] and occ.values.tolist() == [4, 4, 3]
    frac = region_occupancy(da, normalize=True)
    np.testing.assert_allclose(frac.values, np.array([4, 4, 3]) / 11)
    per = region_occupancy(da, per_trial=True)
    assert per.dims == ("trial", "region") and per.context.values.tolist() == ["x", "y"]
    assert per.values.tolist() == [[3, 2, 0], [1, 2, 3]]
    mask = np.ones((2, 6), bool)
    mask[1, :3] = False
    assert region_occupancy(da, mask).values.tolist() == [4, 4]


def test_transitions_within_trials_only():
    ds = region_transitions(_codes_da())
    # trial 0: 0->0, 0->1, 1->1, 1->0 (then an invalid step); trial 1: 3->3, 3->3, 3->0, 0->1, 1->1
    expected = {(0, 0): 1, (0, 1): 2, (1, 1): 2, (1, 0): 1, (3, 3): 2, (3, 0): 1}
    for (a, b), n in expected.items():
        assert int(ds["counts"].sel(source=a, target=b)) == n
    assert int(ds["counts"].sum()) == sum(expected.values())  # nothing chains across trials
    np.testing.assert_allclose(ds["probability"].sum("target").values, 1.0)
    np.testing.assert_allclose(float(ds["joint"].sum()), 1.0)
    lone = region_transitions([[0, 0, 1]])
    assert np.isnan(lone["probability"].sel(source=1)).all()


def test_unit_flips_against_brute_force(rng):
    codes = rng.integers(0, 8, size=(4, 30))
    codes[2, 10] = -1
    flips = unit_flips(codes, 3)
    bits = codes_to_bits(np.where(codes < 0, 0, codes), 3)
    expected = np.zeros(3, int)
    for tr in range(4):
        for t in range(29):
            if codes[tr, t] >= 0 and codes[tr, t + 1] >= 0:
                expected += bits[tr, t] != bits[tr, t + 1]
    np.testing.assert_array_equal(flips.values, expected)
    per = unit_flips(xr.DataArray(codes, dims=("trial", "time"), coords={"cond": ("trial", list("abcd"))}),
                     3, per_trial=True)
    assert per.dims == ("trial", "relu_unit") and per.cond.values.tolist() == list("abcd")
    np.testing.assert_array_equal(per.sum("trial").values, expected)


def test_regions_by_group_trial_and_epoch():
    da = _codes_da()
    by_ctx = regions_by_group(da, "context")
    assert by_ctx.dims == ("context", "region")
    assert by_ctx.sel(context="x").values.tolist() == [3, 2, 0]
    assert by_ctx.sel(context="y").values.tolist() == [1, 2, 3]
    by_epoch = regions_by_group(da, "epoch", normalize=True)
    np.testing.assert_allclose(by_epoch.sel(epoch="s").values, [2 / 6, 1 / 6, 3 / 6])
    with pytest.raises(ValueError, match="by"):
        regions_by_group(da, "nope")
    with pytest.raises(TypeError, match="codes"):
        region_occupancy(np.zeros((2, 3)))

"""Cross-cutting checks for neuroalrnn.preprocess: purity, coords/attrs kept, DataArray input."""

import numpy as np
import pytest
import xarray as xr

import neuroalrnn.preprocess as pp
from neuroalrnn.schema import from_arrays, validate


@pytest.fixture
def ds(rng):
    lengths = [200, 160, 200, 180]
    t = [np.arange(n) / 100 for n in lengths]
    act = [np.stack([np.sin(2 * np.pi * 5 * tt), np.cos(2 * np.pi * 20 * tt)], 1) + 0.1 * rng.normal(size=(len(tt), 2))
           for tt in t]
    return from_arrays(activity=act, inputs=[np.ones((n, 1)) for n in lengths], dt=0.01, t_start=-0.5,
                       align_event="stim_on", trial_coords={"context": list("abab"), "go": [0.1, 0.2, 0.0, 0.3]},
                       unit={"unit": ["u0", "u1"], "area": ["A", "B"]},
                       attrs={"activity_units": "spikes/s", "source": "unit test"})


CALLS = {
    "gaussian_smooth": lambda d: pp.gaussian_smooth(d, 0.03),
    "zscore": lambda d: pp.zscore(d, train=[True, True, False, False])[0],
    "resample_down": lambda d: pp.resample(d, 0.02),
    "resample_up": lambda d: pp.resample(d, 0.005),
    "select_trials": lambda d: pp.select_trials(d, context="a"),
    "condition_average": lambda d: pp.condition_average(d, "context"),
    "align": lambda d: pp.align(d, "go"),
    "filter_nan": lambda d: pp.filter_signal(d, "lowpass", (None, 10), n_seconds=0.3),
    "filter_reflect": lambda d: pp.filter_signal(d, "lowpass", (None, 10), edges="reflect", n_seconds=0.3),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_pure_and_keeps_coords_and_attrs(ds, name):
    before = ds.copy(deep=True)
    out = CALLS[name](ds)
    xr.testing.assert_identical(ds, before)  # the input is untouched
    assert isinstance(out, xr.Dataset)
    for key in ("source", "align_event"):
        assert out.attrs[key] == ("go" if key == "align_event" and name == "align" else ds.attrs[key])
    # CF units: on the variables, kept by every step; z-scored data are dimensionless
    assert out["activity"].attrs["units"] == ("1" if name == "zscore" else "Hz")
    assert out["inputs"].attrs["long_name"].startswith("task inputs")
    assert out["time"].attrs["units"] == "s"
    assert out["time"].attrs["long_name"] == f"time from {out.attrs['align_event']}"
    assert out["area"].values.tolist() == ["A", "B"]
    if name != "condition_average":
        validate(out)
        assert "context" in out.coords and "go" in out.coords
        # every signal is NaN exactly outside the mask
        assert np.array_equal(np.isnan(out["activity"].values).any(axis=2), ~out["mask"].values)


def test_dataarray_inputs(ds):
    da = ds["activity"]
    z, stats = pp.zscore(da)
    assert isinstance(z, xr.DataArray) and z.dims == da.dims
    ref, _ = pp.zscore(ds)
    np.testing.assert_allclose(z.values, ref["activity"].values)
    bp = pp.band_power(da, (3, 7))
    np.testing.assert_allclose(bp.values, pp.band_power(ds, (3, 7)).values)
    with pytest.raises(ValueError, match="inf"):
        pp.zscore(da.where(da.isnull(), np.inf))
    with pytest.raises(ValueError, match="trial"):
        pp.gaussian_smooth(da.transpose("time", "trial", "unit"), 0.01)

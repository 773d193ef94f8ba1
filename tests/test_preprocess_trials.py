"""Tests for neuroalrnn.preprocess.trials: selection, PSTHs, re-alignment."""

import numpy as np
import pytest
import xarray as xr

from neuroalrnn.preprocess import align, condition_average, select_trials
from neuroalrnn.schema import from_arrays, validate


@pytest.fixture
def ds(rng):
    lengths = [12, 9, 12, 7, 12, 10]
    return from_arrays(activity=[rng.normal(size=(n, 3)) for n in lengths],
                       inputs=[rng.normal(size=(n, 2)) for n in lengths], dt=0.1, t_start=-0.3,
                       align_event="stim_on", trial=np.arange(6) + 100,
                       trial_coords={"context": list("ababab"), "coh": [1, 1, 2, 2, 1, 2],
                                     "go": [0.2, 0.0, 0.5, 0.1, 0.3, -0.3]},
                       unit={"unit": [7, 8, 9], "area": ["V1", "V1", "PFC"]},
                       attrs={"activity_units": "spikes/s", "source": "test"})


# ---------------------------------------------------------------- selection

def test_select_trials(ds):
    out = select_trials(ds, context="a", coh=[2, 3])
    assert out["trial"].values.tolist() == [102]
    out = select_trials(ds, ds["coh"] == 1)
    assert out["trial"].values.tolist() == [100, 101, 104]
    assert out.attrs == ds.attrs and out["area"].values.tolist() == ["V1", "V1", "PFC"]
    validate(out)


def test_select_trials_bad_input(ds):
    with pytest.raises(ValueError, match="'colour' is not a coord"):
        select_trials(ds, colour="red")
    with pytest.raises(ValueError, match="no trial matches"):
        select_trials(ds, context="c")
    with pytest.raises(ValueError, match="selection"):
        select_trials(ds, np.ones(3, bool))
    with pytest.raises(ValueError, match="area.*trial"):
        select_trials(ds, area="V1")


# ---------------------------------------------------------------- PSTHs

def test_condition_average_equals_manual_group_means(ds):
    psth = condition_average(ds, ["context", "coh"])
    x = ds["activity"].values
    combos = [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert list(zip(psth["context"].values.tolist(), psth["coh"].values.tolist())) == combos
    for c, (ctx, coh) in enumerate(combos):
        idx = np.flatnonzero((ds["context"].values == ctx) & (ds["coh"].values == coh))
        for t in range(x.shape[1]):
            valid = idx[ds["mask"].values[idx, t]]
            expected = x[valid, t].mean(0) if valid.size else np.full(3, np.nan)
            np.testing.assert_allclose(psth["activity"].values[c, t], expected)
            assert psth["n_trials"].values[c, t] == valid.size
    assert psth["inputs"].dims == ("condition", "time", "input")
    np.testing.assert_array_equal(psth["mask"].values, psth["n_trials"].values > 0)
    assert psth["activity"].attrs["units"] == "Hz" and psth["time"].attrs["units"] == "s"
    assert psth["area"].values.tolist() == ["V1", "V1", "PFC"]
    np.testing.assert_allclose(psth["time"].values, ds["time"].values)


def test_condition_average_netcdf_roundtrip(ds, tmp_path):
    psth = condition_average(ds, ["context", "coh"], var="activity")
    assert "inputs" not in psth
    psth.to_netcdf(tmp_path / "psth.nc", engine="h5netcdf")
    back = xr.load_dataset(tmp_path / "psth.nc", engine="h5netcdf")
    xr.testing.assert_allclose(back, psth)
    sel = psth.set_index(condition=["context", "coh"]).sel(condition=("b", 2))
    assert sel["n_trials"].max() == 2


def test_condition_average_bad_input(ds):
    with pytest.raises(ValueError, match="'colour' is not a coord"):
        condition_average(ds, "colour")
    with pytest.raises(ValueError, match="var"):
        condition_average(ds, "context", var="rates")
    with pytest.raises(ValueError, match="by"):
        condition_average(ds, [])


# ---------------------------------------------------------------- alignment

def test_align_shifts_each_trial(ds):
    out = align(ds, "go")
    validate(out)
    dt = 0.1
    x, t_old = ds["activity"].values, ds["time"].values
    assert out.attrs["align_event"] == "go" and out.attrs["previous_align_event"] == "stim_on"
    assert out.attrs["align_rounding"] < 1e-9
    np.testing.assert_allclose(np.diff(out["time"].values), dt)
    for i, go in enumerate(ds["go"].values):
        for k in range(x.shape[1]):
            new_t = t_old[k] - go
            j = int(np.argmin(np.abs(out["time"].values - new_t)))
            assert abs(out["time"].values[j] - new_t) < 1e-9
            assert out["mask"].values[i, j] == ds["mask"].values[i, k]
            if ds["mask"].values[i, k]:
                np.testing.assert_array_equal(out["activity"].values[i, j], x[i, k])
                np.testing.assert_array_equal(out["inputs"].values[i, j], ds["inputs"].values[i, k])
    assert out["mask"].sum().item() == ds["mask"].sum().item()
    # the event sample of each trial now sits at time 0
    zero = int(np.argmin(np.abs(out["time"].values)))
    k_go = np.rint((ds["go"].values - t_old[0]) / dt).astype(int)
    np.testing.assert_array_equal(out["activity"].values[np.arange(6), zero], x[np.arange(6), k_go])


def test_align_window_and_bad_input(ds):
    out = align(ds, "go", window=(-0.2, 0.3))
    np.testing.assert_allclose(out["time"].values, [-0.2, -0.1, 0.0, 0.1, 0.2], atol=1e-12)
    validate(out)
    bad = ds.assign_coords(go=("trial", [0.2, np.nan, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="go: trial 101.*NaN"):
        align(bad, "go")
    far = ds.assign_coords(go=("trial", [0.2, 5.0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="go: trial 101.*outside"):
        align(far, "go")
    with pytest.raises(ValueError, match="'nope' is not a coord"):
        align(ds, "nope")
    with pytest.raises(ValueError, match="window"):
        align(ds, "go", window=(1.0, 0.0))
    with pytest.raises(TypeError, match="align"):
        align(ds["activity"], "go")


def test_align_refuses_an_event_past_the_trial_end():
    ds = from_arrays(activity=[np.arange(5.0)[:, None], np.arange(3.0)[:, None]], dt=0.1,
                     trial=np.array([7, 8]), trial_coords={"go": [0.1, 0.4]})
    # trial 8 holds 3 steps (0.0-0.2 s): an event at 0.4 s lies in its NaN padding
    with pytest.raises(ValueError, match=r"go: trial 8 has its event at 0\.4 s, outside the trial's "
                                         r"recorded time \[0\.0, 0\.2"):
        align(ds, "go")
    out = align(ds.assign_coords(go=("trial", [0.1, 0.2])), "go")
    assert out["activity"].sel(time=0.0, method="nearest").values[:, 0].tolist() == [1.0, 2.0]


def test_boolean_dataarrays_are_matched_by_trial_label():
    from neuroalrnn.preprocess import zscore

    ds = from_arrays(activity=np.arange(6.0).reshape(3, 2, 1), trial=np.array([10, 11, 12]))
    sel = xr.DataArray([True, False, False], dims="trial", coords={"trial": [12, 10, 11]})  # another order
    assert select_trials(ds, sel)["trial"].values.tolist() == [12]
    _, stats = zscore(ds, train=sel)
    assert stats["mean"].values.tolist() == [4.5]  # trial 12 holds 4, 5
    with pytest.raises(ValueError, match="selection: a DataArray on 'trial' must cover"):
        select_trials(ds, sel.isel(trial=[0, 1]))


def test_condition_average_leaves_out_empty_strings_like_nan(ds, tmp_path):
    """'' is what tables (and netCDF) give for a missing string: no condition of its own."""
    import pandas as pd

    from neuroalrnn.io import read_table

    holed = ds.assign_coords(context=("trial", ["a", "", "a", "b", "", "b"]),
                             coh=("trial", [1.0, 1.0, np.nan, 2.0, 1.0, 2.0]))
    out = condition_average(holed, ["context", "coh"])
    assert out["context"].values.tolist() == ["a", "b"] and out["coh"].values.tolist() == [1.0, 2.0]
    want = ds["activity"].isel(trial=[3, 5]).mean("trial", skipna=True)  # the two (b, 2) trials
    np.testing.assert_allclose(out["activity"].isel(condition=1).values, want.values)
    np.testing.assert_allclose(out["activity"].isel(condition=0).values, ds["activity"].isel(trial=0).values)
    pd.DataFrame({"context": ["a", None, "b"], "rt": [0.3, 0.4, 0.5]}).to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv")
    assert table["context"].values.tolist() == ["a", "", "b"]  # the loader's missing string
    table = from_arrays(activity=np.arange(6.0).reshape(3, 2, 1), trial_coords={"context": table["context"].values})
    assert condition_average(table, "context")["context"].values.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="by: no trial has a value"):
        condition_average(holed.isel(trial=[1, 4]), "context")

import numpy as np
import pytest
import xarray as xr

import neuroalrnn
from neuroalrnn.schema import from_arrays, to_arrays, trial_lengths, validate


def ragged_dataset():
    rng = np.random.default_rng(1)
    activity = [rng.normal(size=(n, 3)) for n in (5, 3, 4)]
    inputs = [rng.normal(size=(n, 2)) for n in (5, 3, 4)]
    return from_arrays(activity=activity, inputs=inputs, dt=0.02, align_event="stim_on", t_start=-0.04,
                       trial_coords={"context": ["motion", "color", "motion"], "rt": [0.3, 0.25, 0.4]},
                       unit={"unit": ["a", "b", "c"], "area": ["PFC", "PFC", "FEF"]},
                       input_names=["motion", "color"], attrs={"source": "test"})


def test_ragged_trials_are_nan_padded_with_mask_from_lengths():
    ds = ragged_dataset()
    assert ds.sizes == {"trial": 3, "time": 5, "unit": 3, "input": 2}
    assert trial_lengths(ds).values.tolist() == [5, 3, 4]
    assert ds["mask"].values[1].tolist() == [True, True, True, False, False]
    assert np.isnan(ds["activity"].values[1, 3:]).all()
    np.testing.assert_allclose(ds["time"].values, [-0.04, -0.02, 0.0, 0.02, 0.04], atol=1e-12)
    assert ds["area"].dims == ("unit",)
    assert ds["context"].values.tolist() == ["motion", "color", "motion"]


def test_dense_arrays_with_lengths_and_roundtrip_to_arrays():
    values = np.arange(24, dtype=float).reshape(2, 4, 3)
    ds = from_arrays(activity=values, lengths=[4, 2])
    arrays = to_arrays(ds, fill_value=0.0)
    assert arrays["lengths"].tolist() == [4, 2]
    np.testing.assert_array_equal(arrays["activity"][0], values[0])
    np.testing.assert_array_equal(arrays["activity"][1, 2:], 0.0)
    assert not np.shares_memory(values, ds["activity"].values)  # input untouched
    np.testing.assert_array_equal(values, np.arange(24, dtype=float).reshape(2, 4, 3))


def test_behaviour_only_dataset():
    ds = from_arrays(trial_coords={"choice": [1, -1, 1], "contrast": [0.5, 0.0, 1.0]})
    assert set(ds.dims) == {"trial"}
    assert validate(ds) is ds


def test_netcdf_roundtrip_loses_nothing(tmp_path):
    ds = ragged_dataset()
    path = tmp_path / "ds.nc"
    ds.to_netcdf(path)
    back = neuroalrnn.load(path)
    xr.testing.assert_identical(back, ds)
    assert back["mask"].dtype == bool


@pytest.mark.parametrize("mutate, field", [
    (lambda ds: ds.drop_vars("mask"), "mask"),
    (lambda ds: ds.assign(mask=ds["mask"].astype(int)), "mask"),
    (lambda ds: ds.assign(activity=ds["activity"].transpose("trial", "unit", "time")), "activity"),
    (lambda ds: ds.rename_dims(trial="trials"), "trial"),
    (lambda ds: ds.assign_attrs(dt=-1.0), "dt"),
    (lambda ds: ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs(dt=None), "dt"),
    (lambda ds: ds.assign_attrs(align_event=3), "align_event"),
    (lambda ds: ds.assign_attrs(meta={"a": 1}), "meta"),
    (lambda ds: ds.assign_coords(time=ds["time"] * 2), "time"),
])
def test_validate_names_the_field(mutate, field):
    with pytest.raises((ValueError, TypeError), match=field):
        validate(mutate(ragged_dataset()))


def test_nan_inside_mask_and_values_outside_mask_are_rejected():
    ds = ragged_dataset()
    bad = ds.copy(deep=True)
    bad["activity"].values[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"activity: NaN or inf inside the mask .*unit 'c'"):
        validate(bad)
    bad = ds.copy(deep=True)
    bad["activity"].values[0, 1, 2] = np.inf
    with pytest.raises(ValueError, match="activity"):
        validate(bad)
    bad = ds.copy(deep=True)
    bad["inputs"].values[1, 4, 0] = 0.0
    with pytest.raises(ValueError, match="inputs: expected NaN outside the mask"):
        validate(bad)


def test_from_arrays_bad_input():
    with pytest.raises(ValueError, match="activity: expected a .trial, time, feature. array"):
        from_arrays(activity=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="trial_coords\\['context'\\]"):
        from_arrays(activity=np.zeros((2, 3, 1)), trial_coords={"context": ["a"]})
    with pytest.raises(ValueError, match="lengths"):
        from_arrays(activity=np.zeros((2, 3, 1)), lengths=[3, 4])
    with pytest.raises(ValueError, match="inputs: shape"):
        from_arrays(activity=np.zeros((2, 3, 1)), inputs=np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match="feature counts"):
        from_arrays(activity=[np.zeros((2, 1)), np.zeros((2, 2))])
    with pytest.raises(ValueError, match="mask: trial"):
        validate(from_arrays(activity=np.zeros((2, 3, 1))).assign(mask=(("trial", "time"), np.zeros((2, 3), bool))))
    with pytest.raises(TypeError, match="xarray.Dataset"):
        validate(np.zeros(3))


def test_loss_weight_is_checked():
    ds = from_arrays(targets=np.zeros((2, 3, 1)), lengths=[3, 2])
    good = ds.assign(loss_weight=(("trial", "time"), np.array([[0, 1, 1], [1, 1, np.nan]], float)))
    assert validate(good) is good
    with pytest.raises(ValueError, match="loss_weight: expected finite non-negative"):
        validate(ds.assign(loss_weight=(("trial", "time"), -np.ones((2, 3)))))
    with pytest.raises(ValueError, match="loss_weight: expected dims"):
        validate(ds.assign(loss_weight=(("time", "trial"), np.ones((3, 2)))))


def test_from_arrays_refuses_non_numbers_and_bad_dt():
    with pytest.raises(TypeError, match=r"activity: trial 1: expected real numbers, got dtype <U1"):
        from_arrays(activity=[np.zeros((2, 1)), np.array([["a"]])])
    with pytest.raises(TypeError, match=r"inputs: trial 0: expected real numbers, got dtype complex"):
        from_arrays(inputs=[np.ones((2, 1)) * 1j])  # would silently drop the imaginary part
    with pytest.raises(TypeError, match="dt: expected a positive number of seconds, got str"):
        from_arrays(activity=np.zeros((2, 3, 1)), dt="0.1")
    with pytest.raises(ValueError, match=r"attrs\['dt'\]: expected a positive finite number"):
        from_arrays(activity=np.zeros((2, 3, 1)), dt=0.0)


@pytest.mark.parametrize("values, kind", [
    ([{"a": 1}, "b", "c"], "dict"), ([[1], "b", "c"], "list"), (["a", 1, "c"], "int"), (["a", b"b", "c"], "bytes"),
])
def test_validate_rejects_object_coords_netcdf_cannot_store(values, kind):
    ds = from_arrays(trial_coords={"x": [1, 2, 3]})
    bad = ds.assign_coords(block=("trial", np.array(values, dtype=object)))
    with pytest.raises(TypeError, match=rf"coordinate 'block': object dtype holding a {kind}"):
        validate(bad)
    with pytest.raises(TypeError, match=r"variable 'notes': object dtype"):
        validate(ds.assign(notes=("trial", np.array(values, dtype=object))))


def test_object_str_coords_are_accepted_and_round_trip(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"block": ["a", "b", "a"], "note": ["x", None, np.nan]})  # object columns
    ds = from_arrays(trial_coords={"x": [1, 2, 3]})
    ds = ds.assign_coords(block=("trial", frame["block"].to_numpy()), note=("trial", frame["note"].to_numpy()))
    assert ds["block"].dtype == object and validate(ds) is ds
    ds.to_netcdf(tmp_path / "o.nc")
    back = neuroalrnn.load(tmp_path / "o.nc")
    assert back["block"].values.tolist() == ["a", "b", "a"]
    assert back["note"].values.tolist() == ["x", "", ""]  # netCDF stores missing strings as ""


def test_is_missing_knows_every_missing_marker_in_object_arrays():
    import pandas as pd

    from neuroalrnn.schema import is_missing

    values = np.array(["a", "", None, np.nan, pd.NA, pd.NaT, np.datetime64("NaT"), 0, "x", [1]], dtype=object)
    assert is_missing(values).tolist() == [False, True, True, True, True, True, True, False, False, False]


def test_validate_is_linear_in_the_number_of_trial_coords():
    """A DataArray per lookup carries every coord: 5,000 trial coords took minutes (quadratic)."""
    import time

    ds = xr.Dataset(coords={"trial": np.arange(20), **{f"c{i}": ("trial", np.arange(20.0)) for i in range(5000)}})
    start = time.perf_counter()
    validate(ds)
    assert time.perf_counter() - start < 10  # linear: well under a second; the quadratic code needed > 30 s


def test_from_arrays_refuses_times_as_signals():
    """numpy counts timedelta64 as an integer type: durations passed as numbers of their unit."""
    durations = np.ones((2, 3, 1)).astype("m8[ms]")
    with pytest.raises(TypeError, match=r"activity: expected real numbers, got timedelta64\[ms\].*seconds"):
        from_arrays(activity=durations)
    with pytest.raises(TypeError, match=r"inputs: trial 0: expected real numbers, got timedelta64"):
        from_arrays(inputs=[durations[0]])
    bad_time = from_arrays(activity=np.ones((2, 3, 1))).assign_coords(time=np.arange(3).astype("m8[s]"))
    with pytest.raises(ValueError, match="time: expected seconds as numbers"):
        validate(bad_time)


def test_cf_units_on_variables():
    ds = from_arrays(activity=np.ones((2, 3, 1)), inputs=np.zeros((2, 3, 2)), dt=0.1, align_event="go",
                     units={"activity": "Hz", "inputs": "1"}, long_names={"activity": "firing rate"})
    assert ds["time"].attrs == {"units": "s", "standard_name": "time", "axis": "T", "long_name": "time from go"}
    assert ds["activity"].attrs == {"units": "Hz", "long_name": "firing rate"}
    assert ds["inputs"].attrs == {"units": "1", "long_name": "task inputs"}
    # the dataset-level attribute of earlier versions becomes the variable's units
    old = from_arrays(activity=np.ones((2, 3, 1)), attrs={"activity_units": "spikes/bin"})
    assert old["activity"].attrs["units"] == "count" and "activity_units" not in old.attrs
    assert from_arrays(activity=np.ones((1, 1, 1)), attrs={"activity_units": "uV"})["activity"].attrs["units"] == "uV"
    with pytest.raises(ValueError, match="units: 'targets' is not a signal of this dataset"):
        from_arrays(activity=np.ones((1, 1, 1)), units={"targets": "1"})
    with pytest.raises(TypeError, match=r"variable 'activity': attrs\['units'\] expected a string"):
        validate(ds.assign(activity=ds["activity"].assign_attrs(units=3)))


def test_cf_xarray_reads_the_units(tmp_path):
    cf_xarray = pytest.importorskip("cf_xarray")  # noqa: F841 - registers the .cf accessor
    ds = from_arrays(activity=np.ones((2, 3, 1)), dt=0.1, units={"activity": "Hz"})
    assert ds.cf.axes == {"T": ["time"]} and ds.cf.standard_names == {"time": ["time"]}
    assert ds.cf["T"].attrs["units"] == "s"
    ds.to_netcdf(tmp_path / "u.nc")
    back = neuroalrnn.load(tmp_path / "u.nc")
    assert back.cf["T"].dtype == float  # units 's' is not decoded into timedeltas
    assert back["activity"].attrs["units"] == "Hz"


def test_pint_xarray_quantifies_the_units():
    pytest.importorskip("pint_xarray")
    ds = from_arrays(activity=np.ones((2, 3, 1)), dt=0.1, units={"activity": "count"})
    quantified = ds.pint.quantify()
    assert str(quantified["activity"].data.units) == "count"
    assert str(quantified["time"].data.units) == "second"


def test_files_with_only_the_legacy_activity_units_attribute(tmp_path):
    old = from_arrays(activity=np.ones((2, 3, 1)), dt=0.1)
    old["activity"].attrs = {}  # as written before units were put on the variables
    old["time"].attrs = {}
    old.attrs["activity_units"] = "spikes/s"
    old.to_netcdf(tmp_path / "old.nc")
    back = neuroalrnn.load(tmp_path / "old.nc")
    assert back["activity"].attrs["units"] == "Hz" and back["activity"].attrs["long_name"] == "firing rate"
    assert "activity_units" not in back.attrs
    assert back["time"].attrs["units"] == "s"

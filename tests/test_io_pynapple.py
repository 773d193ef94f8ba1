"""pynapple interop: real TsGroup/TsdFrame/IntervalSet objects cut into trials and laid back."""

import sys

import numpy as np
import pytest
import xarray as xr

from neuroalrnn.io import from_pynapple, to_pynapple
from neuroalrnn.schema import from_arrays, validate

nap = pytest.importorskip("pynapple")


@pytest.fixture
def session():
    """Three units over 40 s, eight trials of 3-4 s with a stimulus 1 s after each start."""
    rng = np.random.default_rng(3)
    spikes = nap.TsGroup({u: nap.Ts(t=np.sort(rng.uniform(0, 40, 300 + 100 * u))) for u in (2, 5, 7)},
                         metadata={"location": ["CA1", "CA1", "PFC"]})
    start = 1.0 + 4.5 * np.arange(8)
    end = start + rng.uniform(3.0, 4.0, 8)
    trials = nap.IntervalSet(start=start, end=end, metadata={
        "stim": start + 1.0, "choice": rng.choice([-1, 1], 8), "context": rng.choice(["motion", "color"], 8)})
    return spikes, trials


def test_spike_trains_are_binned_per_trial(session):
    spikes, trials = session
    ds = from_pynapple(spikes, trials, align="stim", window=(-0.5, 2.0), bin_size=0.1)
    validate(ds)
    assert dict(ds.sizes) == {"trial": 8, "time": 25, "unit": 3}
    assert ds.attrs["align_event"] == "stim" and ds["activity"].attrs["units"] == "count"
    assert ds["unit"].values.tolist() == [2, 5, 7] and ds["location"].values.tolist() == ["CA1", "CA1", "PFC"]
    assert ds["context"].values.tolist() == trials.metadata["context"].tolist()
    np.testing.assert_array_equal(ds["start"].values, trials.start)
    # counts by hand, and bins past a trial's end are masked
    stim = trials.metadata["stim"].to_numpy()
    for i, (s, e) in enumerate(zip(stim, trials.end)):
        edges = s - 0.5 + 0.1 * np.arange(26)
        expect = np.histogram(spikes[7].t, edges)[0].astype(float)
        valid = edges[1:] <= e + 1e-9
        np.testing.assert_array_equal(ds["mask"].values[i], valid)
        np.testing.assert_array_equal(ds["activity"].sel(unit=7).values[i][valid], expect[valid])
    rates = from_pynapple(spikes, trials, align="stim", window=(-0.5, 2.0), bin_size=0.1, output="rates")
    np.testing.assert_allclose(rates["activity"].values, ds["activity"].values / 0.1)
    assert rates["activity"].attrs["units"] == "Hz"


def test_round_trip_of_a_tsgroup_and_an_intervalset(session):
    spikes, trials = session
    ds = from_pynapple(spikes, trials, align="stim", window=(-0.5, 2.0), bin_size=0.1)
    group, epochs = to_pynapple(ds, spikes=True)
    assert isinstance(group, nap.TsGroup) and isinstance(epochs, nap.IntervalSet)
    np.testing.assert_allclose(epochs.start, trials.start)
    np.testing.assert_allclose(epochs.end, trials.end)
    for column in ("stim", "choice", "context"):
        assert epochs.metadata[column].tolist() == trials.metadata[column].tolist()
    assert group.index.tolist() == [2, 5, 7] and group.metadata["location"].tolist() == ["CA1", "CA1", "PFC"]
    again = from_pynapple(group, epochs, align="stim", window=(-0.5, 2.0), bin_size=0.1)
    xr.testing.assert_identical(again, ds)
    # as a TsdFrame of counts at the bin centres, averaged back onto the same bins
    frame, epochs = to_pynapple(ds)
    assert isinstance(frame, nap.TsdFrame) and frame.columns.tolist() == [2, 5, 7]
    assert len(frame) == int(ds["mask"].sum())
    back = from_pynapple(frame, epochs, align="stim", window=(-0.5, 2.0), bin_size=0.1)
    np.testing.assert_allclose(back["activity"].values, ds["activity"].values)
    np.testing.assert_array_equal(back["mask"].values, ds["mask"].values)


def test_signals_default_to_their_sampling_and_the_interval_start():
    t = np.arange(0, 10, 0.05)
    frame = nap.TsdFrame(t=t, d=np.c_[np.sin(t), t], columns=["x", "clock"])
    trials = nap.IntervalSet(start=[1.0, 5.0], end=[2.0, 5.5])
    ds = from_pynapple(frame, trials, units="cm")
    assert ds.attrs["dt"] == pytest.approx(0.05) and ds.attrs["align_event"] == "start"
    assert ds["mask"].sum("time").values.tolist() == [20, 10]
    np.testing.assert_allclose(ds["activity"].sel(unit="clock").values[1, :10], 5.0 + 0.05 * np.arange(10))
    assert ds["activity"].attrs["units"] == "cm"
    tsd = from_pynapple(nap.Tsd(t=t, d=t), trials)
    np.testing.assert_allclose(tsd["activity"].values[:, :, 0], ds["activity"].sel(unit="clock").values)


def test_datasets_without_session_times_are_placed_one_after_another():
    ds = from_arrays(activity=[np.ones((3, 2)), 2 * np.ones((2, 2))], dt=0.5, trial_coords={"ctx": ["a", "b"]},
                     unit=[10, 11])
    frame, trials = to_pynapple(ds)
    np.testing.assert_allclose(frame.t, [0.25, 0.75, 1.25, 2.25, 2.75])
    np.testing.assert_allclose(trials.start, [0.0, 2.0])
    np.testing.assert_allclose(trials.end, [1.5, 3.0])
    with pytest.raises(ValueError, match="spikes=True needs whole non-negative counts"):
        to_pynapple(ds.assign(activity=ds["activity"] * 0.5), spikes=True)


def test_bad_input_is_named(session, monkeypatch):
    spikes, trials = session
    with pytest.raises(ValueError, match=r"align: 'go' is not a metadata column of epochs"):
        from_pynapple(spikes, trials, align="go", bin_size=0.1)
    with pytest.raises(ValueError, match="bin_size: needed to bin spike trains"):
        from_pynapple(spikes, trials)
    with pytest.raises(TypeError, match="epochs: expected a pynapple IntervalSet"):
        from_pynapple(spikes, [(0, 1)], bin_size=0.1)
    with pytest.raises(TypeError, match="data: expected a pynapple TsGroup, TsdFrame or Tsd"):
        from_pynapple(np.zeros(3), trials, bin_size=0.1)
    monkeypatch.setitem(sys.modules, "pynapple", None)
    with pytest.raises(ImportError, match=r"pip install neuroalrnn\[pynapple\]"):
        from_pynapple(spikes, trials, bin_size=0.1)

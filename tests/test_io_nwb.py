"""NWB reader: files written with pynwb itself, read back and checked by hand."""

from datetime import datetime, timezone

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import Position, SpatialSeries

import neuroalrnn
from neuroalrnn.io import read_nwb

STARTS = np.array([0.0, 2.0, 4.0, 6.0])
STOPS = np.array([1.5, 3.5, 5.2, 7.5])
STIM = STARTS + 0.5
SPIKES = {10: np.array([0.1, 0.6, 0.62, 0.95, 2.55, 2.9, 4.61, 6.1, 6.7, 7.2]),
          11: np.array([0.55, 2.45, 4.6, 4.65, 5.1, 6.52])}


def write_nwb(path, starts=STARTS, stops=STOPS, stim=STIM, spikes=SPIKES, speed_rate=100.0, n_speed=800,
              speed=None):
    nwb = NWBFile(session_description="test session", identifier="nwb-test",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc), session_id="s1")
    nwb.add_trial_column("stim_on_time", "stimulus onset (s)")
    nwb.add_trial_column("context", "attended feature")
    nwb.add_trial_column("coherence", "signed coherence")
    nwb.add_trial_column("correct", "rewarded")
    for i, (a, b, s) in enumerate(zip(starts, stops, stim)):
        nwb.add_trial(start_time=a, stop_time=b, stim_on_time=s, context=["motion", "color"][i % 2],
                      coherence=0.1 * (i - 1), correct=bool(i % 3))
    device = nwb.create_device("probe")
    groups = [nwb.create_electrode_group(f"shank{k}", description="shank", location=loc, device=device)
              for k, loc in enumerate(["FEF", "V4"])]
    nwb.add_unit_column("quality", "sorting label")
    for k, (uid, times) in enumerate(spikes.items()):
        nwb.add_unit(spike_times=times, electrode_group=groups[k % 2], quality=["good", "mua"][k % 2], id=uid)
    speed = np.arange(n_speed) / 100.0 if speed is None else speed
    nwb.add_acquisition(TimeSeries(name="running_speed", data=speed, unit="m/s",
                                   rate=speed_rate, starting_time=0.0))
    module = nwb.create_processing_module("behavior", "behaviour")
    pos = Position(name="Position")
    t = np.arange(80) / 10.0
    pos.add_spatial_series(SpatialSeries(name="eye", data=np.c_[t, -2 * t], reference_frame="screen",
                                         timestamps=t))
    module.add(pos)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def hand_counts(times, align, t0, n_bins, bin_size):
    edges = t0 + bin_size * np.arange(n_bins + 1)
    return np.array([np.histogram(times - a, edges)[0] for a in align], dtype=float)


def test_nwb_counts_coords_and_behaviour(tmp_path):
    path = write_nwb(tmp_path / "s.nwb")
    ds = neuroalrnn.load(path, align_event="stim_on_time", window=(-0.5, 1.0), bin_size=0.25)
    assert dict(ds.sizes) == {"trial": 4, "time": 6, "unit": 2, "behavior_channel": 3}
    np.testing.assert_allclose(ds["time"].values, [-0.5, -0.25, 0, 0.25, 0.5, 0.75])
    # trial 2 stops 0.7 s after its stimulus: bins ending after 0.7 s are masked
    assert ds["mask"].sum("time").values.tolist() == [6, 6, 4, 6]
    for uid, times in SPIKES.items():
        expect = hand_counts(times, STIM, -0.5, 6, 0.25)
        expect[2, 4:] = np.nan
        np.testing.assert_array_equal(ds["activity"].sel(unit=uid).values, expect)
    assert ds["context"].values.tolist() == ["motion", "color", "motion", "color"]
    assert ds["correct"].values.tolist() == [False, True, True, False]
    np.testing.assert_allclose(ds["coherence"].values, [-0.1, 0, 0.1, 0.2])
    assert ds["location"].values.tolist() == ["FEF", "V4"]
    assert ds["electrode_group"].values.tolist() == ["shank0", "shank1"]
    assert ds["quality"].values.tolist() == ["good", "mua"]
    assert ds.attrs["dt"] == 0.25 and ds.attrs["align_event"] == "stim_on_time"
    assert ds.attrs["session_id"] == "s1" and ds["activity"].attrs["units"] == "count"
    assert ds["time"].attrs["units"] == "s" and ds["time"].attrs["long_name"] == "time from stim_on_time"
    assert ds["stim_on_time"].attrs["units"] == "s"  # NWB times: seconds from the session start
    # running speed = t (100 Hz): the bin mean is the mean of the 25 samples inside the bin
    speed = ds["behavior"].sel(behavior_channel="running_speed").values
    edges = STIM[:, None] - 0.5 + 0.25 * np.arange(6)[None, :]
    np.testing.assert_allclose(speed[ds["mask"].values], (edges + 0.12)[ds["mask"].values])
    assert np.isnan(speed[2, 4:]).all()
    # eye position at 10 Hz: 2-3 samples per bin
    eye_y = ds["behavior"].sel(behavior_channel="eye_1").values
    t = np.arange(80) / 10.0
    for i, j in zip(*np.nonzero(ds["mask"].values)):
        inside = (t >= edges[i, j] - 1e-12) & (t < edges[i, j] + 0.25 - 1e-12)
        assert eye_y[i, j] == pytest.approx(-2 * t[inside].mean())


def test_nwb_defaults_rates_and_inputs(tmp_path):
    path = write_nwb(tmp_path / "s.nwb")
    ds = read_nwb(path, bin_size=0.5, output="rates", inputs=["running_speed"], behavior=[])
    # default: aligned on trial start, window up to the longest trial (1.5 s)
    assert ds.sizes["time"] == 3 and ds.attrs["align_event"] == "start_time"
    assert ds["mask"].sum("time").values.tolist() == [3, 3, 2, 3]
    expect = hand_counts(SPIKES[11], STARTS, 0.0, 3, 0.5) / 0.5
    expect[2, 2] = np.nan
    np.testing.assert_array_equal(ds["activity"].sel(unit=11).values, expect)
    assert ds["input"].values.tolist() == ["running_speed"] and "behavior" not in ds
    assert ds["activity"].attrs["units"] == "Hz" and ds["inputs"].attrs["units"] == "m/s"


def test_nwb_timeseries_as_activity(tmp_path):
    path = write_nwb(tmp_path / "s.nwb")
    ds = read_nwb(path, activity=["eye"], behavior=[], bin_size=0.5, window=(0, 1.0), stop_event=None)
    assert ds["unit"].values.tolist() == ["eye_0", "eye_1"]
    np.testing.assert_allclose(ds["activity"].values[1, :, 0], [2.2, 2.7])


def test_nwb_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"trials: trial 1 has stop_time 1\.0 s before its start_time 2\.0 s"):
        read_nwb(write_nwb(tmp_path / "a.nwb", stops=np.array([1.5, 1.0, 5.2, 7.5])))
    with pytest.raises(ValueError, match=r"stim_on_time: trial 3 at 30\.0 s lies outside the recording"):
        read_nwb(write_nwb(tmp_path / "b.nwb", stim=np.array([0.5, 2.5, 4.5, 30.0]),
                           stops=np.array([1.5, 3.5, 5.2, 31.0])), align_event="stim_on_time")
    bad = {**SPIKES, 11: np.array([0.5, 0.2, 0.9])}
    with pytest.raises(ValueError, match="units: unit 11 spike times are not sorted"):
        read_nwb(write_nwb(tmp_path / "c.nwb", spikes=bad))
    bad = {**SPIKES, 10: np.array([-0.5, 0.2, 0.9])}
    with pytest.raises(ValueError, match="units: unit 10 has a negative spike time"):
        read_nwb(write_nwb(tmp_path / "d.nwb", spikes=bad))
    path = write_nwb(tmp_path / "e.nwb", n_speed=300)  # speed ends at 3 s: later trials are not covered
    with pytest.raises(ValueError, match=r"running_speed: samples cover 0\.0 s to 2\.99 s, "
                                         r"but trial 1's window needs 2\.0 s to 3\.5 s"):
        read_nwb(path, bin_size=0.5)
    with pytest.raises(ValueError, match="'go_time': not a column of the trials table"):
        read_nwb(path, align_event="go_time")
    with pytest.raises(ValueError, match="no TimeSeries named 'lick'"):
        read_nwb(path, inputs=["lick"], behavior=[])
    with pytest.raises(ValueError, match=r"expected an NWB \(HDF5\) file, but the file is an NPZ"):
        np.savez(tmp_path / "x.npz", a=np.arange(2))
        read_nwb(tmp_path / "x.npz")


@pytest.mark.parametrize("field, kwargs", [
    ("stop_time", {"stops": np.array([1.5, np.nan, 5.2, np.nan])}),
    ("start_time", {"starts": np.array([0.0, 2.0, np.nan, 6.0])}),
])
def test_nwb_nan_trial_times_are_named(tmp_path, field, kwargs):
    """NaN start/stop times used to slip past the stop-before-start check (NaN < x is False)."""
    path = write_nwb(tmp_path / "nan.nwb", **kwargs)
    trials = r"\[1, 3\]" if field == "stop_time" else r"\[2\]"
    with pytest.raises(ValueError, match=rf"trials: {field} is NaN or inf for trial\(s\) {trials}"):
        read_nwb(path, bin_size=0.5)
    with pytest.raises(ValueError, match=rf"trials: {field} is NaN"):  # whatever the alignment
        read_nwb(path, bin_size=0.5, align_event="stim_on_time", window=(-0.5, 1.0))


def test_nwb_truncated(tmp_path):
    data = write_nwb(tmp_path / "full.nwb").read_bytes()
    (tmp_path / "cut.nwb").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"cut\.nwb: .*(truncated or corrupt)"):
        neuroalrnn.load(tmp_path / "cut.nwb")


def test_nwb_file_left_closed_and_unchanged(tmp_path):
    path = write_nwb(tmp_path / "s.nwb")
    before = path.read_bytes()
    ds = neuroalrnn.load(path, bin_size=0.5)
    assert path.read_bytes() == before
    path.unlink()  # nothing holds it open; the dataset lives in memory
    assert float(ds["activity"].sum()) > 0


@pytest.mark.filterwarnings("ignore:The file path provided")
def test_nwb_under_a_misleading_extension(tmp_path):
    path = write_nwb(tmp_path / "session.mat")
    assert neuroalrnn.io.sniff(path) == "nwb"
    ds = neuroalrnn.load(path, bin_size=0.5)
    assert ds.attrs["source_format"] == "NWB" and ds.sizes["unit"] == 2
    with pytest.raises(ValueError, match="format='mat' was asked for, but the file is an NWB"):
        neuroalrnn.load(path, format="mat")


def test_nwb_unit_locations_from_the_electrodes_table(tmp_path):
    nwb = NWBFile(session_description="e", identifier="e", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    nwb.add_trial(start_time=0.0, stop_time=1.0)
    nwb.add_trial(start_time=1.0, stop_time=2.0)
    group = nwb.create_electrode_group("shank0", description="d", location="HPC",
                                       device=nwb.create_device("probe"))
    for loc in ["CA1", "CA3", "DG"]:
        nwb.add_electrode(group=group, location=loc)
    nwb.add_unit(spike_times=[0.1, 0.5, 1.7], electrodes=[2], id=3)
    nwb.add_unit(spike_times=[0.2, 1.05], electrodes=[0, 1], id=4)
    with NWBHDF5IO(str(tmp_path / "e.nwb"), "w") as io:
        io.write(nwb)
    ds = read_nwb(tmp_path / "e.nwb", bin_size=0.5)
    assert ds["unit"].values.tolist() == [3, 4]
    assert ds["location"].values.tolist() == ["DG", "CA1"]
    assert ds["electrode_group"].values.tolist() == ["shank0", "shank0"]
    np.testing.assert_array_equal(ds["activity"].sel(unit=3).values, [[1, 1], [0, 1]])
    np.testing.assert_array_equal(ds["activity"].sel(unit=4).values, [[1, 0], [1, 0]])


def test_nwb_nan_samples_count_as_missing(tmp_path):
    # a dropout early in the session must not spread NaN into every later bin
    speed = np.arange(800) / 100.0
    speed[30:34] = np.nan  # 0.30-0.33 s, inside trial 0's first bin
    ds = read_nwb(write_nwb(tmp_path / "s.nwb", speed=speed), bin_size=0.5, inputs="running_speed",
                  behavior=[])
    got = ds["inputs"].sel(input="running_speed").values
    edges = STARTS[:, None] + 0.5 * np.arange(3)[None, :]
    expect = edges + 0.245  # mean of the 50 samples t, t + 0.01, ... in each bin
    expect[0, 0] = np.mean(np.r_[np.arange(30), np.arange(34, 50)] / 100.0)
    mask = ds["mask"].values
    np.testing.assert_allclose(got[mask], expect[mask])
    assert ds["input"].values.tolist() == ["running_speed"]  # one name, not its characters

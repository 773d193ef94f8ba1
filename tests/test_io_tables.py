"""Per-trial tables: DataFrame, CSV, NPZ."""

import numpy as np
import pandas as pd
import pytest

import neuroalrnn
from neuroalrnn.io import from_table, read_table


def test_ibl_acceptance(shared_data):
    path = shared_data / "ibl_swc054" / "SWC_054_trials.npz"
    ds = neuroalrnn.load(path)
    raw = np.load(path, allow_pickle=False)
    assert dict(ds.sizes) == {"trial": 7844}
    assert not ds.data_vars  # behaviour only
    for key in ("choice", "contrastLeft", "contrastRight", "probabilityLeft", "response_times",
                "feedbackType", "stimOn_times", "trial_in_session"):
        np.testing.assert_array_equal(ds[key].values, raw[key])
    assert ds["session"].values.tolist() == raw["session_date"].tolist()
    assert len(np.unique(ds["session"].values)) == 11
    assert {0.2, 0.5, 0.8} <= set(np.round(ds["probabilityLeft"].values, 6))  # the block context
    assert ds.attrs["source"] == "SWC_054_trials.npz"


def test_dataframe_and_csv_agree(tmp_path):
    df = pd.DataFrame({"choice": [1, -1, 1], "context": ["motion", "color", "motion"],
                       "correct": [True, False, True], "rt": [0.31, 0.52, np.nan]})
    a = from_table(df)
    df.to_csv(tmp_path / "t.csv", index=False)
    b = neuroalrnn.load(tmp_path / "t.csv")
    for key in df.columns:
        np.testing.assert_array_equal(a[key].values, b[key].values)
    assert b["correct"].dtype == bool and b["context"].values.tolist() == ["motion", "color", "motion"]
    assert df.shape == (3, 4)  # the user's table is untouched


def test_npz_pickle_is_refused(tmp_path):
    np.savez(tmp_path / "p.npz", choice=np.array([1, 2]), meta=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match=r"p\.npz: key 'meta' holds pickled Python objects; refused"):
        neuroalrnn.load(tmp_path / "p.npz")


def test_mismatched_column_lengths_name_the_column(tmp_path):
    np.savez(tmp_path / "m.npz", choice=np.array([1, 2, 3]), rt=np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"column 'rt': has 2 values, expected 3 \(the length of 'choice'\)"):
        neuroalrnn.load(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="column 'b': has 1 values"):
        from_table({"a": [1, 2], "b": [1]})


def test_empty_tables(tmp_path):
    (tmp_path / "h.csv").write_text("choice,rt\n")
    with pytest.raises(ValueError, match="has no rows"):
        neuroalrnn.load(tmp_path / "h.csv")
    np.savez(tmp_path / "e.npz")
    with pytest.raises(ValueError, match="holds no arrays"):
        neuroalrnn.load(tmp_path / "e.npz")


def test_object_column_is_refused():
    with pytest.raises(TypeError, match="column 'meta': holds Python objects"):
        from_table(pd.DataFrame({"a": [1, 2], "meta": [{"x": 1}, {"y": 2}]}))


def test_activity_dense_ragged_and_column(tmp_path, rng):
    dense = rng.normal(size=(3, 4, 2))
    np.savez(tmp_path / "d.npz", activity=dense, choice=np.array([0, 1, 1]), dt=np.array(0.05))
    ds = neuroalrnn.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds["activity"].values, dense)
    assert ds.attrs["dt"] == 0.05
    # ragged: trials stacked along time with their lengths
    trials = [rng.normal(size=(n, 2)) for n in (4, 2, 3)]
    np.savez(tmp_path / "r.npz", activity=np.concatenate(trials), activity_lengths=np.array([4, 2, 3]),
             choice=np.array([0, 1, 1]))
    ds = neuroalrnn.load(tmp_path / "r.npz", dt=0.01)
    assert ds["mask"].sum("time").values.tolist() == [4, 2, 3]
    np.testing.assert_array_equal(ds["activity"].values[2, :3], trials[2])
    # a DataFrame column of per-trial (time, unit) arrays
    df = pd.DataFrame({"choice": [0, 1, 1], "rates": trials})
    ds2 = from_table(df, activity="rates", dt=0.01)
    np.testing.assert_array_equal(ds2["activity"].values, ds["activity"].values)
    with pytest.raises(ValueError, match="dt: the time step"):
        from_table(df, activity="rates")
    with pytest.raises(TypeError, match=r"activity: trial 1: expected real numbers, got dtype <U1"):
        from_table(df.assign(rates=[trials[0], np.array([["a"]]), trials[2]]), activity="rates", dt=0.01)


def test_spike_times_are_binned(tmp_path):
    # two units, session times; three trials aligned on stim_on with a stop time
    u0 = np.array([0.05, 0.12, 1.02, 1.31, 2.5])
    u1 = np.array([1.15, 1.16, 2.0])
    table = {"stim_on": np.array([0.0, 1.0, 2.0]), "stop": np.array([0.4, 1.4, 2.25]),
             "choice": np.array([1, 0, 1])}
    ds = from_table(table, spikes=[u0, u1], align_event="stim_on", window=(0.0, 0.4), bin_size=0.1,
                    stop_event="stop")
    expect0 = [[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, np.nan, np.nan]]
    np.testing.assert_array_equal(ds["activity"].sel(unit=0).values, expect0)
    np.testing.assert_array_equal(ds["activity"].sel(unit=1).values[1], [0, 2, 0, 0])
    assert ds["mask"].sum("time").values.tolist() == [4, 4, 2]
    # IBL-style keys spike_times/spike_clusters in an NPZ give the same counts
    times = np.concatenate([u0, u1])
    clusters = np.r_[np.zeros(5, int), np.ones(3, int)]
    order = np.argsort(times)
    np.savez(tmp_path / "s.npz", spike_times=times[order], spike_clusters=clusters[order], **table)
    ds2 = neuroalrnn.load(tmp_path / "s.npz", align_event="stim_on", window=(0.0, 0.4), bin_size=0.1,
                          stop_event="stop")
    np.testing.assert_array_equal(ds2["activity"].values, ds["activity"].values)
    assert ds2["unit"].values.tolist() == [0, 1]


def test_per_trial_spike_lists():
    df = pd.DataFrame({"choice": [1, 0],
                       "spikes": [[np.array([-0.15, 0.05]), np.array([])],
                                  [np.array([0.11, 0.12]), np.array([-0.01])]]})
    ds = from_table(df, spikes="spikes", window=(-0.2, 0.2), bin_size=0.1)
    np.testing.assert_array_equal(ds["activity"].sel(unit=0).values, [[1, 0, 1, 0], [0, 0, 0, 2]])
    np.testing.assert_array_equal(ds["activity"].sel(unit=1).values, [[0, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_allclose(ds["time"].values, [-0.2, -0.1, 0.0, 0.1])


def test_bad_spikes_are_refused():
    table = {"stim_on": np.array([0.0, 1.0])}
    with pytest.raises(ValueError, match="not sorted"):
        from_table(table, spikes=[np.array([0.3, 0.1])], align_event="stim_on", window=(0, 0.5), bin_size=0.1)
    with pytest.raises(ValueError, match="negative spike time"):
        from_table(table, spikes=[np.array([-0.3, 0.1])], align_event="stim_on", window=(0, 0.5), bin_size=0.1)
    with pytest.raises(ValueError, match="align_event: expected a column"):
        from_table(table, spikes=[np.array([0.1])], align_event="go", window=(0, 0.5), bin_size=0.1)


def test_read_table_format_check(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="expected a CSV table, but the file is an NPZ"):
        read_table(tmp_path / "x.npz", format="csv")


def test_trial_column_becomes_labels():
    ds = from_table({"trial": np.array([5, 6, 9]), "choice": np.array([1, 0, 1])})
    assert ds["trial"].values.tolist() == [5, 6, 9]
    ds = from_table({"trial": np.array([1, 1, 2]), "choice": np.array([1, 0, 1])})
    assert ds["trial"].values.tolist() == [0, 1, 2] and ds["trial_label"].values.tolist() == [1, 1, 2]


def test_spike_binning_bad_stop_column():
    table = {"stim_on": np.array([0.0, 1.0]), "stop": np.array([0.05, 1.5])}
    kw = dict(spikes=[np.array([0.1, 1.2])], align_event="stim_on", window=(0.0, 0.5), bin_size=0.1)
    with pytest.raises(ValueError, match=r"stop_event: expected a column .*got 'end'"):
        from_table(table, stop_event="end", **kw)
    with pytest.raises(ValueError, match=r"stop_times: trial 0 ends before its first whole bin"):
        from_table(table, stop_event="stop", **kw)
    with pytest.raises(ValueError, match=r"stop_times: trial 0 stops at -1\.0 s, before its window starts"):
        from_table({**table, "stop": np.array([-1.0, 1.5])}, stop_event="stop", **kw)


def test_per_trial_spike_lists_edge_cases():
    # the spike column alone is a valid table; spikes outside the window are not counted,
    # whatever the sign of the window start
    df = pd.DataFrame({"spikes": [[np.array([-0.5, 0.05, 0.15, 0.45])], [np.array([0.12])]]})
    ds = from_table(df, spikes="spikes", window=(0.1, 0.4), bin_size=0.1)
    np.testing.assert_array_equal(ds["activity"].sel(unit=0).values, [[1, 0, 0], [1, 0, 0]])
    ds = from_table(df, spikes="spikes", window=(-0.2, 0.2), bin_size=0.1)
    np.testing.assert_array_equal(ds["activity"].sel(unit=0).values, [[0, 0, 1, 1], [0, 0, 0, 1]])
    with pytest.raises(ValueError, match=r"spikes: trial 1: spike_times\[0\] \(unit 0\): not sorted"):
        from_table(pd.DataFrame({"spikes": [[np.array([0.1])], [np.array([0.3, 0.2])]]}), spikes="spikes",
                   window=(0.0, 0.4), bin_size=0.1)
    with pytest.raises(ValueError, match="stop_event: not supported with per-trial spike lists"):
        from_table(df.assign(stop=[0.2, 0.3]), spikes="spikes", window=(0.0, 0.4), bin_size=0.1,
                   stop_event="stop")


def test_misnamed_columns_are_named(tmp_path):
    np.savez(tmp_path / "t.npz", choice=np.array([1, 0]), rates=np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match=r"t\.npz: activity: no column 'rate'; the columns are \['choice', 'rates'\]"):
        neuroalrnn.load(tmp_path / "t.npz", activity="rate", dt=0.1)
    with pytest.raises(ValueError, match=r"session: no column 'day'"):
        neuroalrnn.load(tmp_path / "t.npz", session="day")
    with pytest.raises(ValueError, match=r"rates: expected a \(trial, time, feature\) array"):
        from_table({"choice": np.array([1, 0]), "rates": np.zeros((2, 3))}, activity="rates", dt=0.1)

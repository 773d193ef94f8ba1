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
        neuroalrnn.load(tmp_path / "t.npz", activity="rates", dt=0.1, session="day")
    with pytest.raises(ValueError, match=r"t\.npz: column 'rates': shape \(2, 3, 1\) fits no rule .*activity=.*"
                                         r"exclude=\['rates'\]"):
        neuroalrnn.load(tmp_path / "t.npz")  # a 3-D array that is no named signal is refused, not a coord
    assert neuroalrnn.load(tmp_path / "t.npz", exclude=["rates"])["choice"].values.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"rates: expected a \(trial, time, feature\) array"):
        from_table({"choice": np.array([1, 0]), "rates": np.zeros((2, 3))}, activity="rates", dt=0.1)


def test_a_damaged_number_cell_names_column_row_and_value(tmp_path):
    """'0.4O' used to turn the whole rt column into strings."""
    (tmp_path / "t.csv").write_text("choice,rt,subject\n1,0.3,m1\n-1,0.4O,m1\n1,0.5,m2\n")
    with pytest.raises(ValueError, match=r"t\.csv: column 'rt', row 2 \(line 3 of the file\): '0\.4O' is not a "
                                         r"number, but 2 of the column's values are; .*dtype=\{'rt': str\}"):
        neuroalrnn.load(tmp_path / "t.csv")
    assert neuroalrnn.load(tmp_path / "t.csv", dtype={"rt": str})["rt"].values.tolist() == ["0.3", "0.4O", "0.5"]
    (tmp_path / "na.csv").write_text("choice,rt\n1,0.3\n-1,-\n1,0.5\n")  # a lab's own missing-value mark
    with pytest.raises(ValueError, match=r"column 'rt', row 2 .*'-' is not a number"):
        neuroalrnn.load(tmp_path / "na.csv")
    np.testing.assert_array_equal(neuroalrnn.load(tmp_path / "na.csv", na_values=["-"])["rt"].values,
                                  [0.3, np.nan, 0.5])


def test_repeated_column_names_are_refused(tmp_path):
    """pandas renamed the second 'rt' to 'rt.1' without a word."""
    (tmp_path / "d.csv").write_text("choice,rt,rt\n1,0.3,0.2\n-1,0.4,0.1\n")
    with pytest.raises(ValueError, match=r"d\.csv: column name 'rt' appears 2 times \(columns \[2, 3\]\)"):
        neuroalrnn.load(tmp_path / "d.csv")


def test_a_2d_activity_array_is_refused_not_made_a_trial_coord(tmp_path):
    np.savez(tmp_path / "a.npz", activity=np.ones((3, 5)), choice=np.array([1, 0, 1]))
    with pytest.raises(ValueError, match=r"a\.npz: activity: a 2-D array of shape \(3, 5\); expected \(trial, "
                                         r"time, feature\)\. Reshape it: x\[:, :, None\]"):
        neuroalrnn.load(tmp_path / "a.npz")
    with pytest.raises(ValueError, match=r"2-D activity is ambiguous"):
        from_table({"rates": np.ones((3, 5)), "choice": np.array([1, 0, 1])}, activity="rates", dt=0.1)


def test_a_latin1_csv_is_read_with_a_warning(tmp_path):
    (tmp_path / "l.csv").write_bytes("subject,rt\nJosé,0.3\nZoë,0.4\n".encode("latin-1"))
    with pytest.warns(UserWarning, match=r"l\.csv: not UTF-8 text; read it as Windows-1252"):
        ds = neuroalrnn.load(tmp_path / "l.csv")
    assert ds["subject"].values.tolist() == ["José", "Zoë"]
    assert neuroalrnn.load(tmp_path / "l.csv", encoding="latin-1")["subject"].values.tolist() == ["José", "Zoë"]
    with pytest.raises(ValueError, match=r"l\.csv: not utf-8 text"):
        neuroalrnn.load(tmp_path / "l.csv", encoding="utf-8")
    with pytest.raises(ValueError, match="encoding: 'klingon' is not a text encoding"):
        neuroalrnn.load(tmp_path / "l.csv", encoding="klingon")
    (tmp_path / "w.csv").write_bytes("choice,rt\n1,0.3\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"w\.csv: UTF-16 encoded text; save the table as UTF-8"):
        neuroalrnn.load(tmp_path / "w.csv")


def psytrack_like(n=20_000, days=37, seed=0):
    """A rat 2AFC export of the shape psychophysics fitting packages use (e.g. PsyTrack's sample rat)."""
    rng = np.random.default_rng(seed)
    least = n // (2 * days)
    day_length = rng.multinomial(n - days * least, np.ones(days) / days) + least
    s_a = rng.normal(size=(n, 2))
    s_b = np.vstack([np.zeros((1, 2)), s_a[:-1]])  # the previous trial's stimuli
    answer = np.where(s_a[:, 0] > s_a[:, 1], 1, 2)
    y = np.where(rng.random(n) < 0.8, answer, 3 - answer)
    return {"name": np.array("W065"), "y": y, "answer": answer, "correct": (y == answer).astype(int),
            "dayLength": day_length, "s_a": s_a, "s_b": s_b}


def test_a_lab_export_with_scalars_pairs_and_session_lengths(tmp_path):
    """Such a file used to be refused ('column name: a single value')."""
    raw = psytrack_like()
    np.savez(tmp_path / "rat.npz", **raw)
    ds = neuroalrnn.load(tmp_path / "rat.npz")
    assert dict(ds.sizes) == {"trial": 20_000} and ds.attrs["name"] == "W065"
    np.testing.assert_array_equal(ds["s_a_1"].values, raw["s_a"][:, 1])
    np.testing.assert_array_equal(ds["s_b_0"].values, raw["s_b"][:, 0])
    np.testing.assert_array_equal(ds["correct"].values, raw["correct"])
    # one session per day, as many trials as the day's count
    _, counts = np.unique(ds["session"].values, return_counts=True)
    np.testing.assert_array_equal(counts, raw["dayLength"])
    assert "dayLength" not in ds.coords
    # the stimulus pairs as a one-step input variable, when asked
    steps = neuroalrnn.load(tmp_path / "rat.npz", inputs=["s_a", "s_b"], dt=1.0)
    assert dict(steps.sizes) == {"trial": 20_000, "time": 1, "input": 4}
    assert steps["input"].values.tolist() == ["s_a_0", "s_a_1", "s_b_0", "s_b_1"]
    np.testing.assert_array_equal(steps["inputs"].values[:, 0, 2:], raw["s_b"])


def test_what_fits_no_rule_is_named_with_the_way_out(tmp_path):
    raw = dict(psytrack_like(n=50, days=2), weights=np.zeros((3, 4)), notes=np.arange(7))
    np.savez(tmp_path / "x.npz", **raw)
    with pytest.raises(ValueError, match=r"x\.npz: column 'weights': shape \(3, 4\) fits no rule for 50 "
                                         r"trials.*exclude=\['weights'\] \(columns=\[\.\.\.\] keeps"):
        neuroalrnn.load(tmp_path / "x.npz", exclude=["notes"])
    with pytest.raises(ValueError, match=r"column 'notes': has 7 values, expected 50 .*exclude=\['notes'\]"):
        neuroalrnn.load(tmp_path / "x.npz", exclude=["weights"])
    ds = neuroalrnn.load(tmp_path / "x.npz", exclude=["weights", "notes"])
    assert ds.sizes["trial"] == 50
    ds = neuroalrnn.load(tmp_path / "x.npz", columns=["y", "dayLength"])
    assert sorted(ds.coords) == ["session", "trial", "y"]
    with pytest.raises(ValueError, match=r"exclude: no column 'wieghts'"):
        neuroalrnn.load(tmp_path / "x.npz", exclude=["wieghts"])
    with pytest.raises(TypeError, match="columns: expected a list of column names, got the string"):
        neuroalrnn.load(tmp_path / "x.npz", columns="y")
    np.savez(tmp_path / "c.npz", y=np.arange(3), z=np.ones(3) * 1j, source=np.array("lab"))
    with pytest.raises(TypeError, match=r"column 'z': complex values"):
        neuroalrnn.load(tmp_path / "c.npz", exclude=["source"])
    with pytest.raises(ValueError, match=r"column 'source': a single value whose name is one of the dataset's"):
        neuroalrnn.load(tmp_path / "c.npz", exclude=["z"])
    ds = from_table({"choice": [1, -1], "subject": "rat1", "age_days": 90, "trained": np.bool_(True)})
    assert ds.attrs["subject"] == "rat1" and ds.attrs["age_days"] == 90 and ds.attrs["trained"] == 1


def test_ibl_trials_object_with_intervals_and_a_scalar(shared_data, tmp_path):
    """ONE's trials object: (n, 2) `intervals` next to the per-trial vectors of the real SWC_054 table."""
    raw = dict(np.load(shared_data / "ibl_swc054" / "SWC_054_trials.npz", allow_pickle=False))
    n = len(raw["choice"])
    starts = raw["stimOn_times"] - 0.5
    raw.update(intervals=np.c_[starts, starts + 2.0], subject=np.array("SWC_054"))
    np.savez(tmp_path / "ibl.npz", **raw)
    ds = neuroalrnn.load(tmp_path / "ibl.npz")
    assert ds.sizes["trial"] == n and ds.attrs["subject"] == "SWC_054"
    np.testing.assert_array_equal(ds["intervals_0"].values, starts)  # ibllib's own to_df naming
    np.testing.assert_array_equal(ds["intervals_1"].values, starts + 2.0)
    assert len(np.unique(ds["session"].values)) == 11  # from session_date

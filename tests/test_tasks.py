"""Tests of neuroalrnn.tasks: stimulus selection, ideal observer, memory tasks."""

import numpy as np
import pytest
from scipy.stats import norm

from neuroalrnn import schema
from neuroalrnn.tasks import (addition, choice_accuracy, copy_task, delayed_match, flipflop, ideal_observer,
                              multitask, stimulus_selection)


def test_stimulus_selection_layout_and_labels():
    ds = stimulus_selection(200, seed=3)
    schema.validate(ds)
    assert ds["input"].values.tolist() == ["fixation", "ctx_motion", "ctx_color", "motion", "color"]
    x = ds["inputs"].values
    ctx = ds["context"].values
    # the cue matches the context; the correct choice is the sign of the cued stream
    cue = x[:, :, 1:3].sum(1)
    assert np.all((cue[:, 0] > 0) == (ctx == "motion")) and np.all((cue[:, 1] > 0) == (ctx == "color"))
    rel = np.where(ctx == "motion", ds["coh_motion"], ds["coh_color"])
    np.testing.assert_array_equal(ds["correct_choice"], np.sign(rel))
    np.testing.assert_array_equal(ds["congruent"], np.sign(ds["coh_motion"]) == np.sign(ds["coh_color"]))
    # go cue: fixation turns off exactly at response onset, where the target is the choice
    t = ds["time"].values
    resp = t[None, :] >= ds["response_onset"].values[:, None] - 1e-9
    np.testing.assert_array_equal(x[:, :, 0] == 0, resp)
    np.testing.assert_array_equal(ds["targets"].values[:, :, 0], np.where(resp, ds["correct_choice"].values[:, None], 0))
    np.testing.assert_array_equal(ds["loss_weight"].values, resp.astype(float))
    # streams: zero outside the stimulus epoch, mean = coherence inside (noise 1, 20 steps, 200 trials)
    stim = (t[None] >= ds["stim_onset"].values[:, None] - 1e-9) & (t[None] < ds["stim_offset"].values[:, None] - 1e-9)
    assert np.all(x[~stim][:, 3:] == 0)
    resid = x[:, :, 3][stim] - np.repeat(ds["coh_motion"].values, stim.sum(1))
    assert abs(resid.mean()) < 0.05 and abs(resid.std() - 1) < 0.05


def test_stimulus_selection_seed_and_jitter():
    a, b = stimulus_selection(20, seed=1), stimulus_selection(20, seed=1)
    assert a.identical(b)
    assert not a["inputs"].equals(stimulus_selection(20, seed=2)["inputs"])
    ds = stimulus_selection(30, timing={"delay": (0.0, 0.5), "stimulus": (0.5, 1.0)}, seed=0)
    lengths = schema.trial_lengths(ds).values
    assert len(np.unique(lengths)) > 1
    assert np.isnan(ds["inputs"].values[~ds["mask"].values]).all()
    np.testing.assert_allclose(ds["response_onset"] + 0.25, lengths * 0.05)


def test_ideal_observer_matches_theory():
    ds = stimulus_selection(6000, seed=0)
    io = ideal_observer(ds)
    # sum of 20 steps of coherence c + N(0,1): P(correct) = Phi(c sqrt(20))
    expected = norm.cdf(np.array([0.05, 0.15, 0.5]) * np.sqrt(20)).mean()
    assert abs(float(io["overall"]) - expected) < 0.015
    assert abs(expected - 0.775) < 0.01
    np.testing.assert_allclose(io["accuracy"].mean("ctx"), norm.cdf(io["coherence"] * np.sqrt(20)), atol=0.03)
    perfect = choice_accuracy(ds, ds["correct_choice"].values)
    assert float(perfect["overall"]) == 1.0 and float(perfect["incongruent_accuracy"]) == 1.0


def test_stimulus_selection_bad_input():
    with pytest.raises(ValueError, match="n_trials"):
        stimulus_selection(0)
    with pytest.raises(ValueError, match="timing"):
        stimulus_selection(5, timing={"stim": 1.0})
    with pytest.raises(ValueError, match="coherences"):
        stimulus_selection(5, coherences=[-0.1])
    with pytest.raises(ValueError, match="cue_until"):
        stimulus_selection(5, cue_until="never")
    with pytest.raises(ValueError, match="choice"):
        choice_accuracy(stimulus_selection(5, seed=0), [1, -1])


def test_addition():
    ds = addition(500, T=100, seed=0)
    x, y = ds["inputs"].values, ds["targets"].values
    assert np.all(x[:, :, 1].sum(1) == 2)
    assert np.all(x[:, :50, 1].sum(1) == 1)
    np.testing.assert_allclose(y[:, -1, 0], (x[:, :, 0] * x[:, :, 1]).sum(1))
    baseline = np.mean((y[:, -1, 0] - 1.0) ** 2)
    assert abs(baseline - 1 / 6) < 0.03
    assert addition(2, T=1000, seed=0).sizes["time"] == 1000


def test_copy_flipflop_dms():
    ds = copy_task(10, n_symbols=3, seq_len=4, delay=(2, 6), seed=0)
    for i in range(10):
        L = int(ds["mask"][i].sum())
        x, y = ds["inputs"].values[i, :L], ds["targets"].values[i, :L]
        np.testing.assert_array_equal(x[:4, :3], y[-4:])
        np.testing.assert_array_equal(x[:4, :3].argmax(1), ds["sequence"].values[i])
        assert x[L - 5, 3] == 1
    ff = flipflop(5, n_bits=2, T=200, p_flip=0.1, seed=0)
    x, y = ff["inputs"].values, ff["targets"].values
    for t in range(1, 200):
        np.testing.assert_array_equal(y[:, t], np.where(x[:, t] != 0, x[:, t], y[:, t - 1]))
    dms = delayed_match(50, seed=0)
    np.testing.assert_array_equal(dms["match"], dms["sample"] == dms["test"])
    assert 0.2 < dms["match"].mean() < 0.8


def test_multitask():
    kw = {"addition": {"T": 30}, "flipflop": {"T": 25}}
    ds = multitask(40, task_kwargs=kw, seed=1)
    schema.validate(ds)
    rules = ds["inputs"].sel(input=[f"rule_{t}" for t in ds.attrs["tasks"]]).values
    onehot = np.nansum(rules, axis=2)
    assert np.all(onehot[ds["mask"].values] == 1)
    for i, task in enumerate(ds["task"].values):
        w = ds["loss_weight"].values[i]
        own = np.array([o.startswith(task + ":") for o in ds["output"].values])
        assert np.nansum(w[:, ~own]) == 0 and np.nansum(w[:, own]) > 0
    assert multitask(40, task_kwargs=kw, seed=1).identical(ds)
    with pytest.raises(ValueError, match="tasks"):
        multitask(5, tasks=["nope"])
    with pytest.raises(ValueError, match="same dt"):
        multitask(5, tasks=["addition", "flipflop"], task_kwargs={"addition": {"T": 10, "dt": 0.5}})


def test_ideal_observer_on_a_recording_with_its_own_choice_coords():
    from neuroalrnn.sample import load_sample
    from neuroalrnn.tasks.stimulus_selection import ideal_observer

    ds = load_sample()
    result = ideal_observer(ds)
    assert 0.6 < float(result["overall"]) < 0.8
    assert result["choice"].dims == ("trial",)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dt": "x"}, TypeError, "dt: expected a positive number of seconds, got str"),
    ({"dt": None}, TypeError, "dt: expected a positive number"),
    ({"dt": True}, TypeError, "dt: expected a positive number"),
    ({"dt": 0.0}, ValueError, "dt: expected a positive number"),
    ({"noise": "x"}, TypeError, "noise: expected a non-negative number"),
    ({"fixation_weight": "x"}, TypeError, "fixation_weight: expected a non-negative number"),
    ({"fixation_weight": float("nan")}, ValueError, "fixation_weight: expected a non-negative number"),
    ({"coherences": "x"}, TypeError, "coherences: expected a non-empty list of non-negative numbers"),
    ({"coherences": [0.1, "a"]}, TypeError, "coherences: expected a non-empty list"),
    ({"coherences": []}, ValueError, "coherences: expected a non-empty list"),
    ({"timing": "x"}, TypeError, "timing: expected a mapping"),
    ({"timing": {"cue": "x"}}, TypeError, r"timing\['cue'\]: expected seconds or a \(low, high\) pair"),
    ({"timing": {"cue": None}}, TypeError, r"timing\['cue'\]: expected seconds"),
])
def test_stimulus_selection_names_bad_numbers(kwargs, error, message):
    with pytest.raises(error, match=message):
        stimulus_selection(4, seed=0, **kwargs)

"""Tests for neuroalrnn.analysis.behavior: psychometric curves and fits."""

import numpy as np
import pytest
import xarray as xr

from neuroalrnn.analysis import behavior as beh
from neuroalrnn.schema import from_arrays


def simulated(n=8000, bias=(0.1, -0.2), slope=(8.0, 6.0), lapse=(0.05, 0.1), kind="logistic", seed=0):
    rng = np.random.default_rng(seed)
    levels = np.array([-1, -0.5, -0.25, -0.1, 0, 0.1, 0.25, 0.5, 1.0])
    x = rng.choice(levels, n)
    ctx = rng.integers(2, size=n)
    p = beh.psychometric_function(x, np.take(bias, ctx), np.take(slope, ctx), lapse[0], lapse[1], kind=kind)
    choice = np.where(rng.uniform(size=n) < p, 1, -1)
    choice[rng.uniform(size=n) < 0.05] = 0  # no-go trials, excluded
    return from_arrays(trial_coords={"s": x, "choice": choice, "context": np.array(["A", "B"])[ctx]})


@pytest.mark.parametrize("kind", ["logistic", "erf"])
def test_fit_recovers_planted_parameters(kind):
    ds = simulated(kind=kind)
    fit = beh.fit_psychometric(ds, "s", kind=kind, seed=0)
    assert fit["context"].values.tolist() == ["A", "B"] and fit["success"].all()
    np.testing.assert_allclose(fit["bias"], [0.1, -0.2], atol=0.04)
    np.testing.assert_allclose(fit["slope"], [8.0, 6.0], rtol=0.25)
    np.testing.assert_allclose(fit["lapse_low"], 0.05, atol=0.03)
    np.testing.assert_allclose(fit["lapse_high"], 0.1, atol=0.04)
    again = beh.fit_psychometric(ds, "s", kind=kind, seed=0)
    np.testing.assert_array_equal(again["bias"].values, fit["bias"].values)


def test_psychometric_counts_and_sem_by_hand():
    ds = from_arrays(trial_coords={"s": [-1, -1, -1, 1, 1, 1, 1], "choice": [1, -1, 0, 1, 1, -1, 1],
                                   "context": ["a"] * 7})
    cur = beh.psychometric(ds, "s")
    assert cur["p"].dims == ("context", "s")
    np.testing.assert_allclose(cur["p"].values, [[0.5, 0.75]])  # the 0 (no-go) is excluded
    np.testing.assert_array_equal(cur["n"].values, [[2, 4]])
    np.testing.assert_allclose(cur["sem"].values, [[np.sqrt(0.25 / 2), np.sqrt(0.75 * 0.25 / 4)]])
    flipped = beh.psychometric(ds, "s", positive=-1)
    np.testing.assert_allclose(flipped["p"].values, 1 - cur["p"].values)


def test_model_choices_on_the_stimulus_selection_task():
    from neuroalrnn.tasks import stimulus_selection

    ds = stimulus_selection(1500, seed=0)
    rng = np.random.default_rng(1)
    relevant = np.where(ds["context"].values == "motion", ds["coh_motion"].values, ds["coh_color"].values)
    choice = np.where(relevant * 6 + rng.normal(size=1500) > 0, 1, -1)  # an agent that selects by context
    ds = ds.assign_coords(choice=("trial", choice))
    fit = beh.fit_psychometric(ds, "coh_motion", lapses=False)
    assert float(fit["slope"].sel(context="motion")) > 4 * float(fit["slope"].sel(context="color"))
    cur = beh.psychometric(ds, "coh_color")
    assert cur.sizes["coh_color"] == 6 and set(cur["context"].values) == {"color", "motion"}


def test_ibl_bias_shifts_with_block_prior(shared_data):
    d = np.load(shared_data / "ibl_swc054" / "SWC_054_trials.npz", allow_pickle=False)
    biased = d["task_protocol"] == "biased"
    p_left = np.round(d["probabilityLeft"], 2)
    keep = biased & np.isin(p_left, [0.2, 0.8])
    ds = from_arrays(trial_coords={
        "signed_contrast": beh.signed_contrast(d["contrastLeft"], d["contrastRight"])[keep],
        "choice": d["choice"][keep], "probabilityLeft": p_left[keep]})
    # IBL: choice -1 is the response to a right-side stimulus ("rightward")
    cur = beh.psychometric(ds, "signed_contrast", by="probabilityLeft", positive=-1)
    assert np.all(np.diff(cur["p"].values, axis=1)[:, [0, -1]] > 0)  # increasing with right contrast
    fit = beh.fit_psychometric(ds, "signed_contrast", by="probabilityLeft", positive=-1, kind="erf", seed=0)
    b = fit["bias"].sel(probabilityLeft=[0.2, 0.8]).values
    # left-biased blocks (p_left = 0.8) need more rightward contrast for 50 % rightward choices
    assert b[1] - b[0] > 0.05, b
    p0 = cur["p"].sel(signed_contrast=0.0).values
    assert p0[0] > p0[1] + 0.15  # at zero contrast: more rightward choices in the right-biased block


def test_bad_input():
    ds = simulated(n=200)
    with pytest.raises(ValueError, match="'nope'"):
        beh.psychometric(ds, "nope")
    with pytest.raises(ValueError, match="positive"):
        beh.psychometric(ds, "s", positive=7)
    with pytest.raises(ValueError, match="kind"):
        beh.fit_psychometric(ds, "s", kind="weibull")
    one = ds.assign_coords(s=("trial", np.zeros(200)))
    with pytest.raises(ValueError, match="fewer than 2 stimulus levels"):
        beh.fit_psychometric(one, "s")
    with pytest.raises(TypeError, match="ds"):
        beh.psychometric({"s": [1]}, "s")
    with pytest.raises(ValueError, match="contrast"):
        beh.signed_contrast([0.1, 0.2], [0.1])


@pytest.mark.parametrize("missing", [np.nan, None, ""])
def test_missing_by_values_form_no_group(missing):
    """Trials with a missing grouping value are left out, not fitted as a 'nan' group."""
    ds = simulated(n=3000, seed=1)
    ctx = ds["context"].values.astype(object)
    ctx[::7] = missing
    holed = ds.assign_coords(context=("trial", ctx))
    kept = ds.isel(trial=np.flatnonzero(np.arange(ds.sizes["trial"]) % 7 != 0))
    fit, want = beh.fit_psychometric(holed, "s", seed=0), beh.fit_psychometric(kept, "s", seed=0)
    assert fit["context"].values.tolist() == ["A", "B"]
    np.testing.assert_array_equal(fit["n"].values, want["n"].values)
    np.testing.assert_allclose(fit["bias"].values, want["bias"].values)
    cur = beh.psychometric(holed, "s")
    assert cur["context"].values.tolist() == ["A", "B"]
    np.testing.assert_array_equal(cur["n"].values, beh.psychometric(kept, "s")["n"].values)
    numeric = ds.assign_coords(block=("trial", np.where(np.arange(ds.sizes["trial"]) % 5, 0.8, np.nan)))
    assert beh.fit_psychometric(numeric, "s", by="block")["block"].values.tolist() == [0.8]

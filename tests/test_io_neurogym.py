"""neurogym adapter: trial boundaries and trial info survive."""

import types

import numpy as np
import pytest

from neuroalrnn.io import from_neurogym


class FakeTrialEnv:
    """Mimics neurogym 2.x TrialEnv's trial interface (ob, gt, trial, start_t/end_t, dt in ms)."""

    def __init__(self, dt=100):
        self.dt = dt
        self.observation_space = types.SimpleNamespace(name={"fixation": 0, "stimulus": [1, 2]})
        self.action_space = types.SimpleNamespace(n=3, name={"fixation": 0, "choice": [1, 2]})
        self.seed(None)

    def seed(self, seed=None):
        self.rng = np.random.RandomState(seed)

    def new_trial(self):
        n_fix, n_stim = 2, int(self.rng.choice([3, 5]))
        T = n_fix + n_stim + 1
        gt_choice = int(self.rng.choice([1, 2]))
        coh = float(self.rng.choice([0.1, 0.5]))
        ob = np.zeros((T, 3))
        ob[: T - 1, 0] = 1
        ob[n_fix: n_fix + n_stim, gt_choice] = coh
        gt = np.zeros(T, dtype=int)
        gt[-1] = gt_choice
        self.ob, self.gt = ob, gt
        self.start_t = {"fixation": 0, "stimulus": n_fix * self.dt, "decision": (T - 1) * self.dt}
        self.end_t = {"fixation": n_fix * self.dt, "stimulus": (T - 1) * self.dt, "decision": T * self.dt}
        self.trial = {"ground_truth": gt_choice, "coh": coh, "context": "motion", "pair": (gt_choice, 3)}
        return self.trial


def test_fake_env_trials_kept_apart():
    env = FakeTrialEnv(dt=100)
    ds = from_neurogym(env, n_trials=20, seed=3)
    lengths = ds["mask"].sum("time").values
    assert set(lengths) <= {6, 8} and len(set(lengths)) == 2  # ragged trials -> mask
    assert ds.attrs["dt"] == pytest.approx(0.1)
    assert ds["input"].values.tolist() == ["fixation", "stimulus_0", "stimulus_1"]
    assert ds["output"].values.tolist() == ["fixation", "choice_0", "choice_1"]
    # the one-hot target at the last valid step is the trial's ground truth
    for i in range(20):
        last = ds["targets"].values[i, lengths[i] - 1]
        assert last.tolist() == np.eye(3)[ds["ground_truth"].values[i]].tolist()
        assert np.isnan(ds["inputs"].values[i, lengths[i]:]).all()
    np.testing.assert_allclose(ds["stimulus_start"].values, 0.2)
    np.testing.assert_allclose(ds["decision_end"].values, lengths * 0.1)
    assert ds["pair_0"].values.tolist() == ds["ground_truth"].values.tolist()
    assert ds["context"].values.tolist() == ["motion"] * 20
    # same seed, same trials; index targets as given
    again = from_neurogym(FakeTrialEnv(dt=100), n_trials=20, seed=3, targets="index")
    assert again["coh"].values.tolist() == ds["coh"].values.tolist()
    assert again["targets"].sizes["output"] == 1
    np.testing.assert_array_equal(np.nanargmax(ds["targets"].fillna(-1).values, axis=2)[ds["mask"].values],
                                  again["targets"].values[..., 0][ds["mask"].values])


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_trials: expected a positive integer"):
        from_neurogym(FakeTrialEnv(), n_trials=0)
    with pytest.raises(ValueError, match="targets: expected 'onehot' or 'index'"):
        from_neurogym(FakeTrialEnv(), n_trials=2, targets="soft")
    with pytest.raises(TypeError, match="env: expected a neurogym TrialEnv"):
        from_neurogym(object(), n_trials=2)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_real_neurogym_env():
    ngym = pytest.importorskip("neurogym", reason="neurogym (optional extra) is not installed")
    env = ngym.make("PerceptualDecisionMaking-v0", dt=20)
    ds = from_neurogym(env, n_trials=30, seed=0)
    assert ds.sizes["trial"] == 30
    assert ds.attrs["dt"] == pytest.approx(0.02)
    assert "ground_truth" in ds.coords and "coh" in ds.coords
    lengths = ds["mask"].sum("time").values
    last = ds["targets"].values[np.arange(30), lengths - 1].argmax(axis=1)
    assert (last == ds["ground_truth"].values + 1).all() or (last == ds["ground_truth"].values).all()
    again = from_neurogym(ngym.make("PerceptualDecisionMaking-v0", dt=20), n_trials=30, seed=0)
    np.testing.assert_array_equal(again["inputs"].values, ds["inputs"].values)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_real_context_dm_is_ragged_with_context():
    ngym = pytest.importorskip("neurogym", reason="neurogym (optional extra) is not installed")
    ds = from_neurogym(ngym.make("ContextDecisionMaking-v0", dt=100), n_trials=40, seed=1)
    lengths = ds["mask"].sum("time").values
    assert len(set(lengths)) > 1  # variable delays: trials kept apart, padded, masked
    np.testing.assert_allclose(ds["decision_end"].values, lengths * 0.1)
    assert {"context", "coh_1", "coh_2", "ground_truth"} <= set(ds.coords)
    assert np.isnan(ds["inputs"].values[~ds["mask"].values]).all()

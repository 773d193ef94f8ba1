"""Checks of the comparison behind benchmarks/acceptance_recordings.py (the sample's ground truth)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from neuroalrnn.analysis.dsr import n_step_prediction_error

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "acceptance_recordings.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("acceptance_recordings", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_origin_errors_match_n_step_prediction_error(bench):
    # a predictor that knows a trajectory per trial, reached through n_step_prediction_error's own
    # origins (channel 0 encodes (trial, t)), must score exactly as origin_errors does
    rng = np.random.default_rng(0)
    lengths, n = [30, 24, 41], 5
    x = np.full((3, 41, 3), np.nan)
    traj = np.full_like(x, np.nan)
    for i, L in enumerate(lengths):
        x[i, :L, 1:] = rng.normal(size=(L, 2))
        x[i, :L, 0] = 1000 * i + np.arange(L)
        traj[i, :L] = x[i, :L] + rng.normal(size=(L, 3)) * 0.3
        traj[i, :L, 0] = x[i, :L, 0]

    def predictor(x0, k, inputs):
        i, t = (x0[:, 0] // 1000).astype(int), (x0[:, 0] % 1000).astype(int)
        return np.stack([traj[a, b + 1:b + k + 1] for a, b in zip(i, t)])

    expected = n_step_prediction_error(predictor, x, n=n, per_step=True)
    np.testing.assert_allclose(bench.origin_errors(traj, x, n), expected, rtol=1e-12)


def test_ground_truth_prediction_is_its_rollout_and_beats_the_mean(bench):
    d = bench.prepare_sample(sigma=0.1, seed=0)
    tr, va, te = d["index"]
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(va) + len(te) == d["ds"].sizes["trial"]
    # training statistics: the training trials are z-scored, the test trials are not exactly
    rows = d["train"]["activity"].values[d["train"]["mask"].values]
    np.testing.assert_allclose(rows.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(rows.std(0), 1, atol=1e-9)
    # running the ground truth from its true latent state with the inputs reproduces the saved path
    inputs = np.nan_to_num(d["ds"]["inputs"].values)
    assert bench.check_truth_rollout(d["model"], d["latent"], inputs, 20, trials=te[:3]) < 1e-5
    # its expected counts are the Poisson floor: well below the training mean's error
    x = d["test"]["activity"].values
    gt = bench.origin_errors(d["truth"]["activity"].values[te], x, 20)[-1]
    mean = bench.origin_errors(np.zeros_like(x), x, 20)[-1]
    assert gt < 0.6 * mean

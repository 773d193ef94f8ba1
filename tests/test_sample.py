import numpy as np
import torch

import neuroalrnn
from neuroalrnn.sample import load_ground_truth, load_sample


def test_sample_recording_layout():
    ds = load_sample()
    neuroalrnn.validate(ds)
    assert ds.sizes["unit"] == 60 and ds.sizes["trial"] == 240
    assert set(np.unique(ds["session"].values)) == {"session1", "session2", "session3"}
    assert set(np.unique(ds["context"].values)) == {"motion", "color"}
    lengths = ds["mask"].sum("time").values
    assert lengths.min() < lengths.max()  # ragged trials
    counts = ds["activity"].values[ds["mask"].values]
    np.testing.assert_array_equal(counts, np.round(counts))  # Poisson counts
    assert (counts >= 0).all()
    assert {"choice", "correct", "rt"} <= set(ds.coords)
    assert (ds["rt"].values > 0).all()


def test_ground_truth_network_generated_the_recording():
    ds = load_sample()
    model, obs = load_ground_truth()
    inputs = torch.as_tensor(np.nan_to_num(ds["inputs"].values), dtype=torch.float32)
    with torch.no_grad():
        states, _ = model(inputs)
    mask = ds["mask"].values
    np.testing.assert_allclose(states.numpy()[mask], obs["latent"][mask], rtol=1e-4, atol=1e-4)
    # the observation model explains the counts: mean count per unit matches the mean predicted rate
    rates = np.exp(obs["offset"] + obs["latent"][mask] @ obs["gain"].T) * ds.attrs["dt"]
    observed = ds["activity"].values[mask]
    np.testing.assert_allclose(observed.mean(0), rates.mean(0), rtol=0.25, atol=0.02)
    # and the network performs the task well above chance, as the recording's choices show
    assert ds["correct"].mean() > 0.65


def test_sample_lfp():
    from neuroalrnn.preprocess import band_power

    lfp = load_sample("lfp")
    neuroalrnn.validate(lfp)
    assert lfp.attrs["dt"] == 1 / 500 and lfp.sizes["unit"] == 1
    # one LFP trial per recorded trial, covering the same span (25 samples per 50 ms bin)
    rec = load_sample()
    np.testing.assert_array_equal(lfp["trial"].values, rec["trial"].values)
    for key in ("context", "session", "choice"):
        np.testing.assert_array_equal(lfp[key].values, rec[key].values)
    np.testing.assert_array_equal(lfp["mask"].sum("time").values, 25 * rec["mask"].sum("time").values)
    # the bursty 20 Hz beta of the simulator stands out of the 1/f background
    beta = band_power(lfp, (15, 25)).mean()
    gamma = band_power(lfp, (35, 45)).mean()
    assert beta > 5 * gamma

"""Tests for neuroalrnn.analysis.similarity: CKA, Procrustes, CCA, RSA, cross-validation."""

import numpy as np
import pytest
import scipy.spatial
import xarray as xr
from sklearn.cross_decomposition import CCA

from neuroalrnn.analysis import similarity as sim
from neuroalrnn.analysis.similarity import _hsic_u


def hsic_reference(X, Y):
    """Song et al. (2012) unbiased HSIC with explicit n x n Gram matrices."""
    n = len(X)
    K, L = X @ X.T, Y @ Y.T
    np.fill_diagonal(K, 0), np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ K @ L @ one)) / (n * (n - 3))


def pair(n_trials=40, n_time=8, d=4, units=6, seed=0, noise=0.0):
    """Model states X and a rotated, scaled, shifted, embedded copy Y (+ optional noise)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_trials, n_time, d))
    Q = np.linalg.qr(rng.normal(size=(units, units)))[0][:, :d]  # (units, d) orthonormal columns
    y = 2.5 * z @ Q.T + 1.0 + noise * rng.normal(size=(n_trials, n_time, units))
    coords = {"trial": np.arange(n_trials) + 100, "context": ("trial", np.resize(["a", "b"], n_trials)),
              "coh": ("trial", np.resize([-1, 0, 1, 2], n_trials)), "session": ("trial", np.arange(n_trials) % 5)}
    X = xr.DataArray(z, dims=("trial", "time", "latent"), coords=coords)
    Y = xr.DataArray(y, dims=("trial", "time", "unit"), coords=coords)
    return X, Y


def test_hsic_matches_explicit_gram_formula():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 3))
    X, Y = X - X.mean(0), Y - Y.mean(0)
    assert np.isclose(_hsic_u(X, Y), hsic_reference(X, Y), rtol=1e-10)
    assert np.isclose(_hsic_u(X, X), hsic_reference(X, X), rtol=1e-10)


def test_cka_known_answers():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 5))
    Q = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    assert np.isclose(sim.linear_cka(X, 7.0 * X @ Q + 3.0), 1.0, atol=1e-12)
    noise = sim.linear_cka(rng.normal(size=(4000, 5)), rng.normal(size=(4000, 8)))
    assert abs(noise) < 0.02
    aniso = sim.linear_cka(X, X * [10.0, 1, 1, 1, 1])  # not invariant to anisotropic scaling
    assert aniso < 0.9


def test_procrustes_known_answers_and_scipy_reference():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3))
    Q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    assert sim.procrustes_distance(X[:100], 4 * X[:100] @ Q + 1, X[100:], 4 * X[100:] @ Q + 1) < 1e-6
    Y = X @ Q + 0.8 * rng.normal(size=X.shape)
    # scipy's disparity is 1 - cos^2 of the angle between the aligned, standardised shapes
    _, _, disparity = scipy.spatial.procrustes(Y, X)
    assert np.isclose(sim.procrustes_distance(X, Y), np.arccos(np.sqrt(1 - disparity)), atol=1e-8)
    far = sim.procrustes_distance(rng.normal(size=(300, 3))[:150], rng.normal(size=(300, 3))[:150],
                                  rng.normal(size=(150, 3)), rng.normal(size=(150, 3)))
    assert far > 1.2  # independent data: near pi/2 out of sample


def test_cca_training_correlation_matches_sklearn():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(500, 1))
    X = np.hstack([s, rng.normal(size=(500, 2))]) @ rng.normal(size=(3, 3))
    Y = np.hstack([s + 0.5 * rng.normal(size=(500, 1)), rng.normal(size=(500, 3))]) @ rng.normal(size=(4, 4))
    ours = sim.cca_correlations(X, Y, reg=0.0)
    u, v = CCA(n_components=1, max_iter=2000, tol=1e-10).fit(X, Y).transform(X, Y)
    ref = abs(np.corrcoef(u[:, 0], v[:, 0])[0, 1])
    assert np.isclose(ours[0], ref, atol=1e-4)
    assert np.all(np.diff(ours) <= 1e-12) and ours[0] > 0.8


def test_rdm_and_rsa_invariances():
    X, _ = pair(seed=4)
    r = sim.rdm(X, ["context", "coh"])
    assert r.shape == (4, 4) and np.allclose(np.diag(r), 0) and np.allclose(r, r.T)
    # correlation distance ignores scaling and offsets of the activity
    np.testing.assert_allclose(sim.rdm(3 * X + 2, ["context", "coh"]).values, r.values, atol=1e-12)
    rng = np.random.default_rng(0)
    other = sim.rdm(X + rng.normal(size=X.shape), ["context", "coh"])
    base = sim.rdm_correlation(r, other)
    for f in (np.exp, lambda a: a ** 3, lambda a: 5 * a + 1):  # monotone transforms of one RDM
        assert np.isclose(sim.rdm_correlation(r, f(other.values)), base)
    assert np.isclose(sim.rdm_correlation(r, r), 1.0)


def test_cv_similarity_rotated_copy_and_shuffled_baseline():
    X, Y = pair(noise=0.0)
    res = sim.cv_similarity(X, Y, n_splits=4, by=["context", "coh"], seed=0)
    assert res["procrustes"].dims == ("fold",) and res.sizes["fold"] == 4
    np.testing.assert_allclose(res["procrustes"], 0.0, atol=1e-6)
    np.testing.assert_allclose(res["cka"], 1.0, atol=1e-10)
    np.testing.assert_allclose(res["cca"], 1.0, atol=1e-6)
    assert np.isclose(float(res["rsa"]), 1.0)
    base = sim.shuffled_baseline(X, Y, n_shuffles=3, n_splits=4, seed=1)
    assert base.sizes["shuffle"] == 3
    assert float(base["cka"].mean()) < 0.2 and float(base["procrustes"].min()) > 0.8
    again = sim.shuffled_baseline(X, Y, n_shuffles=3, n_splits=4, seed=1)  # seeded
    np.testing.assert_array_equal(again["cka"].values, base["cka"].values)


def test_cv_similarity_matches_trials_by_label_and_groups():
    X, Y = pair(noise=0.5, seed=5)
    a = sim.cv_similarity(X, Y, n_splits=5, seed=3)
    b = sim.cv_similarity(X, Y.isel(trial=np.random.default_rng(0).permutation(40)), n_splits=5, seed=3)
    np.testing.assert_allclose(a["cka"], b["cka"])
    g = sim.cv_similarity(X, Y, n_splits=5, groups="session", n_components=3)
    assert g.sizes["cc"] == 3 and np.all(g["cka"] > 0.5)


def test_ragged_trials_use_jointly_valid_points():
    X, Y = pair(noise=0.1, seed=6)
    Y = Y.copy()
    Y[:, 6:] = np.nan  # data end earlier than the model states
    Xs, Ys, idx = sim.paired_samples(X, Y)
    assert Xs.shape == (40 * 6, 4) and np.isfinite(Ys).all()
    assert sim.cv_similarity(X, Y, n_splits=3)["cka"].min() > 0.9


def test_bad_input():
    X, Y = pair()
    with pytest.raises(ValueError, match=r"only in x: \[100\].*only in y: \[999\]"):
        sim.cv_similarity(X, Y.assign_coords(trial=np.r_[999, Y["trial"].values[1:]]))
    with pytest.raises(ValueError, match="at least 5 trials"):
        sim.cv_similarity(X.isel(trial=slice(0, 3)), Y.isel(trial=slice(0, 3)), n_splits=5)
    with pytest.raises(ValueError, match="distinct groups"):
        sim.cv_similarity(X, Y, n_splits=6, groups="session")
    with pytest.raises(ValueError, match="groups"):
        sim.cv_similarity(X, Y, groups="nope")
    with pytest.raises(ValueError, match="time"):
        sim.cv_similarity(X, Y.isel(time=slice(0, 5)))
    with pytest.raises(TypeError, match="y"):
        sim.cv_similarity(X, Y.values)
    dup = np.r_[Y["trial"].values[:-1], Y["trial"].values[0]]  # same set of labels, one repeated
    with pytest.raises(ValueError, match=r"trial: .* of y must be unique.*repeated: \[100\]"):
        sim.cv_similarity(X, Y.assign_coords(trial=dup))
    # enough trials for the folds, but a held-out fold with too few valid time points
    short = Y.copy()
    short[:, 1:] = np.nan
    with pytest.raises(ValueError, match="n_splits: fold .* fewer than 4 valid time points"):
        sim.cv_similarity(X.isel(trial=slice(0, 6)), short.isel(trial=slice(0, 6)), n_splits=3)
    with pytest.raises(ValueError, match="n_splits: expected at least 2"):
        sim.cv_similarity(X, Y, n_splits=1)
    for bad in (0, 5, 2.5):  # X has 4 latent dims
        with pytest.raises(ValueError, match=r"n_components: expected an int in 1\.\.4"):
            sim.cv_similarity(X, Y, n_components=bad)
    with pytest.raises(ValueError, match="Xte, Yte"):
        sim.procrustes_distance(X.values[0], Y.values[0], X.values[1])


def test_rsa_conditions_from_either_side():
    X, Y = pair(noise=0.3, seed=8)
    by = ["context", "coh"]
    ref = float(sim.cv_similarity(X, Y, n_splits=3, by=by)["rsa"])
    bare = Y.drop_vars(["context", "coh", "session"])  # recordings without the condition coords
    assert float(sim.cv_similarity(X, bare, n_splits=3, by=by)["rsa"]) == pytest.approx(ref)
    assert float(sim.cv_similarity(bare.rename(unit="latent"), X.rename(latent="unit"), n_splits=3,
                                   by=by)["rsa"]) == pytest.approx(ref)
    assert "context" not in bare.coords  # the input is not modified


def test_ridge_map_recovers_linear_map():
    X, Y = pair(noise=0.0)
    L = sim.ridge_map(X, Y, alpha=1e-8)
    assert L.dims == ("unit", "latent")
    # Y = 2.5 X Q^T + 1, so L X reproduces Y up to the constant offset
    np.testing.assert_allclose(np.einsum("ul,ntl->ntu", L.values, X.values), Y.values - 1.0, atol=1e-5)


def test_ground_truth_network_beats_shuffled_trials():
    """States of a task-driven AL-RNN vs Poisson units read out from them (like the sample recording)."""
    from neuroalrnn.tasks import stimulus_selection

    ds = stimulus_selection(150, seed=0)
    g = np.random.default_rng(7)  # a random stable AL-RNN (M = 8, P = 2) driven by the task inputs
    prm = {"A": np.full(8, 0.8), "W": 0.15 * g.normal(size=(8, 8)), "h": 0.1 * g.normal(size=8),
           "C": g.normal(size=(8, 5))}
    s = np.nan_to_num(ds["inputs"].values)
    z = np.zeros(s.shape[:2] + (8,))
    prev = np.zeros((len(s), 8))
    for t in range(s.shape[1]):  # the AL-RNN map, ReLU on the last 2 units
        phi = np.concatenate([prev[:, :6], np.maximum(prev[:, 6:], 0)], axis=1)
        prev = z[:, t] = prm["A"] * prev + phi @ prm["W"].T + prm["h"] + s[:, t] @ prm["C"].T
    z[~ds["mask"].values] = np.nan
    trial_coords = {k: v.variable for k, v in ds.coords.items() if v.dims == ("trial",) or k == "time"}
    X = xr.DataArray(z, dims=("trial", "time", "latent"), coords=trial_coords)
    rng = np.random.default_rng(0)
    rates = 0.5 * np.exp(np.clip(np.nan_to_num(z) @ (0.5 * rng.normal(size=(8, 30))), -5, 3))
    counts = rng.poisson(rates).astype(float)
    counts[~ds["mask"].values] = np.nan
    Y = xr.DataArray(counts, dims=("trial", "time", "unit"), coords=trial_coords)
    kw = dict(n_splits=5, n_components=5, by=["context", "coh_relevant"])
    real = sim.cv_similarity(X, Y, seed=0, **kw)
    base = sim.shuffled_baseline(X, Y, n_shuffles=3, seed=0, **kw)
    assert float(real["cka"].mean()) > float(base["cka"].max()) + 0.3
    assert float(real["procrustes"].mean()) < float(base["procrustes"].min()) - 0.3
    assert float(real["rsa"]) > 0.8 > float(base["rsa"].max())

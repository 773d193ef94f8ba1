"""Tests for neuroalrnn.analysis.geometry: TDR, condition averages, PCA, slow-mode alignment."""

import numpy as np
import pytest
import xarray as xr
from sklearn.linear_model import LinearRegression

from neuroalrnn.analysis import geometry as geo
from neuroalrnn.schema import from_arrays

REGS = ["choice", "coh_motion", "coh_color", "context"]


def planted(n_trials=400, n_time=12, n_units=30, noise=0.3, seed=0, ragged=False):
    """Activity = sum_v F_v(trial) g_v(time) d_v + noise, with orthonormal planted d_v."""
    rng = np.random.default_rng(seed)
    d = np.linalg.qr(rng.normal(size=(n_units, 4)))[0].T  # (4, unit) orthonormal
    ctx = rng.choice(["color", "motion"], n_trials)
    F = np.column_stack([rng.choice([-1.0, 1.0], n_trials), rng.choice([-0.5, -0.15, 0.15, 0.5], n_trials),
                         rng.choice([-0.5, -0.15, 0.15, 0.5], n_trials), np.where(ctx == "motion", 1.0, -1.0)])
    t = np.arange(n_time)
    peaks = np.array([9, 4, 6, 2])
    gains = 3.0 * np.exp(-0.5 * ((t[None, :] - peaks[:, None]) / 2.0) ** 2)  # (4, time)
    act = np.einsum("nv,vt,vu->ntu", F, gains, d) + noise * rng.normal(size=(n_trials, n_time, n_units))
    lengths = rng.integers(n_time - 4, n_time + 1, n_trials) if ragged else None
    ds = from_arrays(activity=act, dt=0.1, lengths=lengths,
                     trial_coords={"choice": F[:, 0], "coh_motion": F[:, 1], "coh_color": F[:, 2], "context": ctx})
    return ds, d, peaks


def test_tdr_recovers_planted_axes_and_peak_times():
    ds, d, peaks = planted()
    axes = geo.tdr_axes(ds, REGS)
    assert axes.dims == ("axis", "unit") and list(axes["axis"].values) == REGS
    cos = np.abs(np.sum(axes.values * d, axis=1))
    assert np.all(cos > 0.98), cos
    np.testing.assert_allclose(axes["time_of_max"].values, peaks * 0.1)
    np.testing.assert_allclose(axes.values @ axes.values.T, np.eye(4), atol=1e-10)  # orthonormal


def test_tdr_pca_denoising_and_window():
    ds, d, _ = planted(noise=1.0, seed=1)
    raw = np.abs(np.sum(geo.tdr_axes(ds, REGS).values * d, axis=1))
    den = np.abs(np.sum(geo.tdr_axes(ds, REGS, n_pcs=4).values * d, axis=1))
    assert np.all(den > 0.97) and np.all(den > raw)  # denoising helps with heavy noise
    win = geo.tdr_axes(ds, ["choice"], window=(0.75, 1.05))
    assert abs(np.sum(win.values[0] * d[0])) > 0.98


def test_tdr_qr_order_keeps_first_axis():
    rng = np.random.default_rng(0)
    a, b = rng.choice([-1.0, 1.0], 300), rng.normal(size=300)
    u1, u2 = np.array([1.0, 0, 0]), np.array([1.0, 1.0, 0]) / np.sqrt(2)  # non-orthogonal plants
    x = xr.DataArray((a[:, None] * u1 + b[:, None] * u2)[:, None, :], dims=("trial", "time", "unit"),
                     coords={"a": ("trial", a), "b": ("trial", b)})
    ax = geo.tdr_axes(x, ["a", "b"])
    np.testing.assert_allclose(ax.values, [[1, 0, 0], [0, 1, 0]], atol=1e-8)
    ax = geo.tdr_axes(x, ["b", "a"])  # now b keeps its direction
    np.testing.assert_allclose(ax.values[0], u2, atol=1e-8)
    raw = geo.tdr_axes(x, ["a", "b"], orthogonalize=False)
    np.testing.assert_allclose(raw.values[1], u2, atol=1e-8)


def test_tdr_coefficients_match_sklearn_on_ragged_trials():
    ds, _, _ = planted(n_trials=120, ragged=True, seed=3)
    beta = geo.tdr_coefficients(ds, REGS, min_trials=6)
    t = ds.sizes["time"] - 1  # the last step: only some trials valid
    ok = ds["mask"].values[:, t]
    assert 0 < ok.sum() < ds.sizes["trial"]
    F = np.column_stack([ds["choice"], ds["coh_motion"], ds["coh_color"],
                         np.where(ds["context"].values == "motion", 1.0, -1.0)])
    ref = LinearRegression().fit(F[ok], ds["activity"].values[ok, t]).coef_.T
    np.testing.assert_allclose(beta.values[:, t], ref, atol=1e-8)


def test_tdr_ignores_sparse_ragged_tails():
    ds, d, peaks = planted(n_trials=300, noise=0.5, seed=4)
    act = ds["activity"].values.copy()
    n_time = act.shape[1]
    lengths = np.where(np.arange(300) < 20, n_time, n_time - 2)  # only 20 trials reach the end
    rng = np.random.default_rng(0)
    act[:20, -2:] += 30 * rng.normal(size=(20, 2, act.shape[2]))  # a loud, unrepresentative tail
    act[20:, -2:] = np.nan
    tail = ds.assign(activity=(("trial", "time", "unit"), act),
                     mask=(("trial", "time"), np.arange(n_time)[None] < lengths[:, None]))
    axes = geo.tdr_axes(tail, REGS)
    assert np.all(axes["time_of_max"].values < (n_time - 2) * 0.1 - 1e-9)
    assert np.isnan(geo.tdr_coefficients(tail, REGS).values[:, -2:]).all()
    loud = geo.tdr_axes(tail, REGS, min_trials=10)  # allowing the tail lets noise win
    assert np.any(loud["time_of_max"].values >= (n_time - 2) * 0.1 - 1e-9)
    with pytest.raises(ValueError, match="min_trials"):
        geo.tdr_axes(tail, REGS, min_trials=2)


def test_tdr_bad_input():
    ds, _, _ = planted(n_trials=50)
    with pytest.raises(ValueError, match="'nope'"):
        geo.tdr_axes(ds, ["nope"])
    three = ds.assign_coords(context=("trial", np.resize(["a", "b", "c"], 50)))
    with pytest.raises(ValueError, match="exactly 2 levels"):
        geo.tdr_axes(three, ["context"])
    dup = ds.assign_coords(choice2=("trial", 2 * ds["choice"].values))
    with pytest.raises(ValueError, match="rank deficient"):
        geo.tdr_axes(dup, ["choice", "choice2"])
    with pytest.raises(ValueError, match="window"):
        geo.tdr_axes(ds, ["choice"], window=(50.0, 60.0))
    with pytest.raises(TypeError, match="x"):
        geo.tdr_axes(np.zeros((3, 3, 3)), ["choice"])


def test_project_and_trajectories_keep_trial_coords():
    ds, d, _ = planted(n_trials=80, ragged=True)
    axes = geo.tdr_axes(ds, REGS)
    proj = geo.project(ds, axes)
    assert proj.dims == ("trial", "time", "axis")
    assert "context" in proj.coords and np.array_equal(proj["trial"], ds["trial"])
    ref = np.einsum("ntu,au->nta", ds["activity"].values, axes.values)
    np.testing.assert_allclose(proj.values, ref)
    assert np.isnan(proj.values[~ds["mask"].values]).all()
    traj = geo.tdr_trajectories(ds, axes, ["context", "choice"])
    assert traj.sizes["condition"] == 4 and traj["n_trials"].sum() == 80
    with pytest.raises(ValueError, match="unit"):
        geo.project(ds, axes.isel(unit=slice(0, 5)))


def test_condition_average_by_hand_with_ragged_trials():
    act = [np.array([[1.0], [3.0]]), np.array([[5.0]]), np.array([[2.0], [4.0]])]
    ds = from_arrays(activity=act, trial_coords={"c": ["x", "x", "y"]})
    avg = geo.condition_average(ds, "c")
    np.testing.assert_allclose(avg.values[:, :, 0], [[3.0, 3.0], [2.0, 4.0]])
    assert avg["n_trials"].values.tolist() == [2, 1] and avg["c"].values.tolist() == ["x", "y"]


def test_pca_condition_averages_against_svd():
    ds, _, _ = planted(n_trials=200, noise=0.0)
    out = geo.pca_condition_averages(ds, ["choice", "context"], n_components=3)
    avg = geo.condition_average(ds, ["choice", "context"]).values.reshape(-1, ds.sizes["unit"])
    avg = avg - avg.mean(0)
    s = np.linalg.svd(avg, compute_uv=False)
    np.testing.assert_allclose(out["explained_variance_ratio"].values, (s ** 2 / np.sum(s ** 2))[:3], rtol=1e-8)
    assert out["scores"].dims == ("condition", "time", "component")
    with pytest.raises(ValueError, match="n_components"):
        geo.pca_condition_averages(ds, "choice", n_components=1000)
    silent = xr.DataArray(np.full((4, 3, 2), np.nan), dims=("trial", "time", "unit"),
                          coords={"c": ("trial", list("abab"))})
    with pytest.raises(ValueError, match="x: PCA needs at least 2 .* every unit is valid"):
        geo.pca_condition_averages(silent, "c")


@pytest.mark.parametrize("missing", ["", np.nan])
def test_condition_average_leaves_out_missing_by_values(missing):
    act = [np.array([[1.0], [3.0]]), np.array([[5.0]]), np.array([[2.0], [4.0]]), np.array([[9.0], [9.0]])]
    labels = np.array(["x", "x", "y", missing], dtype=object if missing != "" else str)
    ds = from_arrays(activity=act, trial_coords={"c": labels, "k": [1.0, 1.0, 1.0, np.nan]})
    for by in ("c", "k"):
        avg = geo.condition_average(ds, by)
        assert avg["n_trials"].sum() == 3  # the trial with a missing value is left out
    avg = geo.condition_average(ds, "c")
    np.testing.assert_allclose(avg.values[:, :, 0], [[3.0, 3.0], [2.0, 4.0]])
    assert avg["c"].values.tolist() == ["x", "y"]

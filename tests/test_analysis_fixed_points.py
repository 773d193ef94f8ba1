"""Tests for neuroalrnn.analysis.fixed_points: exact fixed points per linear subregion."""

import numpy as np
import pytest

from neuroalrnn.analysis import fixed_points, model_params, region_jacobian
from neuroalrnn.analysis.regions import region_codes


def _random_model(rng, M, P, K=0, scale=0.5):
    return {"A": rng.uniform(0.1, 0.9, M), "W": rng.normal(0, scale, (M, M)), "h": rng.normal(0, 1, M),
            "C": rng.normal(0, 1, (M, K)), "n_relu": P}


def _brute_force(params, s=None):
    """Every region solved with a full dense solve: (z, real) per code."""
    p = model_params(params)
    M, P = p["A"].size, p["n_relu"]
    b = p["h"] + (p["C"] @ s if s is not None else 0)
    out = {}
    for code in range(2 ** P):
        bits = ((code >> np.arange(P)) & 1).astype(bool)
        z = np.linalg.solve(np.eye(M) - region_jacobian(bits, p), b)
        out[code] = (z, bool(np.all((z[M - P:] > 0) == bits)))
    return out


def _simulate(p, z0, n_steps):
    A, W, h, P = p["A"], p["W"], p["h"], p["n_relu"]
    M = A.size
    z, out = np.asarray(z0, float), []
    for _ in range(n_steps):
        phi = z.copy()
        phi[M - P:] = np.maximum(phi[M - P:], 0)
        z = A * z + W @ phi + h
        out.append(z)
    return np.array(out)


def test_one_unit_bistable_analytic():
    # z -> 0.5 z + 1.0 relu(z) - 1: off-region z* = -1 / 0.5 = -2 (slope 0.5, stable),
    # on-region z* = -1 / (1 - 1.5) = 2 (slope 1.5, unstable)
    fp = fixed_points({"A": [0.5], "W": [[1.0]], "h": [-1.0], "n_relu": 1})
    real = fp.sel(point=fp["real"])
    assert real.sizes["point"] == 2
    by_region = {int(r): p for r, p in zip(real.region.values, real.point.values)}
    np.testing.assert_allclose(real.z.sel(point=by_region[0]).values, [-2.0])
    np.testing.assert_allclose(real.z.sel(point=by_region[1]).values, [2.0])
    np.testing.assert_allclose(real.eigenvalues.sel(point=by_region[0]).values, [0.5])
    np.testing.assert_allclose(real.eigenvalues.sel(point=by_region[1]).values, [1.5])
    assert bool(real.stable.sel(point=by_region[0])) and not bool(real.stable.sel(point=by_region[1]))
    assert str(real.kind.sel(point=by_region[0]).values) == "stable node"
    assert str(real.kind.sel(point=by_region[1]).values) == "unstable node"


def test_two_unit_analytic_with_input():
    # linear unit x, ReLU unit y: x' = 0.5 x + 0.2 relu(y) + 1 + s, y' = 0.3 y + 0.4 x - 1
    params = {"A": [0.5, 0.3], "W": [[0.0, 0.2], [0.4, 0.0]], "h": [1.0, -1.0], "C": [[1.0], [0.0]],
              "n_relu": 1}
    for s in (0.0, 2.0):
        # on-region: x = (1 + s + 0.2 y) / 0.5, y = (0.4 x - 1) / 0.7
        K = np.array([[0.5, -0.2], [-0.4, 0.7]])
        z_on = np.linalg.solve(K, [1 + s, -1.0])
        z_off = np.array([(1 + s) / 0.5, (0.4 * (1 + s) / 0.5 - 1) / 0.7])
        fp = fixed_points(params, inputs=[s])
        real = fp.sel(point=fp["real"])
        expected = z_on if z_on[1] > 0 else z_off
        assert real.sizes["point"] == 1
        np.testing.assert_allclose(real.z.values[0], expected, rtol=1e-12)
        assert int(real.region.values[0]) == int(expected[1] > 0)
        assert fp.sizes["point"] == 2 and fp.attrs["n_virtual"] == 1  # the virtual point is kept


def test_exhaustive_matches_dense_solves(rng):
    # P = 6 uses the direct P x P path, P = 11 the grouped (Schur) path
    for M, P in ((9, 6), (13, 11)):
        params = _random_model(rng, M, P, K=2)
        s = rng.normal(size=2)
        fp = fixed_points(params, inputs=s, include_virtual=True)
        ref = _brute_force(params, s)
        assert fp.sizes["point"] == 2 ** P and fp.attrs["method"] == "exhaustive"
        for code, z, real in zip(fp.region.values, fp.z.values, fp["real"].values):
            z_ref, real_ref = ref[int(code)]
            np.testing.assert_allclose(z, z_ref, rtol=1e-7, atol=1e-9)
            assert real == real_ref
        # real points are fixed points of the true map and lie in their own region
        real = fp.sel(point=fp["real"])
        p = model_params(params)
        b = p["h"] + p["C"] @ s
        for z, code in zip(real.z.values, real.region.values):
            phi = z.copy()
            phi[M - P:] = np.maximum(phi[M - P:], 0)
            np.testing.assert_allclose(p["A"] * z + p["W"] @ phi + b, z, atol=1e-10)
            assert region_codes(z, P) == code
        assert list(fp["real"].values[:real.sizes["point"]]) == [True] * real.sizes["point"]  # real first


def test_default_drops_virtual_points_for_many_regions(rng):
    params = _random_model(rng, 16, 13)
    fp = fixed_points(params)
    assert bool(fp["real"].all())
    assert fp.attrs["n_real"] + fp.attrs["n_virtual"] + fp.attrs["n_singular"] == 2 ** 13
    ref = _brute_force(params)
    assert sorted(fp.region.values.tolist()) == sorted(c for c, (_, r) in ref.items() if r)


def test_eigen_quantities_and_slow_modes():
    # block-diagonal: a slow linear unit (0.995) and a fast ReLU pair
    params = {"A": [0.995, 0.2, 0.1], "W": [[0, 0, 0], [0, 0, 0.3], [0, -0.3, 0]], "h": [0.0, 1.0, 1.0],
              "n_relu": 2}
    fp = fixed_points(params, slow_tol=0.01)
    real = fp.sel(point=fp["real"])
    assert real.sizes["point"] == 1
    pt = real.isel(point=0)
    assert bool(pt.slow) and abs(float(pt.slowest_abs) - 0.995) < 1e-12
    np.testing.assert_allclose(float(pt.timescale), -1 / np.log(0.995))
    J = region_jacobian(((int(pt.region) >> np.arange(2)) & 1).astype(bool), model_params(params))
    lam = np.linalg.eigvals(J)
    np.testing.assert_allclose(np.sort_complex(pt.eigenvalues.values), np.sort_complex(lam))
    right, left = pt.slow_right.values, pt.slow_left.values
    np.testing.assert_allclose(J @ right, 0.995 * right, atol=1e-12)
    np.testing.assert_allclose(left @ J, 0.995 * left, atol=1e-12)
    np.testing.assert_allclose(left @ right, 1.0)
    assert bool(pt.stable) and str(pt.kind.values) == "stable node"
    assert not bool(fixed_points(params, slow_tol=0.001).sel(point=0).slow)


def test_singular_regions_are_reported_not_raised():
    # linear unit with A = 1 and no coupling: I - J is singular in every region
    fp = fixed_points({"A": [1.0], "W": [[0.0]], "h": [0.5], "n_relu": 0})
    assert fp.attrs["n_singular"] == 1 and not fp["real"].any() and bool(fp.singular.all())
    assert np.isnan(fp.z.values).all()
    # singular only when the ReLU unit is on (1 - 0.5 - 0.5 = 0); the off-region still works
    fp = fixed_points({"A": [0.5, 0.5], "W": [[0.0, 0.1], [0.0, 0.5]], "h": [1.0, -1.0], "n_relu": 1})
    assert fp.attrs["n_singular"] == 1
    real = fp.sel(point=fp["real"])
    np.testing.assert_allclose(real.z.values[0], [2.0, -2.0])
    assert bool(fp.singular.sel(point=fp.region == 1).all())


def test_boundary_point_is_not_duplicated():
    # h = 0: z* = 0 lies on the boundary of both regions, it is one fixed point
    fp = fixed_points({"A": [0.5], "W": [[0.3]], "h": [0.0], "n_relu": 1})
    assert int(fp["real"].sum()) == 1


def test_large_p_switches_to_search_and_exhaustive_limit():
    params = _random_model(np.random.default_rng(0), 20, 12, scale=0.3)
    exact = fixed_points(params, include_virtual=False)
    assert exact.attrs["n_real"] >= 3  # a case with several real points
    with pytest.raises(ValueError, match="max_exhaustive_p"):
        fixed_points(params, regions="exhaustive", max_exhaustive_p=8)
    # beyond the hard ceiling of 30 ReLU units no limit makes exhaustive search possible
    big = _random_model(np.random.default_rng(1), 32, 31, scale=0.1)
    with pytest.raises(ValueError, match="beyond the supported 30 ReLU units.*regions='search'"):
        fixed_points(big, regions="exhaustive", max_exhaustive_p=40)
    found = fixed_points(params, max_exhaustive_p=8, seed=1)
    assert found.attrs["method"] == "search"
    assert sorted(found.region.values.tolist()) == sorted(exact.region.values.tolist())
    np.testing.assert_allclose(found.sortby("region").z.values, exact.sortby("region").z.values)
    # regions given explicitly are solved as such (virtual ones kept)
    given = fixed_points(params, regions=[0, 1, int(exact.region[0])])
    assert given.attrs["method"] == "given" and given.sizes["point"] == 3 and int(given["real"].sum()) >= 1


def test_search_seeded_by_visited_states(rng):
    # every ReLU unit is pulled below zero: the only real fixed point is "all off", stable
    M, P = 20, 12
    W = rng.normal(0, 0.02, (M, M))
    W[np.arange(M - P, M), np.arange(M - P, M)] += 0.3
    p = {"A": np.full(M, 0.5), "W": W, "h": np.r_[rng.normal(0, 0.1, M - P), np.full(P, -0.1)], "n_relu": P}
    exact = fixed_points(p, include_virtual=False)
    assert exact.region.values.tolist() == [0] and bool(exact.stable[0])
    traj = _simulate(model_params(p), exact.z.values[0] + 0.01, 20)
    # one start, one step: only a start in the visited region can succeed
    seeded = fixed_points(p, regions="search", states=traj, n_restarts=1, max_iter=1, seed=3)
    assert seeded.region.values.tolist() == [0]
    np.testing.assert_allclose(seeded.z.values, exact.z.values)
    unseeded = fixed_points(p, regions="search", n_restarts=1, max_iter=1, seed=3)
    assert unseeded.sizes["point"] == 0


def test_bad_input():
    good = {"A": [0.5, 0.5], "W": np.zeros((2, 2)), "h": [0.0, 0.0], "C": np.zeros((2, 1)), "n_relu": 1}
    with pytest.raises(ValueError, match="inputs"):
        fixed_points(good, inputs=[1.0, 2.0])
    with pytest.raises(ValueError, match="W"):
        fixed_points({**good, "W": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="n_relu"):
        fixed_points({**good, "n_relu": 3})
    with pytest.raises(ValueError, match="n_relu"):
        fixed_points({k: v for k, v in good.items() if k != "n_relu"})
    with pytest.raises(ValueError, match="regions"):
        fixed_points(good, regions="everything")
    with pytest.raises(ValueError, match="regions"):
        fixed_points(good, regions=[5])
    with pytest.raises(TypeError, match="model"):
        fixed_points([1, 2, 3])


def test_through_alrnn_from_params(rng):
    from neuroalrnn.model import ALRNN

    params = _random_model(rng, 6, 3, K=2)
    model = ALRNN.from_params(A=params["A"], W=params["W"], h=params["h"], C=params["C"], n_relu=3)
    s = np.array([0.5, -1.0])
    a, b = fixed_points(model, inputs=s), fixed_points(params, inputs=s)
    np.testing.assert_array_equal(a.region.values, b.region.values)
    np.testing.assert_allclose(a.z.values, b.z.values, rtol=1e-5, atol=1e-6)  # float32 model parameters


def test_lorenz_reference_skeleton(shared_data):
    """The authors' Lorenz AL-RNN: a saddle in one visited region, saddle-foci in the other two."""
    from neuroalrnn.model import ALRNN

    with np.load(shared_data / "alrnn_reference" / "lorenz_m20_p2.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    P = int(arrays["P"])
    model = ALRNN.from_params(A=arrays["A"], W=arrays["W"], h=arrays["h"], B=arrays["B"], n_relu=P)
    x0 = np.load(shared_data / "alrnn_reference" / "lorenz63_test.npy", allow_pickle=False)[500]
    z0 = x0 @ arrays["B"]
    z0[:3] = x0
    traj = _simulate(model_params(model), z0, 6000)[1000:]
    visited = np.unique(region_codes(traj, P))
    assert visited.size == 3
    fp = fixed_points(model)
    real = fp.sel(point=fp["real"] & fp.region.isin(visited))
    assert sorted(real.region.values.tolist()) == sorted(visited.tolist())  # one real point per region
    kinds = sorted(str(k) for k in real.kind.values)
    assert kinds == ["saddle", "saddle-focus", "saddle-focus"]
    assert not real.stable.any()
    # the two saddle-foci are the Lorenz wings: opposite signs of the first two readout coordinates
    foci = real.sel(point=real.kind == "saddle-focus").z.values[:, :2]
    assert np.all(np.sign(foci[0]) == -np.sign(foci[1]))


def test_decoupled_bistable_units_every_region_real():
    # each unit: z -> 0.5 z + 0.8 relu(z) - 0.1, off point -0.2 (slope 0.5), on point 1/3 (slope 1.3)
    M = 6
    fp = fixed_points({"A": np.full(M, 0.5), "W": 0.8 * np.eye(M), "h": np.full(M, -0.1), "n_relu": M})
    assert fp.attrs["n_real"] == 2 ** M and bool(fp["real"].all())
    for code, z, n_unstable in zip(fp.region.values, fp.z.values, fp.n_unstable.values):
        bits = ((code >> np.arange(M)) & 1).astype(bool)
        np.testing.assert_allclose(z, np.where(bits, 1 / 3, -0.2))
        assert n_unstable == bits.sum()
    assert fp.region.values[fp.stable.values].tolist() == [0]


def test_singular_elimination_groups_fall_back_to_direct_solves(rng):
    # P = M = 7 (5 low bits, 2 high): with both high units on, I - W_HH is singular, yet the
    # whole system is regular once a low unit couples in; those groups must take the direct path
    M = 7
    W = np.zeros((M, M))
    W[5, 6] = W[6, 5] = 1.0
    W[5, 0] = W[0, 5] = 1.0
    W[:5, :5] = rng.normal(0, 0.2, (5, 5))
    params = {"A": np.zeros(M), "W": W, "h": rng.normal(0, 1, M), "n_relu": M}
    fp = fixed_points(params, include_virtual=True)
    p = model_params(params)
    for code, z, sing in zip(fp.region.values, fp.z.values, fp.singular.values):
        bits = ((code >> np.arange(M)) & 1).astype(bool)
        K = np.eye(M) - region_jacobian(bits, p)
        if np.linalg.cond(K) > 1e12:
            assert sing
        else:
            assert not sing
            np.testing.assert_allclose(z, np.linalg.solve(K, p["h"]), rtol=1e-8, atol=1e-10)
    assert 0 < fp.attrs["n_singular"] < 2 ** M


def test_line_attractor_is_a_singular_real_continuum():
    # integrator z0' = z0 + relu(z1), z1' = -1: every (z0, -1) is a fixed point (region 0);
    # with the ReLU unit on, (I - J) z = b has no solution at all
    fp = fixed_points({"A": [1.0, 0.0], "W": [[0.0, 1.0], [0.0, 0.0]], "h": [0.0, -1.0], "n_relu": 1})
    assert fp.region.values.tolist() == [0, 1] and fp["real"].values.tolist() == [True, False]
    assert fp.singular.values.tolist() == [True, True] and fp.attrs["n_singular"] == 2
    np.testing.assert_allclose(fp.z.values[0], [0.0, -1.0], atol=1e-12)
    assert np.isnan(fp.z.values[1]).all()
    line = fp.isel(point=0)
    assert bool(line.slow) and float(line.slowest_abs) == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(line.slow_right.values), [1.0, 0.0], atol=1e-12)  # along z0

"""Tests for neuroalrnn.analysis.alignment: slow modes vs input / recorded directions."""

import numpy as np
import pytest
import xarray as xr

from neuroalrnn.analysis import alignment as al


def test_slow_modes_left_and_right_eigenvectors():
    J = np.array([[0.9, 0.5], [0.0, 0.5]])  # non-normal: left and right eigenvectors differ
    right = al.slow_modes(J, side="right")
    left = al.slow_modes(J, side="left")
    assert np.isclose(right["abs_eigenvalue"].item(), 0.9)
    np.testing.assert_allclose(np.abs(right.values[0]), [1.0, 0.0], atol=1e-12)
    w = np.array([1.0, 1.25]) / np.linalg.norm([1.0, 1.25])  # w J = 0.9 w
    np.testing.assert_allclose(np.abs(left.values[0]), w, atol=1e-12)
    with pytest.raises(ValueError, match="square"):
        al.slow_modes(np.zeros((2, 3)))


def test_slow_mode_alignment_latent_and_mapped():
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    J = Q @ np.diag([0.99, 0.6, 0.3, 0.1]) @ Q.T  # symmetric: slow mode = Q[:, 0]
    C = np.column_stack([Q[:, 0], (Q[:, 0] + Q[:, 1]) / np.sqrt(2), Q[:, 2]])  # input directions
    res = al.slow_mode_alignment(J, xr.DataArray(C.T, dims=("input", "latent"),
                                                 coords={"input": ["motion", "color", "ctx"]}))
    assert res.dims == ("mode", "input") and np.isclose(res["abs_eigenvalue"].item(), 0.99)
    np.testing.assert_allclose(res.values, [[1.0, np.sqrt(0.5), 0.0]], atol=1e-10)
    # recorded space: Y = L z; the mapped mode must meet the mapped input direction
    L = rng.normal(size=(7, 4))
    right = al.slow_mode_alignment(J, [L @ C[:, 0]], side="right", mapping=L)
    assert np.isclose(right.item(), 1.0)
    w = al.slow_modes(J).values[0].real
    u = al.map_directions([w], L, side="left")[0]
    z = rng.normal(size=(4, 5))
    np.testing.assert_allclose(u @ (L @ z), w @ z, atol=1e-10)  # u reads from Y what w reads from z
    np.testing.assert_allclose(al.map_directions(C.T, L), (L @ C).T)
    with pytest.raises(ValueError, match="mapping"):
        al.slow_mode_alignment(J, [u], mapping=np.ones((7, 3)))


def test_cosines_and_principal_angles():
    assert np.isclose(al.principal_angles([[1.0, 0, 0], [0, 1.0, 0]], [[1.0, 1.0, 0]])[0], 0.0)
    ang = al.principal_angles([[1.0 + 1.0j, 1.0j, 0]], [[0, 0, 1.0]])  # complex mode spans a plane
    assert len(ang) == 1 and np.isclose(ang[0], np.pi / 2)
    with pytest.raises(ValueError, match="different spaces"):
        al.cosine_table([[1.0, 0]], [[1.0, 0, 0]])


def test_axes_to_latent_projects_model_states_like_predicted_recordings():
    from neuroalrnn.analysis.geometry import project

    rng = np.random.default_rng(1)
    L = xr.DataArray(rng.normal(size=(6, 3)), dims=("unit", "latent"))
    axes = xr.DataArray(np.linalg.qr(rng.normal(size=(6, 2)))[0].T, dims=("axis", "unit"),
                        coords={"axis": ["choice", "motion"]})
    z = xr.DataArray(rng.normal(size=(4, 5, 3)), dims=("trial", "time", "latent"))
    y = xr.DataArray(np.einsum("ul,ntl->ntu", L.values, z.values), dims=("trial", "time", "unit"))
    np.testing.assert_allclose(project(z, al.axes_to_latent(axes, L)).values, project(y, axes).values, atol=1e-12)
    with pytest.raises(ValueError, match="mapping"):
        al.axes_to_latent(axes, L.isel(unit=slice(0, 4)))

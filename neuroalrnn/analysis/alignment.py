"""Alignment of model slow modes with input, readout and recorded (TDR) directions.

The slow modes of a fixed point (eigenvectors of its Jacobian with |lambda|
near 1) are the model's memory: a left eigenvector says which direction of
the state the mode integrates, a right eigenvector where the state moves. These
functions compare such vectors with the stimulus input directions (columns of
C), a choice readout, or the recorded population's TDR axes carried into the
same space by a linear map.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import xarray as xr

__all__ = ["slow_modes", "cosine_table", "principal_angles", "map_directions", "axes_to_latent", "slow_mode_alignment"]


def slow_modes(jacobian, n_modes: int = 1, side: str = "left") -> xr.DataArray:
    """Eigenvectors of the slowest modes (largest |eigenvalue|) of a Jacobian.

    ``side='left'`` gives left eigenvectors (rows w with w J = lambda w: the
    directions the mode reads out, i.e. what it integrates); ``'right'`` gives
    the directions along which the state moves. Returns a complex (mode,
    latent) DataArray of unit vectors with ``eigenvalue`` and ``abs_eigenvalue``
    coords on ``mode``, slowest first.

    Examples
    --------
    >>> slow_modes([[0.99, 0.0], [0.0, 0.5]])["abs_eigenvalue"].values.tolist()
    [0.99]
    """
    J = np.asarray(jacobian, dtype=float)
    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise ValueError(f"jacobian: expected a square (latent, latent) matrix, got shape {J.shape}")
    if side not in ("left", "right"):
        raise ValueError(f"side: expected 'left' or 'right', got {side!r}")
    if not 1 <= n_modes <= J.shape[0]:
        raise ValueError(f"n_modes: expected 1..{J.shape[0]}, got {n_modes}")
    vals, left, right = scipy.linalg.eig(J, left=True, right=True)
    order = np.argsort(-np.abs(vals), kind="stable")[:n_modes]
    vecs = (left if side == "left" else right)[:, order].T
    vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    return xr.DataArray(vecs, dims=("mode", "latent"),
                        coords={"mode": np.arange(n_modes), "eigenvalue": ("mode", vals[order]),
                                "abs_eigenvalue": ("mode", np.abs(vals[order]))}, attrs={"side": side})


def _columns(v, name):
    """Return (features, k) array and k labels from an array (k, d) or DataArray (dim, feature)."""
    if isinstance(v, xr.DataArray):
        if v.ndim == 1:
            v = v.expand_dims("vector")
        if v.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D (vector, feature) DataArray, got dims {v.dims}")
        labels = v[v.dims[0]].values if v.dims[0] in v.coords else np.arange(v.shape[0])
        return np.asarray(v.values).T, labels
    arr = np.atleast_2d(np.asarray(v))
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a (vector, feature) array, got shape {arr.shape}")
    return arr.T, np.arange(arr.shape[0])


def cosine_table(a, b, *, a_dim: str = "a", b_dim: str = "b") -> xr.DataArray:
    """|cosine| between every vector of ``a`` and every vector of ``b`` (complex-aware).

    ``a`` and ``b`` are (vector, feature) arrays or DataArrays in the same space.

    Examples
    --------
    >>> cosine_table([[1.0, 0.0]], [[1.0, 1.0], [0.0, 2.0]]).values.round(3).tolist()
    [[0.707, 0.0]]
    """
    A, la = _columns(a, "a")
    B, lb = _columns(b, "b")
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"a, b: vectors live in different spaces ({A.shape[0]} vs {B.shape[0]} features)")
    na, nb = np.linalg.norm(A, axis=0), np.linalg.norm(B, axis=0)
    if (na == 0).any() or (nb == 0).any():
        raise ValueError("a, b: zero vectors have no direction")
    cos = np.abs(A.conj().T @ B) / np.outer(na, nb)
    return xr.DataArray(np.clip(cos, 0, 1), dims=(a_dim, b_dim), coords={a_dim: la, b_dim: lb}, name="abs_cosine")


def principal_angles(a, b) -> np.ndarray:
    """Principal angles (radians, ascending) between the spans of two vector sets.

    Complex vectors contribute their real and imaginary parts (the plane of a
    complex mode).

    Examples
    --------
    >>> principal_angles([[1.0, 0, 0]], [[1.0, 1.0, 0]]).round(4).tolist()
    [0.7854]
    """
    A, _ = _columns(a, "a")
    B, _ = _columns(b, "b")
    if np.iscomplexobj(A):
        A = np.hstack([A.real, A.imag[:, np.abs(A.imag).max(0) > 1e-12]])
    if np.iscomplexobj(B):
        B = np.hstack([B.real, B.imag[:, np.abs(B.imag).max(0) > 1e-12]])
    return np.sort(scipy.linalg.subspace_angles(A, B))


def map_directions(vectors, mapping, *, side: str = "right") -> np.ndarray:
    """Carry latent-space vectors (vector, latent) into the recorded space via L (unit, latent).

    Right vectors (state displacements) map as ``L v``; left vectors
    (covectors, e.g. left eigenvectors: what a mode reads out) map as
    ``pinv(L).T w`` so that ``u . (L z) == w . z`` for states in L's row space.

    Examples
    --------
    >>> map_directions([[1.0, 0.0]], [[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).tolist()
    [[2.0, 0.0, 0.0]]
    """
    V, _ = _columns(vectors, "vectors")
    L = np.asarray(mapping.values if isinstance(mapping, xr.DataArray) else mapping)
    if L.ndim != 2 or L.shape[1] != V.shape[0] or not np.issubdtype(L.dtype, np.number):
        raise ValueError(f"mapping: expected a numeric (unit, latent) matrix with {V.shape[0]} latent columns, "
                         f"got shape {L.shape}")
    if side not in ("left", "right"):
        raise ValueError(f"side: expected 'left' or 'right', got {side!r}")
    L = L.astype(float)
    return ((np.linalg.pinv(L).T if side == "left" else L) @ V).T


def axes_to_latent(axes: xr.DataArray, mapping: xr.DataArray) -> xr.DataArray:
    """Pull recorded-space axes (axis, unit) back to the model's latent space.

    With recordings predicted as ``y = L z`` (``mapping`` L: (unit, latent),
    e.g. ``similarity.ridge_map``), the projection ``a . y`` equals
    ``(L^T a) . z``; the result (axis, latent) lets ``geometry.project`` put
    model states on the recorded population's TDR axes. Not normalised: the
    projections keep the recorded scale.

    Examples
    --------
    >>> ax = xr.DataArray([[1.0, 0.0, 0.0]], dims=("axis", "unit"), coords={"axis": ["choice"]})
    >>> L = xr.DataArray([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dims=("unit", "latent"))
    >>> axes_to_latent(ax, L).values.tolist()
    [[2.0, 0.0]]
    """
    if not isinstance(axes, xr.DataArray) or axes.ndim != 2:
        raise TypeError("axes: expected a 2-D (axis, unit) DataArray")
    if not isinstance(mapping, xr.DataArray) or mapping.ndim != 2:
        raise TypeError("mapping: expected a 2-D (unit, latent) DataArray")
    udim = mapping.dims[0]
    if udim not in axes.dims or axes.sizes[udim] != mapping.sizes[udim]:
        raise ValueError(f"mapping: its first dim {udim!r} ({mapping.sizes[udim]}) must match the axes' "
                         f"dims {dict(axes.sizes)}")
    if udim in axes.coords and udim in mapping.coords and not np.array_equal(axes[udim].values, mapping[udim].values):
        raise ValueError(f"mapping: the {udim!r} labels differ from the axes'")
    adim = [d for d in axes.dims if d != udim][0]
    ldim = mapping.dims[1]
    out = axes.transpose(adim, udim).values @ mapping.values
    coords = {k: v.variable for k, v in axes.coords.items() if v.dims == (adim,)}
    if ldim in mapping.coords:
        coords[ldim] = mapping[ldim].values
    return xr.DataArray(out, dims=(adim, ldim), coords=coords, name="latent_axes")


def slow_mode_alignment(jacobian, directions, *, n_modes: int = 1, side: str = "left",
                        mapping=None) -> xr.DataArray:
    """|cosine| between a Jacobian's slowest modes and given directions.

    ``directions`` are (direction, feature) vectors: columns of the input
    matrix C (pass ``C.T``), a readout row, or TDR axes from the recording. If
    they live in the recorded space, give ``mapping`` (unit, latent), the
    linear map from latent states to recorded activity (e.g.
    ``similarity.ridge_map``); the modes are carried over by
    ``map_directions``. For eigenvectors already computed (e.g. the
    ``slow_left`` variable of ``fixed_points``), use ``map_directions`` and
    ``cosine_table`` directly.

    Returns a (mode, direction) DataArray with the eigenvalues as coords.

    Examples
    --------
    >>> J = [[0.99, 0.0], [0.0, 0.5]]
    >>> slow_mode_alignment(J, [[1.0, 0.0], [1.0, 1.0]]).values.round(3).tolist()
    [[1.0, 0.707]]
    """
    modes = slow_modes(jacobian, n_modes=n_modes, side=side)
    vecs = modes.values
    if mapping is not None:
        vecs = map_directions(vecs, mapping, side=side)
    b_dim = directions.dims[0] if isinstance(directions, xr.DataArray) and directions.ndim == 2 else "direction"
    out = cosine_table(vecs, directions, a_dim="mode", b_dim=b_dim)
    return out.assign_coords(eigenvalue=("mode", modes["eigenvalue"].values),
                             abs_eigenvalue=("mode", modes["abs_eigenvalue"].values))

"""Cross-validated similarity between model states and recorded activity.

Model states X (trial, time, latent) and recordings Y (trial, time, unit) are
paired by the ``trial`` coord; valid (finite in both) time points are stacked
as samples, and folds split *trials*, so no trial is in both the fitting and
the scoring set. Metrics:

- CCA correlations (fit on training trials, held-out canonical correlations);
- angular orthogonal-Procrustes shape distance (Williams et al. 2021,
  "Generalized shape metrics on neural representations", alpha = 1);
- debiased linear CKA (unbiased HSIC of Song et al. 2012, as in Kornblith
  et al. 2019), on the held-out trials of each fold;
- RSA: Spearman correlation of condition-averaged correlation-distance RDMs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.linalg
import scipy.stats
import xarray as xr
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold

from neuroalrnn.analysis.geometry import as_signal, condition_average
from neuroalrnn.utils import check_random_state

__all__ = ["paired_samples", "linear_cka", "procrustes_distance", "cca_correlations", "rdm",
           "rdm_correlation", "cv_similarity", "shuffled_baseline", "ridge_map"]


def _pair(x, y):
    X, Y = as_signal(x, "x"), as_signal(y, "y")
    tx, ty = X["trial"].values, Y["trial"].values
    for name, t in (("x", tx), ("y", ty)):
        labels, counts = np.unique(t, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"trial: the trial labels of {name} must be unique to pair model and data trials; "
                             f"repeated: {labels[counts > 1][:10].tolist()}")
    only_x, only_y = np.setdiff1d(tx, ty), np.setdiff1d(ty, tx)
    if len(only_x) or len(only_y) or len(tx) != len(ty):
        raise ValueError(f"trial: model and data must hold the same trials; only in x: {only_x[:10].tolist()}"
                         f"{' ...' if len(only_x) > 10 else ''}, only in y: {only_y[:10].tolist()}"
                         f"{' ...' if len(only_y) > 10 else ''}")
    Y = Y.sel(trial=tx)
    if X.sizes["time"] != Y.sizes["time"]:
        raise ValueError(f"time: x has {X.sizes['time']} steps, y has {Y.sizes['time']}")
    if "time" in X.coords and "time" in Y.coords and not np.allclose(X["time"].values, Y["time"].values):
        raise ValueError("time: x and y have different time coordinates")
    return X, Y


def paired_samples(x, y):
    """Stack the time points valid in both x and y: (Xs, Ys, trial_index).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.ones((2, 3, 1)), dims=("trial", "time", "latent"))
    >>> Xs, Ys, idx = paired_samples(a, a.rename(latent="unit"))
    >>> Xs.shape, idx.tolist()
    ((6, 1), [0, 0, 0, 1, 1, 1])
    """
    X, Y = _pair(x, y)
    xv, yv = X.values, Y.values
    ok = np.all(np.isfinite(xv), 2) & np.all(np.isfinite(yv), 2)
    trial_index = np.broadcast_to(np.arange(xv.shape[0])[:, None], ok.shape)[ok]
    return xv[ok], yv[ok], trial_index


def linear_cka(X, Y) -> float:
    """Debiased linear CKA between two (sample, feature) matrices.

    Uses the unbiased HSIC estimator (Song et al. 2012) with linear kernels,
    computed in O(n d) without forming n x n Gram matrices. Invariant to
    orthogonal transforms and isotropic scaling of either side; near 0 for
    independent data (it can be slightly negative).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> round(linear_cka(X, 3 * X[:, ::-1]), 6)
    1.0
    """
    X, Y = _check_pair_matrix(X, Y)
    hxy, hxx, hyy = _hsic_u(X, Y), _hsic_u(X, X), _hsic_u(Y, Y)
    if hxx <= 0 or hyy <= 0:
        raise ValueError("X, Y: (near-)constant data, CKA is undefined")
    return float(hxy / np.sqrt(hxx * hyy))


def _check_pair_matrix(X, Y):
    X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X, Y: expected (sample, feature) matrices with equal samples, got {X.shape}, {Y.shape}")
    if X.shape[0] < 4:
        raise ValueError(f"X, Y: need at least 4 samples, got {X.shape[0]}")
    return X - X.mean(0), Y - Y.mean(0)


def _hsic_u(X, Y):
    n = X.shape[0]
    kd, ld = np.einsum("ij,ij->i", X, X), np.einsum("ij,ij->i", Y, Y)  # Gram diagonals
    k1 = X @ X.sum(0) - kd  # row sums of K with zeroed diagonal
    l1 = Y @ Y.sum(0) - ld
    tr = np.sum((X.T @ Y) ** 2) - kd @ ld
    return (tr + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)) / (n * (n - 3))


def _equalize(Xtr, Ytr, n_components):
    """Centre on the training mean and bring both sides to the same dimension."""
    mx, my = Xtr.mean(0), Ytr.mean(0)
    if n_components is not None:
        px = PCA(n_components=n_components).fit(Xtr)
        py = PCA(n_components=n_components).fit(Ytr)
        return lambda A: px.transform(A), lambda B: py.transform(B)
    d = max(Xtr.shape[1], Ytr.shape[1])
    pad = lambda M, m: np.pad(M - m, ((0, 0), (0, d - M.shape[1])))  # noqa: E731
    return lambda A: pad(A, mx), lambda B: pad(B, my)


def procrustes_distance(Xtr, Ytr, Xte=None, Yte=None, *, n_components: int | None = None) -> float:
    """Angular Procrustes shape distance (radians, 0..pi/2), fitted on (Xtr, Ytr).

    Both sides are centred (training means) and brought to equal dimension
    (zero-padding, or PCA to ``n_components``); the rotation Q minimising
    ||X Q - Y|| is fitted on the training samples, and the distance is
    ``arccos(<X Q, Y> / (||X Q|| ||Y||))`` on the test samples (the training
    ones when no test set is given). 0 for a rotated and scaled copy.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> Q = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
    >>> round(procrustes_distance(X, 2 * X @ Q), 6)
    0.0
    """
    if (Xte is None) != (Yte is None):
        raise ValueError("Xte, Yte: give both test sets or neither")
    fx, fy = _equalize(np.asarray(Xtr, float), np.asarray(Ytr, float), n_components)
    A, B = fx(np.asarray(Xtr, float)), fy(np.asarray(Ytr, float))
    Q, _ = scipy.linalg.orthogonal_procrustes(A, B)
    if Xte is not None:
        A, B = fx(np.asarray(Xte, float)), fy(np.asarray(Yte, float))
    AQ = A @ Q
    denom = np.linalg.norm(AQ) * np.linalg.norm(B)
    if denom == 0:
        raise ValueError("X, Y: constant data, the shape distance is undefined")
    return float(np.arccos(np.clip(np.sum(AQ * B) / denom, -1.0, 1.0)))


def cca_correlations(Xtr, Ytr, Xte=None, Yte=None, *, n_components: int | None = None,
                     reg: float = 1e-6) -> np.ndarray:
    """Canonical correlations: directions fitted on (Xtr, Ytr), scored on (Xte, Yte).

    Solved in closed form (whitening by the regularised covariances, then an
    SVD); ``reg`` is a ridge added relative to each covariance's mean
    variance. Returns up to ``min(dx, dy)`` (or ``n_components``) correlations,
    ordered as fitted.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> cca_correlations(X, X @ np.diag([1.0, 2.0, -1.0])).round(4).tolist()
    [1.0, 1.0, 1.0]
    """
    Xtr, Ytr = np.asarray(Xtr, float), np.asarray(Ytr, float)
    mx, my = Xtr.mean(0), Ytr.mean(0)
    A, B = Xtr - mx, Ytr - my
    n = A.shape[0]
    cxx, cyy = A.T @ A / n, B.T @ B / n
    cxx += reg * np.trace(cxx) / len(cxx) * np.eye(len(cxx))
    cyy += reg * np.trace(cyy) / len(cyy) * np.eye(len(cyy))

    def inv_sqrt(c):
        w, v = np.linalg.eigh(c)
        return (v / np.sqrt(np.maximum(w, 1e-300))) @ v.T

    wx, wy = inv_sqrt(cxx), inv_sqrt(cyy)
    u, s, vt = np.linalg.svd(wx @ (A.T @ B / n) @ wy)
    k = min(len(s), n_components or len(s))
    a, b = wx @ u[:, :k], wy @ vt[:k].T
    if Xte is None:
        return np.clip(s[:k], 0, 1)
    P, R = (np.asarray(Xte, float) - mx) @ a, (np.asarray(Yte, float) - my) @ b
    P, R = P - P.mean(0), R - R.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(P * R, 0) / (np.linalg.norm(P, axis=0) * np.linalg.norm(R, axis=0))


def rdm(x, by: Sequence[str] | str) -> xr.DataArray:
    """Correlation-distance RDM of condition-averaged trajectories (condition, condition_).

    Each condition's vector is its (time x feature) average over the steps
    valid in every condition.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.random.default_rng(0).normal(size=(6, 4, 3)), dims=("trial", "time", "unit"),
    ...                  coords={"c": ("trial", [0, 1, 2] * 2)})
    >>> rdm(x, "c").shape
    (3, 3)
    """
    avg = condition_average(x, by)
    flat = avg.values.reshape(avg.sizes["condition"], -1)
    flat = flat[:, np.all(np.isfinite(flat), axis=0)]
    if flat.shape[0] < 3 or flat.shape[1] < 2:
        raise ValueError(f"by: an RDM needs at least 3 conditions and 2 shared valid values, "
                         f"got {flat.shape[0]} conditions")
    d = 1.0 - np.corrcoef(flat)
    coords = {k: v.variable for k, v in avg.coords.items() if v.dims == ("condition",)}
    out = xr.DataArray(d, dims=("condition", "condition_"), coords=coords, name="rdm")
    return out.assign_coords(condition_=out["condition"].values)


def rdm_correlation(rdm_a, rdm_b) -> float:
    """Spearman correlation of the upper triangles of two RDMs.

    Examples
    --------
    >>> r = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0.0]])
    >>> rdm_correlation(r, r ** 3)
    1.0
    """
    a, b = np.asarray(rdm_a, float), np.asarray(rdm_b, float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"rdm_a, rdm_b: expected square RDMs of equal shape, got {a.shape}, {b.shape}")
    iu = np.triu_indices(len(a), 1)
    return float(scipy.stats.spearmanr(a[iu], b[iu])[0])


def _folds(n_trials, n_splits, groups, seed):
    if n_splits < 2:
        raise ValueError(f"n_splits: expected at least 2 folds, got {n_splits}")
    if groups is None:
        if n_trials < n_splits:
            raise ValueError(f"n_splits: {n_splits} folds need at least {n_splits} trials, got {n_trials}")
        seed_int = int(check_random_state(seed).integers(2**31))
        return list(KFold(n_splits, shuffle=True, random_state=seed_int).split(np.arange(n_trials)))
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(f"groups: {n_splits} folds need at least {n_splits} distinct groups, got {n_groups}")
    return list(GroupKFold(n_splits).split(np.arange(n_trials), groups=groups))


def cv_similarity(x, y, *, n_splits: int = 5, groups: str | None = None, n_components: int | None = None,
                  by: Sequence[str] | str | None = None, seed=0) -> xr.Dataset:
    """Cross-validated CCA, Procrustes distance and CKA (and RSA when ``by`` is given).

    Parameters
    ----------
    x, y : TrialDataset or (trial, time, feature) DataArray
        Model states and recorded activity over the same trials (``trial`` coord).
    n_splits : int
        Folds over trials (KFold, shuffled with ``seed``), or GroupKFold when
        ``groups`` names a per-trial coord of ``x`` (e.g. ``'session'``).
    n_components : int, optional
        PCA dimension both sides are reduced to (fitted on training trials)
        for CCA and Procrustes; default: CCA on full spaces, Procrustes with
        zero-padding to equal dims.
    by : str or list of str, optional
        Trial coords defining conditions for RSA (computed on all trials); a
        coord found on only one of x, y defines the conditions of both (x's
        wins when both have it).

    Returns
    -------
    xarray.Dataset with ``cca`` (fold, cc), ``procrustes`` (fold, radians),
    ``cka`` (fold, on held-out trials) and scalar ``rsa`` when ``by`` is given.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> z = np.random.default_rng(0).normal(size=(20, 5, 3))
    >>> X = xr.DataArray(z, dims=("trial", "time", "latent"))
    >>> Y = xr.DataArray(2 * z[..., ::-1], dims=("trial", "time", "unit"))
    >>> float(cv_similarity(X, Y, n_splits=4)["cka"].mean().round(6))
    1.0
    """
    X, Y = _pair(x, y)
    Xs, Ys, tidx = paired_samples(X, Y)
    g = None if groups is None else X[groups].values if groups in X.coords else None
    if groups is not None and g is None:
        raise ValueError(f"groups: {groups!r} is not a per-trial coord of x")
    folds = _folds(X.sizes["trial"], n_splits, g, seed)
    d = min(Xs.shape[1], Ys.shape[1])
    if n_components is not None and (isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer))
                                     or not 1 <= n_components <= d):
        raise ValueError(f"n_components: expected an int in 1..{d} (the smaller of the two feature counts), "
                         f"got {n_components!r}")
    k = n_components or d
    cca, proc, cka = np.full((len(folds), k), np.nan), np.full(len(folds), np.nan), np.full(len(folds), np.nan)
    for f, (train, test) in enumerate(folds):
        tr, te = np.isin(tidx, train), np.isin(tidx, test)
        if tr.sum() < 4 or te.sum() < 4:
            raise ValueError(f"n_splits: fold {f} has fewer than 4 valid time points in train or test")
        Xtr, Ytr, Xte, Yte = Xs[tr], Ys[tr], Xs[te], Ys[te]
        if n_components is not None:
            px, py = PCA(n_components).fit(Xtr), PCA(n_components).fit(Ytr)
            Xtr, Xte, Ytr, Yte = px.transform(Xtr), px.transform(Xte), py.transform(Ytr), py.transform(Yte)
        r = cca_correlations(Xtr, Ytr, Xte, Yte)
        cca[f, : len(r)] = r
        proc[f] = procrustes_distance(Xtr, Ytr, Xte, Yte)
        cka[f] = linear_cka(Xte, Yte)
    out = xr.Dataset({"cca": (("fold", "cc"), cca), "procrustes": ("fold", proc), "cka": ("fold", cka)},
                     coords={"fold": np.arange(len(folds)), "cc": np.arange(k)},
                     attrs={"n_splits": n_splits, "n_samples": len(Xs)})
    if by is not None:  # the trials are paired, so a condition coord of either side serves both
        names = [by] if isinstance(by, str) else list(by)
        shared = {c: src[c].variable for c in names for src in (X, Y)[::-1]
                  if c in src.coords and src[c].dims == ("trial",)}
        out["rsa"] = rdm_correlation(rdm(X.assign_coords(shared), by), rdm(Y.assign_coords(shared), by))
    return out


def shuffled_baseline(x, y, *, n_shuffles: int = 10, seed=0, **kwargs) -> xr.Dataset:
    """``cv_similarity`` with the trial pairing between x and y permuted (a chance level).

    Each shuffle permutes which recorded trial is paired with which model
    trial (y keeps x's trial labels and coords, so conditions follow x).
    Returns the same variables with a leading ``shuffle`` dim.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> z = np.random.default_rng(0).normal(size=(20, 5, 3))
    >>> X = xr.DataArray(z, dims=("trial", "time", "latent"))
    >>> base = shuffled_baseline(X, X.rename(latent="unit"), n_shuffles=2, n_splits=4)
    >>> bool(base["cka"].mean() < 0.5)
    True
    """
    X, Y = _pair(x, y)
    rng = check_random_state(seed)
    results = []
    for _ in range(n_shuffles):
        perm = rng.permutation(X.sizes["trial"])
        Yp = Y.isel(trial=perm).drop_vars([c for c in Y.coords if Y[c].dims == ("trial",)])
        Yp = Yp.assign_coords({c: X[c].variable for c in X.coords if X[c].dims == ("trial",)})
        results.append(cv_similarity(X, Yp, seed=rng.integers(2**31), **kwargs))
    return xr.concat(results, dim="shuffle")


def ridge_map(x, y, *, alpha: float = 1e-3) -> xr.DataArray:
    """Linear map L (unit, latent) from model states to recorded activity (ridge regression).

    Fitted on all valid paired time points; use it to carry model directions
    into the recorded space (``slow_mode_alignment(..., mapping=L)``).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> z = np.random.default_rng(0).normal(size=(10, 5, 2))
    >>> X = xr.DataArray(z, dims=("trial", "time", "latent"))
    >>> Y = xr.DataArray(z @ np.array([[1.0, 0, 2], [0, 1, 0]]), dims=("trial", "time", "unit"))
    >>> ridge_map(X, Y).values.round(2).tolist()
    [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
    """
    X, Y = _pair(x, y)
    Xs, Ys, _ = paired_samples(X, Y)
    coef = Ridge(alpha=alpha).fit(Xs, Ys).coef_
    ux, uy = X.dims[2], Y.dims[2]
    coords = {}
    if uy in Y.coords:
        coords[uy] = Y[uy].values
    if ux in X.coords:
        coords[ux] = X[ux].values
    return xr.DataArray(coef, dims=(uy, ux), coords=coords, name="map")

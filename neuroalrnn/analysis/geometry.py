"""Population geometry: targeted dimensionality reduction and PCA of condition averages.

Every function takes a TrialDataset (its ``activity``) or a (trial, time, feature)
``xarray.DataArray`` (e.g. model states with dim ``latent``) and returns xarray
objects that keep the trial coords. Targeted dimensionality reduction follows
Mante, Sussillo, Shenoy & Newsome (2013), Nature 503:78-84 (Methods).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.decomposition import PCA

from neuroalrnn.schema import is_missing

__all__ = ["as_signal", "condition_average", "tdr_coefficients", "tdr_axes", "project",
           "tdr_trajectories", "pca_condition_averages"]


def as_signal(x, name: str = "x") -> xr.DataArray:
    """Return ``x`` as a (trial, time, feature) DataArray with NaN outside the valid steps.

    ``x`` is a TrialDataset (its ``activity``, NaN where ``mask`` is False) or a
    DataArray whose first two dims are ``trial`` and ``time``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> as_signal(xr.DataArray(np.zeros((2, 3, 4)), dims=("trial", "time", "latent"))).dims
    ('trial', 'time', 'latent')
    """
    if isinstance(x, xr.Dataset):
        if "activity" not in x.data_vars:
            raise ValueError(f"{name}: the dataset has no 'activity' variable")
        sig = x["activity"]
        if "mask" in x.data_vars:
            sig = sig.where(x["mask"])
        return sig
    if not isinstance(x, xr.DataArray):
        raise TypeError(f"{name}: expected a TrialDataset or a (trial, time, feature) DataArray, "
                        f"got {type(x).__name__}")
    if x.ndim != 3 or x.dims[:2] != ("trial", "time"):
        raise ValueError(f"{name}: expected dims ('trial', 'time', feature), got {x.dims}")
    if "trial" not in x.coords:
        x = x.assign_coords(trial=np.arange(x.sizes["trial"]))
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(float)
    return x


def _feature_dim(sig):
    return sig.dims[2]


def _trial_coord(sig, name, what="coordinate"):
    if name not in sig.coords or sig[name].dims != ("trial",):
        raise ValueError(f"{what} {name!r}: expected a per-trial coordinate on 'trial'; "
                         f"available: {[c for c in sig.coords if sig[c].dims == ('trial',)]}")
    return sig[name].values


def condition_average(x, by: Sequence[str] | str) -> xr.DataArray:
    """Average trials that share the values of the trial coords ``by``.

    Returns a (condition, time, feature) DataArray; each ``by`` name becomes a
    coord on ``condition`` and ``n_trials`` counts the averaged trials. Steps
    where no trial of a condition is valid stay NaN. Trials with a missing
    ``by`` value (NaN, None or ``''``; ``neuroalrnn.schema.is_missing``) are left out.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.arange(8.0).reshape(4, 2, 1), dims=("trial", "time", "unit"),
    ...                  coords={"context": ("trial", ["a", "b", "a", "b"])})
    >>> condition_average(x, "context").isel(time=0, unit=0).values.tolist()
    [2.0, 4.0]
    """
    sig = as_signal(x)
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise ValueError("by: expected at least one trial coordinate name")
    keys = [_trial_coord(sig, b, "by") for b in by]
    present = ~np.any([is_missing(k) for k in keys], axis=0)  # a missing value is no condition
    if not present.any():
        raise ValueError(f"by: no trial has a value for every coord in {by}")
    keys = [k[present] for k in keys]
    codes = pd.DataFrame(dict(zip(by, keys))).groupby(by, sort=True).ngroup().values
    n_cond = codes.max() + 1
    first = np.array([np.argmax(codes == c) for c in range(n_cond)])
    values = sig.values[present]
    out = np.full((n_cond, values.shape[1], values.shape[2]), np.nan)
    counts = np.bincount(codes, minlength=n_cond)
    for c in range(n_cond):
        block = values[codes == c]
        n = np.isfinite(block).sum(0)
        out[c] = np.where(n > 0, np.nansum(block, 0) / np.maximum(n, 1), np.nan)
    coords = {b: ("condition", k[first]) for b, k in zip(by, keys)}
    coords.update(condition=np.arange(n_cond), n_trials=("condition", counts))
    fdim = _feature_dim(sig)
    coords["time"] = sig["time"].values if "time" in sig.coords else np.arange(values.shape[1])
    if fdim in sig.coords:
        coords.update({k: v.variable for k, v in sig.coords.items() if v.dims == (fdim,)})
    return xr.DataArray(out, dims=("condition", "time", fdim), coords=coords, name=sig.name,
                        attrs=dict(sig.attrs))


def _encode(values, name):
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.number) and not np.issubdtype(values.dtype, np.bool_):
        values = values.astype(float)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"regressor {name!r}: contains NaN or inf")
        return values, None
    levels = np.unique(values)
    if len(levels) != 2:
        raise ValueError(f"regressor {name!r}: a categorical regressor needs exactly 2 levels "
                         f"(coded -1/+1), got {levels.tolist()}")
    return np.where(values == levels[1], 1.0, -1.0), levels.tolist()


def tdr_coefficients(x, regressors: Sequence[str], *, window: tuple[float, float] | None = None,
                     min_trials: int | None = None) -> xr.DataArray:
    """Per-unit, per-time linear regression of activity on trial variables.

    Fits r_{i,t}(k) = sum_v beta_{v,i,t} F_v(k) + beta_{0,i,t} over trials k with
    ordinary least squares (only trials valid at step t). Numeric coords enter
    as they are; a categorical coord with two levels is coded -1/+1 (the
    second level in sorted order is +1, recorded in ``attrs['levels']``).
    With ``window=(t0, t1)`` the activity is first averaged over that time span.
    Steps with fewer than ``min_trials`` valid trials (default: half the
    trials, at least the number of coefficients + 1) are left NaN, so the
    noisy tails of ragged trials cannot win the max-norm choice of
    ``tdr_axes``.

    Returns a (regressor, time, feature) DataArray.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0); c = rng.choice([-1.0, 1.0], 50)
    >>> x = xr.DataArray(c[:, None, None] * [[[1.0, 0.0]]] + 0.01 * rng.normal(size=(50, 1, 2)),
    ...                  dims=("trial", "time", "unit"), coords={"choice": ("trial", c)})
    >>> tdr_coefficients(x, ["choice"]).sel(regressor="choice").values.round(1).tolist()
    [[1.0, 0.0]]
    """
    sig = as_signal(x)
    regressors = [regressors] if isinstance(regressors, str) else list(regressors)
    if not regressors:
        raise ValueError("regressors: expected at least one trial coordinate name")
    cols, levels = [], {}
    for r in regressors:
        col, lev = _encode(_trial_coord(sig, r, "regressor"), r)
        cols.append(col)
        if lev is not None:
            levels[r] = lev
    F = np.column_stack(cols + [np.ones(sig.sizes["trial"])])
    if window is not None:
        t = sig["time"].values
        sel = (t >= window[0]) & (t <= window[1])
        if not sel.any():
            raise ValueError(f"window: {window} contains no time bin (time spans {t.min()}..{t.max()})")
        sig = sig.isel(time=sel).mean("time", skipna=True).expand_dims(time=[float(np.mean(t[sel]))], axis=1)
    values = sig.values
    floor = F.shape[1] + 1
    if min_trials is None:
        min_trials = max(floor, int(np.ceil(0.5 * len(F))))
    elif min_trials < floor:
        raise ValueError(f"min_trials: expected at least {floor} (coefficients + 1), got {min_trials}")
    beta = np.full((len(regressors), values.shape[1], values.shape[2]), np.nan)
    for t in range(values.shape[1]):
        ok = np.all(np.isfinite(values[:, t]), axis=1)
        if ok.sum() < min_trials or np.linalg.matrix_rank(F[ok]) < F.shape[1]:
            continue  # too few (or degenerate) trials at this step: leave NaN
        coef, *_ = np.linalg.lstsq(F[ok], values[ok, t], rcond=None)
        beta[:, t] = coef[:-1]
    if np.isnan(beta).all():
        raise ValueError(f"regressors {regressors}: the design is rank deficient or there are too few "
                         f"valid trials (need {min_trials} per time step)")
    fdim = _feature_dim(sig)
    coords = {"regressor": regressors, "time": sig["time"].values}
    coords.update({k: v.variable for k, v in sig.coords.items() if v.dims == (fdim,)})
    out = xr.DataArray(beta, dims=("regressor", "time", fdim), coords=coords, name="beta")
    out.attrs["levels"] = repr(levels)
    return out


def tdr_axes(x, regressors: Sequence[str], *, n_pcs: int | None = None,
             by: Sequence[str] | None = None, window: tuple[float, float] | None = None,
             min_trials: int | None = None, orthogonalize: bool = True) -> xr.DataArray:
    """Task-related axes by targeted dimensionality reduction (Mante et al. 2013).

    1. Regress every unit's activity on the ``regressors`` at every time step
       (``tdr_coefficients``, steps with at least ``min_trials`` valid
       trials), or once on the mean over ``window``.
    2. Optionally denoise: project the coefficient vectors onto the first
       ``n_pcs`` principal components of the condition-averaged activity
       (conditions = unique values of ``by``, default the regressors).
    3. For each regressor keep the coefficient vector at the time of its
       largest norm (``time_of_max`` coord).
    4. Orthogonalise by QR in the order given (the first axis keeps its
       direction; later axes lose their projection on earlier ones).

    Returns unit-norm axes as a (axis, feature) DataArray.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0); c = rng.choice([-1.0, 1.0], 60); m = rng.normal(size=60)
    >>> x = xr.DataArray((c[:, None] * [1.0, 0, 0] + m[:, None] * [0, 1.0, 0])[:, None, :],
    ...                  dims=("trial", "time", "unit"), coords={"choice": ("trial", c), "coh": ("trial", m)})
    >>> np.abs(tdr_axes(x, ["choice", "coh"]).values).round(3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    beta = tdr_coefficients(x, regressors, window=window, min_trials=min_trials)
    fdim = beta.dims[2]
    b = beta.values
    if n_pcs is not None:
        sig = as_signal(x)
        avg = condition_average(sig, by or list(beta["regressor"].values))
        if window is not None:
            t = avg["time"].values
            avg = avg.isel(time=(t >= window[0]) & (t <= window[1]))
        rows = avg.values.reshape(-1, avg.shape[2])
        rows = rows[np.all(np.isfinite(rows), axis=1)]
        if not 1 <= n_pcs <= min(rows.shape):
            raise ValueError(f"n_pcs: expected 1..{min(rows.shape)} (conditions x times, units), got {n_pcs}")
        pcs = PCA(n_components=n_pcs).fit(rows).components_
        b = np.einsum("rtu,ku,kv->rtv", np.nan_to_num(b), pcs, pcs) + 0 * b  # keeps NaN steps NaN
    norms = np.linalg.norm(b, axis=2)
    tmax = np.nanargmax(np.where(np.isnan(norms), -np.inf, norms), axis=1)
    vecs = b[np.arange(len(tmax)), tmax]
    if orthogonalize:
        q, r = np.linalg.qr(vecs.T)
        small = np.abs(np.diag(r)) < 1e-12 * max(1.0, np.abs(r).max())
        if small.any():
            raise ValueError(f"regressors: axis {beta['regressor'].values[np.argmax(small)]!r} lies in the "
                             "span of the earlier axes (collinear regressors)")
        vecs = (q * np.sign(np.diag(r))).T
    else:
        vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    coords = {"axis": beta["regressor"].values, "time_of_max": ("axis", beta["time"].values[tmax])}
    coords.update({k: v.variable for k, v in beta.coords.items() if v.dims == (fdim,)})
    return xr.DataArray(vecs, dims=("axis", fdim), coords=coords, name="tdr_axes",
                        attrs={"regressors": list(map(str, regressors)), "n_pcs": -1 if n_pcs is None else n_pcs})


def project(x, axes: xr.DataArray) -> xr.DataArray:
    """Project activity or states onto axes: (trial, time, axis), trial coords kept.

    ``axes`` is a (axis, feature) DataArray (e.g. from ``tdr_axes``); the
    feature dim and its labels must match ``x``'s.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.ones((2, 3, 2)), dims=("trial", "time", "unit"))
    >>> ax = xr.DataArray([[1.0, 0.0]], dims=("axis", "unit"), coords={"axis": ["choice"]})
    >>> project(x, ax).sizes["axis"]
    1
    """
    sig = as_signal(x)
    if not isinstance(axes, xr.DataArray) or axes.ndim != 2:
        raise TypeError("axes: expected a 2-D (axis, feature) DataArray")
    fdim = _feature_dim(sig)
    if fdim not in axes.dims:
        raise ValueError(f"axes: expected a {fdim!r} dim matching the data, got dims {axes.dims}")
    adim = [d for d in axes.dims if d != fdim][0]
    if axes.sizes[fdim] != sig.sizes[fdim]:
        raise ValueError(f"axes: {axes.sizes[fdim]} {fdim}s, but the data have {sig.sizes[fdim]}")
    if fdim in axes.coords and fdim in sig.coords and not np.array_equal(axes[fdim].values, sig[fdim].values):
        raise ValueError(f"axes: the {fdim!r} labels differ from the data's")
    proj = np.einsum("ntu,au->nta", sig.values, axes.transpose(adim, fdim).values)
    coords = {k: v.variable for k, v in sig.coords.items() if fdim not in v.dims}
    coords.update({k: v.variable for k, v in axes.coords.items() if v.dims == (adim,)})
    return xr.DataArray(proj, dims=("trial", "time", adim), coords=coords, name="projection")


def tdr_trajectories(x, axes: xr.DataArray, by: Sequence[str] | str) -> xr.DataArray:
    """Condition-averaged trajectories on the axes: (condition, time, axis).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.ones((4, 3, 2)), dims=("trial", "time", "unit"),
    ...                  coords={"context": ("trial", list("abab"))})
    >>> ax = xr.DataArray(np.eye(2), dims=("axis", "unit"))
    >>> tdr_trajectories(x, ax, "context").dims
    ('condition', 'time', 'axis')
    """
    return condition_average(project(x, axes), by)


def pca_condition_averages(x, by: Sequence[str] | str, n_components: int | None = None) -> xr.Dataset:
    """PCA of the condition-averaged activity (conditions x valid times as samples).

    Returns a Dataset with ``components`` (component, feature),
    ``explained_variance_ratio`` (component), ``mean`` (feature) and ``scores``
    (condition, time, component), the averages projected on the components.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.random.default_rng(0).normal(size=(8, 5, 3)), dims=("trial", "time", "unit"),
    ...                  coords={"context": ("trial", list("abababab"))})
    >>> float(pca_condition_averages(x, "context")["explained_variance_ratio"].sum().round(6))
    1.0
    """
    avg = condition_average(x, by)
    fdim = avg.dims[2]
    rows = avg.values.reshape(-1, avg.shape[2])
    ok = np.all(np.isfinite(rows), axis=1)
    if ok.sum() < 2:
        raise ValueError(f"x: PCA needs at least 2 condition-time points where every {fdim} is valid, "
                         f"got {int(ok.sum())}")
    limit = min(ok.sum(), rows.shape[1])
    if n_components is not None and not 1 <= n_components <= limit:
        raise ValueError(f"n_components: expected 1..{limit} (valid condition-times, features), got {n_components}")
    pca = PCA(n_components=n_components or limit).fit(rows[ok])
    scores = np.full(rows.shape[:1] + (pca.n_components_,), np.nan)
    scores[ok] = pca.transform(rows[ok])
    comp = np.arange(pca.n_components_)
    fcoords = {k: v.variable for k, v in avg.coords.items() if v.dims == (fdim,)}
    return xr.Dataset(
        {"components": (("component", fdim), pca.components_),
         "explained_variance_ratio": ("component", pca.explained_variance_ratio_),
         "mean": (fdim, pca.mean_),
         "scores": (("condition", "time", "component"), scores.reshape(avg.shape[:2] + (-1,)))},
        coords={"component": comp, **fcoords,
                **{k: v.variable for k, v in avg.coords.items() if fdim not in v.dims}})

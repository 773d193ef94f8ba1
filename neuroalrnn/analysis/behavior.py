"""Psychometric curves per context, for model and animal choices.

Works on any dataset with per-trial coords on ``trial`` (a TrialDataset, or a
behaviour-only one built with ``neuroalrnn.schema.from_arrays(trial_coords=...)``):
a signed stimulus strength, a choice and a grouping (context) coord.

The fitted psychometric function is

    p(x) = lapse_low + (1 - lapse_low - lapse_high) * F(slope * (x - bias))

with F the logistic function or the standard normal CDF (``kind='erf'``), fitted
by maximum likelihood on the trial-level binary choices.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.special
import xarray as xr

from neuroalrnn.schema import is_missing
from neuroalrnn.utils import check_random_state

__all__ = ["signed_contrast", "psychometric", "psychometric_function", "fit_psychometric"]


def signed_contrast(contrast_left, contrast_right) -> np.ndarray:
    """IBL signed contrast: right minus left, a missing (NaN) side counting as 0.

    Examples
    --------
    >>> signed_contrast([0.25, np.nan], [np.nan, 1.0]).tolist()
    [-0.25, 1.0]
    """
    left, right = np.asarray(contrast_left, float), np.asarray(contrast_right, float)
    if left.shape != right.shape:
        raise ValueError(f"contrast_left, contrast_right: shapes differ ({left.shape} vs {right.shape})")
    return np.nan_to_num(right, nan=0.0) - np.nan_to_num(left, nan=0.0)


def _trials(ds, stimulus, choice, by, positive, exclude):
    if not isinstance(ds, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"ds: expected an xarray Dataset with per-trial coords, got {type(ds).__name__}")
    names = [stimulus, choice] + ([by] if by is not None else [])
    for name in names:
        if name not in ds.coords and name not in getattr(ds, "data_vars", {}):
            raise ValueError(f"{name!r}: not a per-trial variable of the dataset")
        if ds[name].dims != ("trial",):
            raise ValueError(f"{name!r}: expected dims ('trial',), got {ds[name].dims}")
    x = np.asarray(ds[stimulus].values, dtype=float)
    c = np.asarray(ds[choice].values)
    g = np.asarray(ds[by].values) if by is not None else np.zeros(len(x), dtype=int)
    keep = np.isfinite(x) & ~np.isin(c, list(exclude)) & ~is_missing(g)  # a missing `by` is no group
    if np.issubdtype(c.dtype, np.floating):
        keep &= np.isfinite(c)
    if not keep.any():
        raise ValueError(f"{choice!r}: no trial left after excluding {list(exclude)} and NaN"
                         + (f" (in {stimulus!r}, {choice!r} or {by!r})" if by is not None else ""))
    if not np.isin(positive, c[keep]).any():
        raise ValueError(f"positive: the value {positive!r} never occurs in {choice!r} "
                         f"(values: {np.unique(c[keep]).tolist()})")
    return x[keep], (c[keep] == positive).astype(float), g[keep]


def psychometric(ds, stimulus: str, choice: str = "choice", by: str | None = "context", *,
                 positive=1, exclude=(0,)) -> xr.Dataset:
    """Fraction of ``positive`` choices per stimulus level and group, with binomial SEM.

    Parameters
    ----------
    ds : xarray.Dataset
        Trials with per-trial coords ``stimulus`` (signed strength), ``choice``
        and ``by`` (e.g. ``context``; None for one group). Trials whose ``by``
        value is missing (NaN, None or ``''``, see ``neuroalrnn.schema.is_missing``)
        are left out, as are trials with a NaN stimulus or choice.
    positive : scalar
        The choice value counted as 1 (e.g. -1 for an IBL rightward choice).
    exclude : sequence
        Choice values dropped (IBL no-go trials are 0).

    Returns
    -------
    xarray.Dataset with dims (``by``, ``stimulus``) and variables ``p``
    (fraction), ``sem`` (sqrt(p (1 - p) / n)) and ``n`` (trials); attrs name
    the stimulus, by and choice coords.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset(coords={"trial": range(4), "coh": ("trial", [-1, -1, 1, 1]),
    ...                         "choice": ("trial", [0.0, 1, 1, 1]), "context": ("trial", list("aaaa"))})
    >>> psychometric(ds, "coh", exclude=())["p"].values.tolist()
    [[0.5, 1.0]]
    """
    x, y, g = _trials(ds, stimulus, choice, by, positive, exclude)
    levels, groups = np.unique(x), np.unique(g)
    n = np.zeros((len(groups), len(levels)))
    k = np.zeros_like(n)
    gi, li = np.searchsorted(groups, g), np.searchsorted(levels, x)
    np.add.at(n, (gi, li), 1)
    np.add.at(k, (gi, li), y)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        sem = np.sqrt(p * (1 - p) / n)
    gdim = by or "group"
    return xr.Dataset({"p": ((gdim, stimulus), p), "sem": ((gdim, stimulus), sem),
                       "n": ((gdim, stimulus), n.astype(int))},
                      coords={gdim: groups, stimulus: levels},
                      attrs={"stimulus": stimulus, "by": gdim, "choice": choice, "positive": str(positive)})


def psychometric_function(x, bias, slope, lapse_low=0.0, lapse_high=0.0, kind: str = "logistic"):
    """Evaluate ``lapse_low + (1 - lapse_low - lapse_high) F(slope (x - bias))``.

    Examples
    --------
    >>> float(psychometric_function(0.0, 0.0, 5.0, 0.1, 0.1))
    0.5
    """
    z = slope * (np.asarray(x, float) - bias)
    if kind == "logistic":
        core = scipy.special.expit(z)
    elif kind == "erf":
        core = scipy.special.ndtr(z)
    else:
        raise ValueError(f"kind: expected 'logistic' or 'erf', got {kind!r}")
    return lapse_low + (1.0 - lapse_low - lapse_high) * core


def _fit_one(x, y, kind, lapses, max_lapse, rng, n_starts):
    span = max(np.ptp(x), 1e-9)
    bounds = [(x.min() - span, x.max() + span), (1e-3 / span, 1e3 / span)]
    if lapses:
        bounds += [(0.0, max_lapse), (0.0, max_lapse)]
    eps = 1e-9

    levels, idx = np.unique(x, return_inverse=True)  # binomial counts per level: same likelihood, fast
    n = np.bincount(idx, minlength=len(levels)).astype(float)
    k = np.bincount(idx, weights=y, minlength=len(levels))

    def nll(theta):
        p = psychometric_function(levels, theta[0], np.exp(theta[1]), *(theta[2:] if lapses else ()), kind=kind)
        p = np.clip(p, eps, 1 - eps)
        return -np.sum(k * np.log(p) + (n - k) * np.log1p(-p))

    log_bounds = [bounds[0], tuple(np.log(bounds[1]))] + bounds[2:]
    starts = [[np.median(x), np.log(4.0 / span)] + ([0.02, 0.02] if lapses else [])]
    for _ in range(n_starts - 1):
        starts.append([rng.uniform(x.min(), x.max()),
                       rng.uniform(np.log(0.5 / span), np.log(50.0 / span))]
                      + (list(rng.uniform(0, max_lapse / 2, 2)) if lapses else []))
    best = None
    for s in starts:
        res = scipy.optimize.minimize(nll, s, method="SLSQP", bounds=log_bounds)
        if best is None or res.fun < best.fun:
            best = res
    theta = np.array(best.x, float)
    out = [theta[0], np.exp(theta[1])] + (list(theta[2:]) if lapses else [0.0, 0.0])
    return out, bool(best.success), float(best.fun)


def fit_psychometric(ds, stimulus: str, choice: str = "choice", by: str | None = "context", *,
                     positive=1, exclude=(0,), kind: str = "logistic", lapses: bool = True,
                     max_lapse: float = 0.5, n_starts: int = 5, seed=0) -> xr.Dataset:
    """Maximum-likelihood psychometric fit per group.

    Fits bias, slope (> 0) and optionally the two lapse rates (each in
    [0, max_lapse]) with SLSQP (bounded) from ``n_starts`` starts (one fixed, the
    others drawn with ``seed``), keeping the best likelihood. Trials are selected
    as in ``psychometric``: a missing ``by`` value (NaN, None, ``''``) forms no
    group; those trials are left out.

    Returns
    -------
    xarray.Dataset on the ``by`` dim with ``bias``, ``slope``, ``lapse_low``,
    ``lapse_high``, ``n`` (trials), ``nll`` and ``success``; attrs as in
    ``psychometric`` plus ``kind``.

    Examples
    --------
    >>> import xarray as xr
    >>> rng = np.random.default_rng(0); x = rng.uniform(-1, 1, 2000)
    >>> y = (rng.uniform(size=2000) < psychometric_function(x, 0.2, 8.0)).astype(int)
    >>> ds = xr.Dataset(coords={"trial": range(2000), "s": ("trial", x), "choice": ("trial", y)})
    >>> fit = fit_psychometric(ds, "s", by=None, exclude=(), positive=1, lapses=False)
    >>> bool(abs(float(fit["bias"][0]) - 0.2) < 0.05)
    True
    """
    if kind not in ("logistic", "erf"):
        raise ValueError(f"kind: expected 'logistic' or 'erf', got {kind!r}")
    if not 0 < max_lapse <= 0.5:
        raise ValueError(f"max_lapse: expected a value in (0, 0.5], got {max_lapse}")
    if n_starts < 1:
        raise ValueError(f"n_starts: expected at least 1, got {n_starts}")
    x, y, g = _trials(ds, stimulus, choice, by, positive, exclude)
    rng = check_random_state(seed)
    groups = np.unique(g)
    rows, ok, nll, counts = [], [], [], []
    for grp in groups:
        sel = g == grp
        if len(np.unique(x[sel])) < 2:
            raise ValueError(f"{stimulus!r}: group {grp!r} has fewer than 2 stimulus levels; cannot fit")
        params, success, fun = _fit_one(x[sel], y[sel], kind, lapses, max_lapse, rng, n_starts)
        rows.append(params), ok.append(success), nll.append(fun), counts.append(sel.sum())
    rows = np.array(rows)
    gdim = by or "group"
    names = ["bias", "slope", "lapse_low", "lapse_high"]
    data = {name: (gdim, rows[:, i]) for i, name in enumerate(names)}
    data.update(n=(gdim, np.array(counts)), nll=(gdim, np.array(nll)), success=(gdim, np.array(ok)))
    return xr.Dataset(data, coords={gdim: groups},
                      attrs={"stimulus": stimulus, "by": gdim, "choice": choice, "positive": str(positive),
                             "kind": kind})
